internal import COpenSSL

/// An HS256 secret with an HMAC context keyed once; each MAC copies that context, so the
/// key schedule (ipad/opad blocks) is not recomputed per token.
final class HMACKey: @unchecked Sendable {
    // Safe: `base` is keyed in init and never used directly afterwards except as the
    // read-only source of EVP_MAC_CTX_dup; each operation works on its own copy.
    private let base: OpaquePointer
    let secret: [UInt8]

    /// The smallest secret HS256 accepts: as many bytes as the hash output (RFC 7518 §3.2).
    static let minimumLength = 32

    private static let mac: HMACAlgorithm = HMACAlgorithm()

    init(secret: [UInt8]) throws {
        guard secret.count >= HMACKey.minimumLength else {
            throw CryptoError.weakKey(
                "HS256 secrets must be at least \(HMACKey.minimumLength) bytes, got \(secret.count)"
            )
        }
        if HMACKey.looksAsymmetric(secret) {
            throw CryptoError.algorithmMismatch(
                "this looks like a PEM, DER or SSH public/private key; it cannot be used as an HS256 secret"
            )
        }
        guard let ctx = EVP_MAC_CTX_new(HMACKey.mac.pointer) else {
            throw CryptoError.openssl("cannot create an HMAC context")
        }
        let ok = secret.withUnsafeBufferPointer { tokend_hmac_init(ctx, $0.baseAddress, $0.count, "SHA256") }
        guard ok == 1 else {
            EVP_MAC_CTX_free(ctx)
            throw CryptoError.openssl("cannot key HMAC-SHA256")
        }
        self.base = ctx
        self.secret = secret
    }

    /// Keyed copies of `base`, each used by one caller at a time.
    private let contexts = ContextPool<OpaquePointer> { EVP_MAC_CTX_free($0) }

    deinit { EVP_MAC_CTX_free(base) }

    /// HMAC-SHA256 of `message`.
    func authenticationCode(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { authenticationCode(message, into: $0.baseAddress!) }
        return out
    }

    /// HMAC-SHA256 of `message` into 32 bytes at `out`. Reuses a pooled context: a context
    /// re-initialised with a NULL key keeps its key schedule (OpenSSL's HMAC_Init_ex).
    func authenticationCode(_ message: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) {
        let ctx: OpaquePointer
        if let pooled = contexts.take() {
            ctx = pooled
            guard EVP_MAC_init(ctx, nil, 0, nil) == 1 else {
                fatalError("EVP_MAC_init failed: \(OpenSSL.drainErrors())")
            }
        } else {
            guard let fresh = EVP_MAC_CTX_dup(base) else {
                fatalError("EVP_MAC_CTX_dup failed: \(OpenSSL.drainErrors())")
            }
            ctx = fresh
        }
        var length = 0
        let ok =
            EVP_MAC_update(ctx, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1
            && EVP_MAC_final(ctx, out, &length, 32) == 1
        precondition(ok && length == 32, "HMAC-SHA256 failed: \(OpenSSL.drainErrors())")
        contexts.give(ctx)
    }

    /// PEM armour, an OpenSSH public key, or DER that OpenSSL parses as a key: refusing these
    /// as HMAC secrets stops the classic RS256→HS256 confusion where a verifier is handed a
    /// public key as its "secret".
    static func looksAsymmetric(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes.prefix(64), as: UTF8.self)
        let trimmed = text.drop { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }
        for prefix in ["-----BEGIN", "ssh-rsa ", "ssh-ed25519 ", "ecdsa-sha2-", "{\"kty\""]
        where trimmed.hasPrefix(prefix) {
            return true
        }
        if bytes.first == 0x04, bytes.count == 65 || bytes.count == 97, isCurvePoint(bytes) { return true }
        guard bytes.first == 0x30 else { return false }
        return bytes.withUnsafeBufferPointer { buffer -> Bool in
            defer { OpenSSL.clearErrors() }
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            if let key = d2i_PUBKEY(nil, &cursor, buffer.count) {
                EVP_PKEY_free(key)
                return true
            }
            cursor = buffer.baseAddress
            if let key = d2i_PublicKey(EVP_PKEY_RSA, nil, &cursor, buffer.count) {
                EVP_PKEY_free(key)
                return true
            }
            cursor = buffer.baseAddress
            if let key = d2i_AutoPrivateKey(nil, &cursor, buffer.count) {
                EVP_PKEY_free(key)
                return true
            }
            return false
        }
    }
}

/// True when `bytes` is an uncompressed P-256 or P-384 point (a raw EC public key).
private func isCurvePoint(_ bytes: [UInt8]) -> Bool {
    let size = (bytes.count - 1) / 2
    let jwk = JWKParameters([
        ("kty", "EC"), ("crv", size == 32 ? "P-256" : "P-384"),
        ("x", Base64URL.encode(bytes[1...size])), ("y", Base64URL.encode(bytes[(size + 1)...])),
    ])
    return (try? VerifyingKey(jwk: jwk)) != nil
}

private struct HMACAlgorithm: @unchecked Sendable {
    // Safe: a fetched EVP_MAC is immutable and shareable between threads; never freed.
    let pointer: OpaquePointer
    init() {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            fatalError("OpenSSL has no HMAC: \(OpenSSL.drainErrors())")
        }
        pointer = mac
    }
}
