internal import COpenSSL

/// A public key or shared secret that verifies JWS signatures of exactly one algorithm.
public struct VerifyingKey: Sendable {
    let material: SigningKey.Material

    init(material: SigningKey.Material) { self.material = material }

    /// The one algorithm this key verifies.
    public var algorithm: SignatureAlgorithm {
        switch material {
        case .asymmetric(let key): key.algorithm
        case .secret: .hs256
        }
    }

    /// A public key from PEM: SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), an X.509
    /// certificate, or a private key whose public half is taken. The algorithm is inferred
    /// from the key (RSA defaults to RS256) unless given; a mismatch throws.
    public init(pem: String, algorithm: SignatureAlgorithm? = nil) throws {
        let key = try PEM.readPublicKey(Array(pem.utf8))
        self.init(material: .asymmetric(try AsymmetricKey(key: key, algorithm: algorithm)))
    }

    /// A public key from DER SubjectPublicKeyInfo.
    public init(spki der: [UInt8], algorithm: SignatureAlgorithm? = nil) throws {
        let key = try der.withUnsafeBufferPointer { buffer -> EVPKey in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let key = d2i_PUBKEY(nil, &cursor, buffer.count) else {
                throw CryptoError(
                    .invalidKey,
                    "not a DER SubjectPublicKeyInfo: \(OpenSSL.drainErrors().joined(separator: "; "))"
                )
            }
            return EVPKey(taking: key)
        }
        self.init(material: .asymmetric(try AsymmetricKey(key: key, algorithm: algorithm)))
    }

    /// An HS256 verifier from a shared secret (same rules as `SigningKey(secret:)`).
    public init(secret: [UInt8]) throws {
        self.init(material: .secret(try HMACKey(secret: secret)))
    }

    /// Checks `signature` over `message` (the JWS signing input).
    ///
    /// Returns false for a signature that does not verify. Throws `signatureEncoding` for
    /// one that is not in the algorithm's encoding at all: wrong length, DER where raw R‖S
    /// is required, r or s outside [1, n−1].
    public func verify(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) throws -> Bool {
        switch material {
        case .asymmetric(let key):
            return try key.verify(signature: signature, message: message)
        case .secret(let secret):
            guard signature.count == 32 else {
                throw CryptoError.signatureEncoding("HS256 signature must be 32 bytes, got \(signature.count)")
            }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { expected in
                secret.authenticationCode(message, into: expected.baseAddress!)
                return CRYPTO_memcmp(expected.baseAddress, signature.baseAddress, 32) == 0
            }
        }
    }

    /// Convenience over byte collections.
    public func verify<S: Collection<UInt8>, M: Collection<UInt8>>(signature: S, message: M) throws -> Bool {
        try Array(signature).withUnsafeBytes { s in
            try Array(message).withUnsafeBytes { m in try verify(signature: s, message: m) }
        }
    }

    /// The public key as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`).
    public func publicPEM() throws -> String {
        guard case .asymmetric(let key) = material else {
            throw CryptoError.algorithmMismatch("an HS256 secret has no public key")
        }
        return try PEM.writePublicKey(key.key)
    }

    /// The public key as DER SubjectPublicKeyInfo.
    public func spkiDER() throws -> [UInt8] {
        guard case .asymmetric(let key) = material else {
            throw CryptoError.algorithmMismatch("an HS256 secret has no public key")
        }
        return try key.key.spkiDER()
    }

    /// A short description safe to print: "EC P-256", "RSA 2048-bit", "Ed25519", "HMAC secret".
    public var keyDescription: String {
        switch material {
        case .asymmetric(let key): AsymmetricKey.describe(key.key)
        case .secret(let secret): "HMAC secret (\(secret.secret.count) bytes)"
        }
    }
}
