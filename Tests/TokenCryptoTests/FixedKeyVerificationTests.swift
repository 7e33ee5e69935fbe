import Testing

@testable import TokenCrypto

/// The ES256 table path (`P256FixedKeyVerifier`, taken once a key is hot) composes ECDSA
/// verification from OpenSSL's EC calls. It must answer exactly as `EVP_PKEY_verify` does —
/// valid, invalid or refused with the same error — for every signature.
@Suite("ES256 with a precomputed key table")
struct FixedKeyVerificationTests {
    static let order = bytes(hex: "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")

    /// The same public key twice: one verifying through EVP, one through the table.
    private static func pair() throws -> (signer: SigningKey, evp: AsymmetricKey, table: AsymmetricKey) {
        let signer = try SigningKey.generate(.es256)
        guard case .asymmetric(let key) = signer.verifyingKey.material else { throw CryptoError.openssl("not EC") }
        let evp = try AsymmetricKey(key: key.key, algorithm: .es256)
        let table = try AsymmetricKey(key: key.key, algorithm: .es256)
        table.prepareFixedKeyVerifier()
        return (signer, evp, table)
    }

    private static func outcome(_ key: AsymmetricKey, _ signature: [UInt8], _ message: [UInt8]) -> String {
        signature.withUnsafeBytes { s in
            message.withUnsafeBytes { m in
                do { return try key.verify(signature: s, message: m) ? "valid" : "invalid" } catch {
                    return "error: \(error)"
                }
            }
        }
    }

    /// The table verifier's own answer (nil if it could not answer).
    static func direct(_ verifier: P256FixedKeyVerifier, _ signature: [UInt8], _ message: [UInt8]) -> Bool? {
        let digest = SHA256.hash(message)
        return signature.withUnsafeBytes { s in
            digest.withUnsafeBytes { d in
                verifier.verify(
                    r: UnsafeRawBufferPointer(rebasing: s[0..<32]),
                    s: UnsafeRawBufferPointer(rebasing: s[32..<64]),
                    digest: d
                )
            }
        }
    }

    /// n − v for a 32-byte big-endian v (v ≤ n).
    private static func negate(_ value: ArraySlice<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var borrow = 0
        for i in stride(from: 31, through: 0, by: -1) {
            var d = Int(order[i]) - Int(value[value.startIndex + i]) - borrow
            borrow = d < 0 ? 1 : 0
            if d < 0 { d += 256 }
            out[i] = UInt8(d)
        }
        return out
    }

    /// Valid signatures, their mutations, and edge values of r and s.
    private static func variants(
        of signature: [UInt8],
        using random: inout some RandomNumberGenerator
    ) -> [(String, [UInt8])] {
        let r = signature[..<32]
        let s = signature[32...]
        let zero = [UInt8](repeating: 0, count: 32)
        let one = zero.dropLast() + [1]
        let nMinusOne = Array(order.dropLast()) + [order[31] - 1]
        var out: [(String, [UInt8])] = [
            ("as signed", signature),
            ("high s (n − s), valid in ECDSA", Array(r) + negate(s)),
            ("n − r", negate(r) + Array(s)),
            ("r and s swapped", Array(s) + Array(r)),
            ("r = 1", one + Array(s)), ("s = 1", Array(r) + one),
            ("r = n − 1", nMinusOne + Array(s)), ("s = n − 1", Array(r) + nMinusOne),
            ("r = 0", zero + Array(s)), ("s = 0", Array(r) + zero),
            ("r = n", order + Array(s)), ("s = n", Array(r) + order),
            ("all ones", [UInt8](repeating: 0xFF, count: 64)),
            ("random", (0..<64).map { _ in UInt8.random(in: 0...255, using: &random) }),
            ("63 bytes", Array(signature.dropLast())), ("65 bytes", signature + [0]),
            ("DER", derECDSASignature(raw: signature)),
        ]
        for _ in 0..<6 {
            var flipped = signature
            let bit = Int.random(in: 0..<512, using: &random)
            flipped[bit / 8] ^= 1 << (bit % 8)
            out.append(("bit \(bit) flipped", flipped))
        }
        return out
    }

    @Test("valid, mutated and edge-case signatures get EVP_PKEY_verify's answer, over many keys and messages")
    func matchesEVP() throws {
        var random = SystemRandomNumberGenerator()
        var valid = 0
        for _ in 0..<12 {
            let (signer, evp, table) = try Self.pair()
            #expect(table.usesFixedKeyVerifier)
            #expect(!evp.usesFixedKeyVerifier)
            let fixed = try #require(P256FixedKeyVerifier(publicKey: evp.key))
            for length in [0, 1, 43, 300, 518] {
                let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                let signature = try signer.sign(message)
                var otherMessage = message + [0x2E]
                if !message.isEmpty {
                    otherMessage = message
                    otherMessage[0] ^= 0x01
                }
                for (name, candidate) in Self.variants(of: signature, using: &random) {
                    for (what, bytes) in [("message", message), ("changed message", otherMessage)] {
                        let expected = Self.outcome(evp, candidate, bytes)
                        #expect(Self.outcome(table, candidate, bytes) == expected, "\(name), \(what), \(length) bytes")
                        // And the table itself answered (no silent fall-back to EVP).
                        if !expected.hasPrefix("error") {
                            #expect(Self.direct(fixed, candidate, bytes) == (expected == "valid"), "\(name), \(what)")
                        }
                        if expected == "valid" { valid += 1 }
                    }
                }
            }
        }
        // The signatures as signed and their high-s twins.
        #expect(valid == 12 * 5 * 2)
    }

    @Test("signatures from another key are invalid on both paths")
    func otherKey() throws {
        let (_, evp, table) = try Self.pair()
        let (other, _, _) = try Self.pair()
        let message = Array("header.payload".utf8)
        let signature = try other.sign(message)
        #expect(Self.outcome(table, signature, message) == "invalid")
        #expect(Self.outcome(evp, signature, message) == "invalid")
    }

    @Test("a key switches to the table once it has verified enough signatures; other algorithms never do")
    func switchesWhenHot() async throws {
        let signer = try SigningKey.generate(.es256)
        let key = signer.verifyingKey
        let message = Array("a.b".utf8)
        let signature = try signer.sign(message)
        guard case .asymmetric(let asymmetric) = key.material else { throw CryptoError.openssl("not EC") }
        #expect(!asymmetric.usesFixedKeyVerifier)
        // Forged signatures do not count towards the table (no build is even started).
        for _ in 0..<(2 * AsymmetricKey.fixedKeyThreshold) {
            #expect(try !key.verify(signature: signature, message: message + [1]))
        }
        #expect(asymmetric.validVerificationsCounted == 0)
        for _ in 0..<AsymmetricKey.fixedKeyThreshold { #expect(try key.verify(signature: signature, message: message)) }
        var waited = 0
        while !asymmetric.usesFixedKeyVerifier, waited < 200 {
            try await Task.sleep(for: .milliseconds(50))
            waited += 1
        }
        #expect(asymmetric.usesFixedKeyVerifier)
        #expect(try key.verify(signature: signature, message: message))
        #expect(try !key.verify(signature: signature, message: message + [0]))

        let es384 = try SigningKey.generate(.es384)
        guard case .asymmetric(let other) = es384.verifyingKey.material else { throw CryptoError.openssl("not EC") }
        other.prepareFixedKeyVerifier()
        #expect(!other.usesFixedKeyVerifier)
    }
}
