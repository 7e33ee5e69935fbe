internal import COpenSSL
import Synchronization

/// ECDSA P-256 verification (SEC 1 §4.1.4) for one public key, about twice as fast as
/// `EVP_PKEY_verify` once the key is hot: `u₁·G + u₂·Q` is computed as two fixed-base
/// multiplications, each with a precomputed table (OpenSSL's own for G, one built once for Q
/// by OpenSSL from a P-256 group whose generator is Q), instead of a fixed-base and a
/// variable-base one. Every step is an OpenSSL call; only the verification equation is
/// written here, and `AsymmetricKeyTests` hold it to `EVP_PKEY_verify` over random and
/// edge-case signatures.
///
/// Not used when OpenSSL runs in FIPS mode (the low-level EC calls are not the FIPS
/// provider's), nor for keys that verify a handful of signatures: building the table takes
/// tens of milliseconds (see `AsymmetricKey`). The speed-up rests on OpenSSL's nistz256 code
/// (x86-64 and arm64 builds), which uses a group's precomputed table for its generator.
final class P256FixedKeyVerifier: @unchecked Sendable {
    // Safe: both groups and the order are only read after init (OpenSSL allows concurrent
    // read-only use of an EC_GROUP); scratch values go to one caller at a time through the
    // pool.
    private let group: OpaquePointer
    private let keyGroup: OpaquePointer
    private let order: OpaquePointer
    private let scratch = ContextPool<Scratch> { $0.free() }

    /// Per-call BIGNUMs and points, reused.
    struct Scratch {
        let ctx: OpaquePointer
        let r, s, e, w, u1, u2, x: OpaquePointer
        let p1, p2, sum: OpaquePointer

        init?(group: OpaquePointer, keyGroup: OpaquePointer) {
            guard let ctx = BN_CTX_new() else { return nil }
            let numbers = (0..<7).map { _ in BN_new() }
            let p1 = EC_POINT_new(group)
            let p2 = EC_POINT_new(keyGroup)
            let sum = EC_POINT_new(group)
            guard numbers.allSatisfy({ $0 != nil }), let p1, let p2, let sum else {
                for number in numbers { BN_free(number) }
                EC_POINT_free(p1)
                EC_POINT_free(p2)
                EC_POINT_free(sum)
                BN_CTX_free(ctx)
                return nil
            }
            self.ctx = ctx
            (r, s, e, w, u1, u2, x) = (
                numbers[0]!, numbers[1]!, numbers[2]!, numbers[3]!, numbers[4]!, numbers[5]!, numbers[6]!
            )
            (self.p1, self.p2, self.sum) = (p1, p2, sum)
        }

        func free() {
            for number in [r, s, e, w, u1, u2, x] { BN_free(number) }
            for point in [p1, p2, sum] { EC_POINT_free(point) }
            BN_CTX_free(ctx)
        }
    }

    /// Tables that may exist at once in the process (each ~150 KB), for automatic builds.
    static let maxTables = 32
    private static let tables = Atomic<Int>(0)
    private static let building = Atomic<Bool>(false)

    /// Claims the one automatic build slot, if it is free and the process is under
    /// `maxTables`; the caller ends it with `endBuild()`.
    static func reserveBuild() -> Bool {
        guard building.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return false
        }
        guard tables.load(ordering: .relaxed) < maxTables else {
            building.store(false, ordering: .releasing)
            return false
        }
        return true
    }

    static func endBuild() { building.store(false, ordering: .releasing) }

    /// The verifier for `key`'s public point (a P-256 key: `AsymmetricKey` asks only for its
    /// ES256 keys, and any other point fails to decode below), or nil when
    /// OpenSSL is in FIPS mode or the key comes from the FIPS provider, or when OpenSSL
    /// cannot build the table.
    init?(publicKey key: EVPKey) {
        guard key.allowsLowLevelEC else { return nil }
        var encoded = [UInt8](repeating: 0, count: 65)
        var length = 0
        guard
            EVP_PKEY_get_octet_string_param(key.pointer, tokend_param_pub_key(), &encoded, encoded.count, &length) == 1,
            let ctx = BN_CTX_new()
        else {
            OpenSSL.clearErrors()
            return nil
        }
        defer { BN_CTX_free(ctx) }
        guard let group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1) else { return nil }
        guard let keyGroup = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1) else {
            EC_GROUP_free(group)
            return nil
        }
        // Q, checked to be on the curve (oct2point) and not the point at infinity.
        let point = EC_POINT_new(group)
        defer { EC_POINT_free(point) }
        guard let point, let order = EC_GROUP_get0_order(group),
            EC_POINT_oct2point(group, point, encoded, length, ctx) == 1,
            EC_POINT_is_at_infinity(group, point) == 0,
            EC_GROUP_set_generator(keyGroup, point, order, BN_value_one()) == 1,
            tokend_ec_group_precompute_mult(keyGroup, ctx) == 1
        else {
            OpenSSL.clearErrors()
            EC_GROUP_free(group)
            EC_GROUP_free(keyGroup)
            return nil
        }
        self.group = group
        self.keyGroup = keyGroup
        self.order = order
        P256FixedKeyVerifier.tables.add(1, ordering: .relaxed)
    }

    deinit {
        scratch.drain()
        EC_GROUP_free(group)
        EC_GROUP_free(keyGroup)
        P256FixedKeyVerifier.tables.subtract(1, ordering: .relaxed)
    }

    /// Whether (r, s) is a valid signature of `digest` (the SHA-256 of the message) under Q.
    /// r and s are 32 big-endian bytes each, already checked to lie in [1, n−1]. Nil when an
    /// OpenSSL call fails (out of memory): the caller verifies another way.
    func verify(
        r rBytes: UnsafeRawBufferPointer,
        s sBytes: UnsafeRawBufferPointer,
        digest: UnsafeRawBufferPointer
    ) -> Bool? {
        precondition(rBytes.count == 32 && sBytes.count == 32 && digest.count == 32)
        guard let v = scratch.take() ?? Scratch(group: group, keyGroup: keyGroup) else { return nil }
        func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
            buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        }
        // e: the digest as an integer (256 bits, the bit length of n: nothing to truncate).
        let ok =
            BN_bin2bn(bytes(rBytes), 32, v.r) != nil
            && BN_bin2bn(bytes(sBytes), 32, v.s) != nil
            && BN_bin2bn(bytes(digest), 32, v.e) != nil
            // w = s⁻¹, u₁ = e·w, u₂ = r·w (mod n)
            && BN_mod_inverse(v.w, v.s, order, v.ctx) != nil
            && BN_mod_mul(v.u1, v.e, v.w, order, v.ctx) == 1
            && BN_mod_mul(v.u2, v.r, v.w, order, v.ctx) == 1
            // R = u₁·G + u₂·Q, each product from its generator's table
            && EC_POINT_mul(group, v.p1, v.u1, nil, nil, v.ctx) == 1
            && EC_POINT_mul(keyGroup, v.p2, v.u2, nil, nil, v.ctx) == 1
            && EC_POINT_add(group, v.sum, v.p1, v.p2, v.ctx) == 1
        guard ok else {
            OpenSSL.clearErrors()
            v.free()
            return nil
        }
        // R = O fails; else valid exactly when x(R) mod n = r.
        var valid = false
        if EC_POINT_is_at_infinity(group, v.sum) == 0 {
            guard EC_POINT_get_affine_coordinates(group, v.sum, v.x, nil, v.ctx) == 1,
                BN_nnmod(v.x, v.x, order, v.ctx) == 1
            else {
                OpenSSL.clearErrors()
                v.free()
                return nil
            }
            valid = BN_cmp(v.x, v.r) == 0
        }
        scratch.give(v)
        return valid
    }
}
