internal import COpenSSL

/// Helpers around OpenSSL's C API shared by the key and signature code.
enum OpenSSL {
    /// Empties OpenSSL's thread-local error queue and returns its messages, oldest first.
    static func drainErrors() -> [String] {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages
    }

    /// Discards whatever a failed operation left on the error queue.
    @inline(__always)
    static func clearErrors() { ERR_clear_error() }

    /// Runs `body` with a read-only memory BIO over `bytes`.
    static func withMemoryBIO<R>(_ bytes: [UInt8], _ body: (OpaquePointer) throws -> R) throws -> R {
        try bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else {
                throw CryptoError.openssl("cannot allocate a BIO")
            }
            defer { BIO_free(bio) }
            return try body(bio)
        }
    }

    /// Runs `body` with a writable memory BIO and returns what it wrote.
    static func collectingBIO(_ body: (OpaquePointer) throws -> Void) throws -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.openssl("cannot allocate a BIO") }
        defer { BIO_free(bio) }
        try body(bio)
        var data: UnsafeMutablePointer<CChar>?
        let length = tokend_bio_mem_data(bio, &data)
        guard length >= 0, let data else { return [] }
        return data.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }

    /// A BIGNUM as big-endian bytes, left-padded to `length` when given.
    static func bytes(of bn: OpaquePointer, length: Int? = nil) -> [UInt8] {
        let natural = (Int(BN_num_bits(bn)) + 7) / 8
        let size = max(length ?? natural, natural)
        var out = [UInt8](repeating: 0, count: size)
        _ = out.withUnsafeMutableBufferPointer { BN_bn2binpad(bn, $0.baseAddress, Int32(size)) }
        return out
    }
}

/// A digest implementation fetched once from the default provider. Fetching is costly in
/// OpenSSL 3, so every hash and signature reuses these.
struct FetchedDigest: @unchecked Sendable {
    // Safe: an EVP_MD fetched from a provider is immutable and reference-counted; OpenSSL
    // documents fetched algorithm objects as shareable between threads. It is never freed.
    let pointer: OpaquePointer

    static let sha256 = FetchedDigest(name: "SHA256")
    static let sha384 = FetchedDigest(name: "SHA384")

    private init(name: String) {
        guard let md = EVP_MD_fetch(nil, name, nil) else {
            fatalError("OpenSSL has no \(name) digest: \(OpenSSL.drainErrors())")
        }
        pointer = md
    }

    var size: Int { Int(EVP_MD_get_size(pointer)) }
    var name: String { self.pointer == FetchedDigest.sha256.pointer ? "SHA256" : "SHA384" }
}

/// AES-256-GCM fetched from the default provider once: `EVP_aes_256_gcm()` makes OpenSSL 3
/// fetch the implementation again at every `EVP_EncryptInit_ex`.
struct FetchedCipher: @unchecked Sendable {
    // Safe: as for `FetchedDigest`, a fetched algorithm object is immutable and shareable.
    let pointer: OpaquePointer

    static let aes256GCM = FetchedCipher(name: "AES-256-GCM")

    private init(name: String) {
        guard let cipher = EVP_CIPHER_fetch(nil, name, nil) else {
            fatalError("OpenSSL has no \(name) cipher: \(OpenSSL.drainErrors())")
        }
        pointer = cipher
    }
}
