/// Private signing keys sealed under a KEK (AES-256-GCM), for a keyring kept in a shared
/// database (DESIGN §10).
///
/// A sealed key is `version (1) ‖ KEK fingerprint (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`;
/// the plaintext is the key's file form (`SigningKey.pemEncoded`). The associated data binds
/// the format version, the KEK fingerprint, the kid and the algorithm, so a sealed key
/// copied to another kid or algorithm does not open, and a node holding another KEK is told
/// which KEK the key needs rather than meeting a bare authentication failure.
extension KeyEncryptionKey {
    /// The sealed-key format this tokend writes and reads.
    public static let sealedKeyVersion: UInt8 = 1

    static let sealedHeaderSize = 1 + 8
    static let sealedDomain = Array("tokend sealed signing key".utf8) + [0]

    /// Seals `key`, the private key of `kid`, under this KEK.
    public func seal(_ key: SigningKey, kid: String) throws -> [UInt8] {
        let pem = try key.pemEncoded()
        let header = [KeyEncryptionKey.sealedKeyVersion] + fingerprintBytes
        let box = try AES256GCM.seal(
            Array(pem.utf8),
            key: bytes,
            associatedData: KeyEncryptionKey.associatedData(header: header, kid: kid, algorithm: key.algorithm)
        )
        return header + box
    }

    /// Opens a sealed key, the private key of `kid` for `algorithm`. Refuses a key sealed
    /// under another KEK (naming both fingerprints), an altered or truncated one, one sealed
    /// for another kid or algorithm, and a format version this tokend does not know.
    public func open(_ sealed: [UInt8], kid: String, algorithm: SignatureAlgorithm) throws -> SigningKey {
        guard let version = sealed.first else { throw CryptoError.sealedKey("sealed key \(kid) is empty") }
        guard version == KeyEncryptionKey.sealedKeyVersion else {
            throw CryptoError.sealedKey(
                "key \(kid) is sealed in format version \(version); this tokend reads version \(KeyEncryptionKey.sealedKeyVersion)"
            )
        }
        guard sealed.count >= KeyEncryptionKey.sealedHeaderSize + AES256GCM.nonceSize + AES256GCM.tagSize else {
            throw CryptoError.sealedKey("sealed key \(kid) is truncated (\(sealed.count) bytes)")
        }
        let header = Array(sealed[0..<KeyEncryptionKey.sealedHeaderSize])
        let sealedUnder = Array(header[1...])
        guard sealedUnder == fingerprintBytes else {
            throw CryptoError.wrongKeyEncryptionKey(
                "key \(kid) is sealed under KEK \(KeyEncryptionKey.hex(sealedUnder)), this node's KEK is \(fingerprint)"
            )
        }
        let plaintext: [UInt8]
        do {
            plaintext = try AES256GCM.open(
                Array(sealed[KeyEncryptionKey.sealedHeaderSize...]),
                key: bytes,
                associatedData: KeyEncryptionKey.associatedData(header: header, kid: kid, algorithm: algorithm)
            )
        } catch {
            throw CryptoError.sealedKey(
                "sealed key \(kid) (\(algorithm.rawValue)) does not open under \(description): it was altered, or sealed for another kid or algorithm"
            )
        }
        do {
            return try SigningKey(pem: String(decoding: plaintext, as: UTF8.self), algorithm: algorithm)
        } catch let error as CryptoError {
            throw CryptoError.sealedKey(
                "sealed key \(kid) opened but holds no \(algorithm.rawValue) key: \(error.reason)"
            )
        }
    }

    /// `tokend sealed signing key`, NUL, the header (version, KEK fingerprint), the kid, NUL,
    /// the algorithm name. Kids never hold a NUL (they name files), so the fields cannot run
    /// into each other.
    static func associatedData(header: [UInt8], kid: String, algorithm: SignatureAlgorithm) -> [UInt8] {
        sealedDomain + header + Array(kid.utf8) + [0] + Array(algorithm.rawValue.utf8)
    }
}
