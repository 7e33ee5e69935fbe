internal import COpenSSL

/// A private key or shared secret that signs JWS tokens with exactly one algorithm.
public struct SigningKey: Sendable {
    enum Material: Sendable {
        case asymmetric(AsymmetricKey)
        case secret(HMACKey)
    }

    let material: Material

    /// The one algorithm this key signs with.
    public var algorithm: SignatureAlgorithm {
        switch material {
        case .asymmetric(let key): key.algorithm
        case .secret: .hs256
        }
    }

    /// The key that verifies this key's signatures (the public half, or the same secret).
    public var verifyingKey: VerifyingKey {
        switch material {
        case .asymmetric(let key):
            // publicOnly cannot fail for a key that already signs; fall back to the pair itself.
            let pub = (try? key.key.publicOnly()).flatMap { try? AsymmetricKey(key: $0, algorithm: key.algorithm) }
            return VerifyingKey(material: .asymmetric(pub ?? key))
        case .secret(let secret):
            return VerifyingKey(material: .secret(secret))
        }
    }

    init(material: Material) { self.material = material }

    /// A fresh key for `algorithm` from OpenSSL's CSPRNG (RSA keys are `rsaBits` long).
    public static func generate(_ algorithm: SignatureAlgorithm, rsaBits: Int = 2048) throws -> SigningKey {
        let pointer: OpaquePointer?
        switch algorithm {
        case .es256: pointer = tokend_ec_keygen("P-256")
        case .es384: pointer = tokend_ec_keygen("P-384")
        case .edDSA: pointer = tokend_ed25519_keygen()
        case .rs256, .ps256:
            guard rsaBits >= 2048 else { throw CryptoError.weakKey("RSA keys must be at least 2048 bits") }
            pointer = tokend_rsa_keygen(rsaBits)
        case .hs256:
            return try SigningKey(secret: SecureRandom.bytes(32))
        }
        guard let pointer else { throw CryptoError.openssl("cannot generate a \(algorithm) key") }
        return SigningKey(material: .asymmetric(try AsymmetricKey(key: EVPKey(taking: pointer), algorithm: algorithm)))
    }

    /// An HS256 key from a shared secret of at least 32 bytes. Refuses bytes that are a
    /// PEM, DER or SSH key, so a public key can never be turned into an HMAC secret.
    public init(secret: [UInt8]) throws {
        self.init(material: .secret(try HMACKey(secret: secret)))
    }

    /// A private key from PEM (PKCS#8, or the traditional EC/RSA forms). The algorithm is
    /// inferred from the key (RSA defaults to RS256) unless given; a mismatch throws.
    /// Encrypted PEM is refused rather than prompting for a passphrase.
    public init(pem: String, algorithm: SignatureAlgorithm? = nil) throws {
        if let secret = try SecretArmour.decode(pem) {
            if let algorithm, algorithm != .hs256 {
                throw CryptoError.algorithmMismatch("an HMAC secret cannot be used for \(algorithm)")
            }
            self.init(material: .secret(try HMACKey(secret: secret)))
            return
        }
        let key = try PEM.readPrivateKey(Array(pem.utf8))
        self.init(material: .asymmetric(try AsymmetricKey(key: key, algorithm: algorithm)))
    }

    /// Signs `message` (the JWS signing input) and returns the JWS signature bytes: raw
    /// R‖S for ECDSA, the RSA or Ed25519 signature, or the HMAC.
    public func sign<Bytes: Collection<UInt8>>(_ message: Bytes) throws -> [UInt8] {
        let bytes = Array(message)
        return try bytes.withUnsafeBytes { buffer in
            switch material {
            case .asymmetric(let key): try key.sign(buffer)
            case .secret(let secret): secret.authenticationCode(buffer)
            }
        }
    }

    /// The private key as unencrypted PKCS#8 PEM. Write it only to a 0600 file.
    public func pkcs8PEM() throws -> String {
        guard case .asymmetric(let key) = material else {
            throw CryptoError.algorithmMismatch("an HS256 secret has no PEM form")
        }
        return try PEM.writePrivateKey(key.key)
    }

    /// The key file form: PKCS#8 PEM for a key pair, the `TOKEND HMAC SECRET` armour for an
    /// HS256 secret. `init(pem:)` reads both. Write it only to a 0600 file.
    public func pemEncoded() throws -> String {
        switch material {
        case .asymmetric(let key): try PEM.writePrivateKey(key.key)
        case .secret(let secret): SecretArmour.encode(secret.secret)
        }
    }

    /// The raw shared secret of an HS256 key; nil for a key pair.
    public var secretBytes: [UInt8]? {
        guard case .secret(let secret) = material else { return nil }
        return secret.secret
    }
}

/// tokend's file form for HS256 secrets, so every key in a key directory is a `<kid>.pem`:
/// `-----BEGIN TOKEND HMAC SECRET-----`, the secret in base64url, the END line.
enum SecretArmour {
    static let begin = "-----BEGIN TOKEND HMAC SECRET-----"
    static let end = "-----END TOKEND HMAC SECRET-----"

    static func encode(_ secret: [UInt8]) -> String {
        "\(begin)\n\(Base64URL.encode(secret))\n\(end)\n"
    }

    /// The secret, or nil when `text` is not this armour.
    static func decode(_ text: String) throws -> [UInt8]? {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.filter { !$0.isWhitespace } }
        guard let start = lines.firstIndex(of: begin.filter { !$0.isWhitespace }),
            let stop = lines.firstIndex(of: end.filter { !$0.isWhitespace }), start < stop
        else { return nil }
        let body = lines[(start + 1)..<stop].joined()
        do { return try Base64URL.decode(body) } catch {
            throw CryptoError.invalidKey("the TOKEND HMAC SECRET body is not base64url")
        }
    }
}
