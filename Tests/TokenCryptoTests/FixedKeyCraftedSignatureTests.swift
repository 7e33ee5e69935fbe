internal import COpenSSL
import Testing

@testable import TokenCrypto

/// Signatures built to reach the table path's own branches, which random signatures never
/// do: R = u₁·G + u₂·Q where the two products are equal (the addition doubles), opposite
/// (R is the point at infinity), and an R whose x-coordinate is at least n (valid only
/// through the reduction mod n). Each is judged alike by the table and `EVP_PKEY_verify`.
@Suite("ES256 table path: crafted signatures")
struct FixedKeyCraftedSignatureTests {
    /// OpenSSL's big numbers and P-256, for building the signatures.
    final class Curve {
        let ctx = BN_CTX_new()!
        let group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)!
        var order: OpaquePointer { EC_GROUP_get0_order(group)! }

        deinit {
            EC_GROUP_free(group)
            BN_CTX_free(ctx)
        }

        func number(_ bytes: [UInt8]) -> OpaquePointer { BN_bin2bn(bytes, Int32(bytes.count), nil)! }

        func bytes32(_ value: OpaquePointer) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: 32)
            _ = BN_bn2binpad(value, &out, 32)
            return out
        }

        func modMul(_ a: OpaquePointer, _ b: OpaquePointer) -> OpaquePointer {
            let r = BN_new()!
            BN_mod_mul(r, a, b, order, ctx)
            return r
        }

        func modInverse(_ a: OpaquePointer) -> OpaquePointer { BN_mod_inverse(nil, a, order, ctx)! }

        func negate(_ a: OpaquePointer) -> OpaquePointer {
            let r = BN_new()!
            BN_mod_sub(r, order, a, order, ctx)
            return r
        }

        /// Uncompressed point bytes as a P-256 SubjectPublicKeyInfo.
        func spki(_ point: OpaquePointer) -> [UInt8] {
            var octets = [UInt8](repeating: 0, count: 65)
            _ = EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, &octets, 65, ctx)
            return bytes(hex: "3059301306072a8648ce3d020106082a8648ce3d030107034200") + octets
        }
    }

    private static func outcomes(
        _ key: VerifyingKey,
        _ signature: [UInt8],
        _ message: [UInt8]
    ) throws -> (evp: String, table: String) {
        guard case .asymmetric(let asymmetric) = key.material else { throw CryptoError.openssl("not EC") }
        let evp = try AsymmetricKey(key: asymmetric.key, algorithm: .es256)
        let table = try AsymmetricKey(key: asymmetric.key, algorithm: .es256)
        table.prepareFixedKeyVerifier()
        #expect(table.usesFixedKeyVerifier)
        func run(_ key: AsymmetricKey) -> String {
            signature.withUnsafeBytes { s in
                message.withUnsafeBytes { m in
                    do { return try key.verify(signature: s, message: m) ? "valid" : "invalid" } catch {
                        return "error: \(error)"
                    }
                }
            }
        }
        return (run(evp), run(table))
    }

    @Test("u₁·G = ±u₂·Q: the addition doubles, or R is the point at infinity; both invalid on both paths")
    func doublingAndInfinity() throws {
        let curve = Curve()
        for _ in 0..<4 {
            let signer = try SigningKey.generate(.es256)
            guard case .asymmetric(let pair) = signer.material else { throw CryptoError.openssl("not EC") }
            var d: OpaquePointer?
            #expect(EVP_PKEY_get_bn_param(pair.key.pointer, tokend_param_priv_key(), &d) == 1)
            let message = Array("crafted".utf8)
            let e = curve.number(SHA256.hash(message))
            // u₁ = u₂·d exactly when e = r·d, so r = e·d⁻¹ makes u₁·G = u₂·Q.
            let rDouble = curve.modMul(e, curve.modInverse(d!))
            let rInfinity = curve.negate(rDouble)
            let s = curve.number((0..<32).map { _ in UInt8.random(in: 0...0x7F) })
            for r in [rDouble, rInfinity] {
                let signature = curve.bytes32(r) + curve.bytes32(s)
                let (evp, table) = try Self.outcomes(signer.verifyingKey, signature, message)
                #expect(evp == "invalid")
                #expect(table == evp)
            }
        }
    }

    @Test("R with x(R) ≥ n: valid through the reduction mod n on both paths; r = x(R) itself is refused")
    func xAtLeastOrder() throws {
        let curve = Curve()
        let message = Array("x(R) >= n".utf8)
        let e = curve.number(SHA256.hash(message))
        // An x in [n, p) on the curve: n + k for the first k that has a point.
        let x = BN_dup(curve.order)!
        let point = EC_POINT_new(curve.group)!
        var k: UInt = 0
        repeat {
            k += 1
            BN_add_word(x, 1)
        } while EC_POINT_set_compressed_coordinates(curve.group, point, x, 0, curve.ctx) != 1
        ERR_clear_error()
        // Q = r⁻¹·(s·R − e·G) with r = x − n = k: then u₁·G + u₂·Q = R.
        let r = BN_new()!
        BN_set_word(r, k)
        let s = curve.number((0..<32).map { _ in UInt8.random(in: 0...0x7F) })
        let sR = EC_POINT_new(curve.group)!
        let eG = EC_POINT_new(curve.group)!
        let q = EC_POINT_new(curve.group)!
        #expect(EC_POINT_mul(curve.group, sR, nil, point, s, curve.ctx) == 1)
        #expect(EC_POINT_mul(curve.group, eG, e, nil, nil, curve.ctx) == 1)
        #expect(EC_POINT_invert(curve.group, eG, curve.ctx) == 1)
        #expect(EC_POINT_add(curve.group, q, sR, eG, curve.ctx) == 1)
        #expect(EC_POINT_mul(curve.group, q, nil, q, curve.modInverse(r), curve.ctx) == 1)
        let key = try VerifyingKey(spki: curve.spki(q), algorithm: .es256)

        let (evp, table) = try Self.outcomes(key, curve.bytes32(r) + curve.bytes32(s), message)
        #expect(evp == "valid")
        #expect(table == "valid")
        let (evpFull, tableFull) = try Self.outcomes(key, curve.bytes32(x) + curve.bytes32(s), message)
        #expect(evpFull.hasPrefix("error"))
        #expect(tableFull == evpFull)
    }

    @Test("many threads verifying through one table at once agree with EVP")
    func concurrent() async throws {
        let signer = try SigningKey.generate(.es256)
        guard case .asymmetric(let pair) = signer.verifyingKey.material else { throw CryptoError.openssl("not EC") }
        let table = try AsymmetricKey(key: pair.key, algorithm: .es256)
        table.prepareFixedKeyVerifier()
        #expect(table.usesFixedKeyVerifier)
        let messages = (0..<16).map { Array("message \($0)".utf8) }
        let signatures = try messages.map { try signer.sign($0) }
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var all = true
                    for round in 0..<40 {
                        let i = (task + round) % 16
                        let good = try signatures[i].withUnsafeBytes { s in
                            try messages[i].withUnsafeBytes { try table.verify(signature: s, message: $0) }
                        }
                        let bad = try signatures[i].withUnsafeBytes { s in
                            try messages[(i + 1) % 16].withUnsafeBytes { try table.verify(signature: s, message: $0) }
                        }
                        all = all && good && !bad
                    }
                    return all
                }
            }
            var all: [Bool] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results == Array(repeating: true, count: 8))
    }
}
