import Testing
import TokenCrypto

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw R‖S signature: what OpenSSL and most
/// non-JOSE ECDSA APIs produce.
func derECDSASignature(raw: [UInt8]) -> [UInt8] {
    let half = raw.count / 2
    func integer(_ value: ArraySlice<UInt8>) -> [UInt8] {
        var digits = Array(value.drop { $0 == 0 })
        if digits.isEmpty { digits = [0] }
        if digits[0] & 0x80 != 0 { digits.insert(0, at: 0) }
        return [0x02, UInt8(digits.count)] + digits
    }
    let body = integer(raw[..<half]) + integer(raw[half...])
    return [0x30] + (body.count >= 0x80 ? [0x81] : []) + [UInt8(body.count)] + body
}

@Suite("Signature encodings")
struct SignatureEncodingTests {
    static let p256Order = bytes(hex: "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
    static let p384Order = bytes(
        hex: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973"
    )

    static let message = Array("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwc3ljaGljIn0".utf8)

    /// Psychic signatures (CVE-2022-21449): r or s of zero, or equal to the group order.
    static func psychic(order: [UInt8], valid: [UInt8]) -> [(String, [UInt8])] {
        let size = order.count
        let zero = [UInt8](repeating: 0, count: size)
        let r = Array(valid[..<size])
        let s = Array(valid[size...])
        var orderPlusOne = order
        orderPlusOne[size - 1] &+= 1
        return [
            ("r = s = 0", zero + zero),
            ("r = s = n", order + order),
            ("r = 0", zero + s),
            ("s = 0", r + zero),
            ("r = n", order + s),
            ("s = n", r + order),
            ("s = n + 1", r + orderPlusOne),
            ("r = s = 2^k - 1", [UInt8](repeating: 0xFF, count: 2 * size)),
        ]
    }

    @Test("ES256 refuses psychic signatures as encoding errors")
    func psychicES256() throws {
        let key = try SigningKey.generate(.es256)
        let valid = try key.sign(SignatureEncodingTests.message)
        #expect(try key.verifyingKey.verify(signature: valid, message: SignatureEncodingTests.message))
        for (name, signature) in SignatureEncodingTests.psychic(order: SignatureEncodingTests.p256Order, valid: valid) {
            let error = #expect(throws: CryptoError.self, "\(name)") {
                try key.verifyingKey.verify(signature: signature, message: SignatureEncodingTests.message)
            }
            #expect(error?.code == .signatureEncoding, "\(name)")
        }
    }

    @Test("ES384 refuses psychic signatures as encoding errors")
    func psychicES384() throws {
        let key = try SigningKey.generate(.es384)
        let valid = try key.sign(SignatureEncodingTests.message)
        #expect(valid.count == 96)
        #expect(try key.verifyingKey.verify(signature: valid, message: SignatureEncodingTests.message))
        for (name, signature) in SignatureEncodingTests.psychic(order: SignatureEncodingTests.p384Order, valid: valid) {
            let error = #expect(throws: CryptoError.self, "\(name)") {
                try key.verifyingKey.verify(signature: signature, message: SignatureEncodingTests.message)
            }
            #expect(error?.code == .signatureEncoding, "\(name)")
        }
    }

    @Test(
        "ECDSA refuses a DER signature even when it encodes a valid R‖S",
        arguments: [SignatureAlgorithm.es256, .es384]
    )
    func derIsRefused(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let raw = try key.sign(SignatureEncodingTests.message)
        let der = derECDSASignature(raw: raw)
        #expect(der.first == 0x30)
        let error = #expect(throws: CryptoError.self) {
            try key.verifyingKey.verify(signature: der, message: SignatureEncodingTests.message)
        }
        #expect(error?.code == .signatureEncoding)
    }

    @Test("ECDSA refuses signatures one byte short or long", arguments: [SignatureAlgorithm.es256, .es384])
    func wrongLength(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let raw = try key.sign(SignatureEncodingTests.message)
        for signature in [Array(raw.dropLast()), raw + [0], [0] + raw, Array(raw.dropFirst()), []] {
            let error = #expect(throws: CryptoError.self, "\(signature.count) bytes") {
                try key.verifyingKey.verify(signature: signature, message: SignatureEncodingTests.message)
            }
            #expect(error?.code == .signatureEncoding)
        }
    }

    @Test("ECDSA signatures are raw R‖S of the fixed length and differ from one signing to the next")
    func rawLengthAndRandomness() throws {
        for algorithm in [SignatureAlgorithm.es256, .es384] {
            let key = try SigningKey.generate(algorithm)
            let first = try key.sign(SignatureEncodingTests.message)
            let second = try key.sign(SignatureEncodingTests.message)
            #expect(first.count == algorithm.fixedSignatureLength)
            #expect(first != second)
            #expect(try key.verifyingKey.verify(signature: second, message: SignatureEncodingTests.message))
        }
    }

    @Test(
        "many threads signing with one ECDSA key at once (pooled contexts): every signature verifies, no nonce repeats",
        arguments: [SignatureAlgorithm.es256, .es384]
    )
    func concurrentSigning(algorithm: SignatureAlgorithm) async throws {
        let key = try SigningKey.generate(algorithm)
        let half = algorithm.fixedSignatureLength! / 2
        let signatures = try await withThrowingTaskGroup(of: [(message: [UInt8], signature: [UInt8])].self) { group in
            for task in 0..<8 {
                group.addTask {
                    try (0..<50).map { round in
                        let message = Array("task \(task) round \(round)".utf8)
                        return (message, try key.sign(message))
                    }
                }
            }
            var all: [(message: [UInt8], signature: [UInt8])] = []
            for try await batch in group { all += batch }
            return all
        }
        #expect(signatures.count == 400)
        for (message, signature) in signatures {
            #expect(try key.verifyingKey.verify(signature: signature, message: message))
        }
        // r = x(kG): a repeated r would mean a repeated nonce, which gives the private key away.
        let rs = Set(signatures.map { Array($0.signature.prefix(half)) })
        #expect(rs.count == signatures.count)
    }

    @Test(
        "RSA refuses a signature that is not exactly the modulus length",
        arguments: [SignatureAlgorithm.rs256, .ps256]
    )
    func rsaLength(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let signature = try key.sign(SignatureEncodingTests.message)
        #expect(signature.count == 256)
        for bad in [Array(signature.dropLast()), signature + [0], [0] + signature, []] {
            let error = #expect(throws: CryptoError.self, "\(bad.count) bytes") {
                try key.verifyingKey.verify(signature: bad, message: SignatureEncodingTests.message)
            }
            #expect(error?.code == .signatureEncoding)
        }
    }

    @Test("RS256 is deterministic and PS256 is randomised, and neither verifies as the other")
    func rsaPaddings() throws {
        let rs = try SigningKey.generate(.rs256)
        let message = SignatureEncodingTests.message
        #expect(try rs.sign(message) == rs.sign(message))
        let pem = try rs.pkcs8PEM()
        let ps = try SigningKey(pem: pem, algorithm: .ps256)
        let psSignature = try ps.sign(message)
        #expect(try psSignature != ps.sign(message))
        #expect(try ps.verifyingKey.verify(signature: psSignature, message: message))
        // Same RSA key, other padding: a PS256 signature must not pass RS256 verification and back.
        #expect(try rs.verifyingKey.verify(signature: psSignature, message: message) == false)
        #expect(try ps.verifyingKey.verify(signature: rs.sign(message), message: message) == false)
    }

    @Test("Ed25519 refuses signatures of the wrong length")
    func ed25519Length() throws {
        let key = try SigningKey.generate(.edDSA)
        let signature = try key.sign(SignatureEncodingTests.message)
        #expect(signature.count == 64)
        for bad in [Array(signature.dropLast()), signature + [0], [UInt8](repeating: 0, count: 64), []] {
            // Either answer refuses the signature; what matters is that it never verifies.
            let verified =
                (try? key.verifyingKey.verify(signature: bad, message: SignatureEncodingTests.message)) ?? false
            #expect(verified == false, "\(bad.count) bytes")
        }
    }

    @Test(
        "a signature by one key never verifies under another key of the same algorithm",
        arguments: SignatureAlgorithm.allCases
    )
    func otherKey(algorithm: SignatureAlgorithm) throws {
        let signer = try SigningKey.generate(algorithm)
        let other = try SigningKey.generate(algorithm)
        let signature = try signer.sign(SignatureEncodingTests.message)
        #expect(try other.verifyingKey.verify(signature: signature, message: SignatureEncodingTests.message) == false)
    }
}
