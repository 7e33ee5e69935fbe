internal import COpenSSL

/// SHA-256 (FIPS 180-4) through OpenSSL.
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func hash<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        Digest.hash(bytes, with: .sha256)
    }
}

/// SHA-384 (FIPS 180-4) through OpenSSL.
public enum SHA384 {
    /// The 48-byte digest of `bytes`.
    public static func hash<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        Digest.hash(bytes, with: .sha384)
    }
}

enum Digest {
    static func hash<Bytes: Collection<UInt8>>(_ bytes: Bytes, with md: FetchedDigest) -> [UInt8] {
        if let result = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0), with: md) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { hash($0, with: md) }
    }

    static func hash(_ bytes: UnsafeRawBufferPointer, with md: FetchedDigest) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer {
            EVP_Digest(bytes.baseAddress, bytes.count, $0.baseAddress, &length, md.pointer, nil)
        }
        precondition(ok == 1, "EVP_Digest failed: \(OpenSSL.drainErrors())")
        out.removeLast(out.count - Int(length))
        return out
    }
}

/// Random bytes from OpenSSL's CSPRNG.
public enum SecureRandom {
    /// `count` bytes from the CSPRNG. Traps if the generator cannot be seeded, as no safe
    /// fallback exists.
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "the CSPRNG failed: \(OpenSSL.drainErrors())")
        return out
    }
}

/// Comparison of secrets whose time does not depend on where they differ.
public enum ConstantTime {
    /// True when `a` and `b` hold the same bytes. The time taken depends only on the lengths.
    public static func equals<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        let left = Array(a)
        let right = Array(b)
        guard left.count == right.count else { return false }
        if left.isEmpty { return true }
        return left.withUnsafeBytes { l in
            right.withUnsafeBytes { r in CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0 }
        }
    }
}
