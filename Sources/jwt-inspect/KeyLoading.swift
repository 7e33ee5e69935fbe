import JOSE
import TokenCrypto

/// Builds the key set from --key, --jwks, --keys-dir and --secret-file.
enum KeyLoading {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A PEM file (public key, certificate or private key) or a JWK / JWK Set JSON file.
    static func loadKey(path: String, algorithm: SignatureAlgorithm?, into set: inout KeySet) throws {
        let bytes = try SystemIO.readFile(path)
        let text = String(decoding: bytes, as: UTF8.self)
        if text.trimmingWhitespace.hasPrefix("{") {
            try loadJWKS(bytes: bytes, source: "--key \(path)", into: &set)
            return
        }
        do {
            let key = try VerifyingKey(pem: text, algorithm: algorithm)
            set.add(
                KeySet.Entry(kid: nil, key: key, source: "--key \(path)", algorithmIsDeclared: algorithm != nil)
            )
        } catch let error as CryptoError {
            throw Failure(description: "--key \(path): \(error.reason)")
        }
    }

    static func loadJWKS(path: String, into set: inout KeySet) throws {
        try loadJWKS(bytes: try SystemIO.readFile(path), source: "--jwks \(path)", into: &set)
    }

    private static func loadJWKS(bytes: [UInt8], source: String, into set: inout KeySet) throws {
        do {
            for entry in try KeySet.parse(jwks: bytes, source: source).entries { set.add(entry) }
        } catch let error as JOSEError {
            throw Failure(description: error.reason)
        }
    }

    /// An HS256 secret: the file's bytes, less one trailing newline.
    static func loadSecret(path: String, into set: inout KeySet) throws {
        var bytes = try SystemIO.readFile(path)
        if bytes.last == 0x0A { bytes.removeLast() }
        if bytes.last == 0x0D { bytes.removeLast() }
        do {
            set.add(KeySet.Entry(kid: nil, key: try VerifyingKey(secret: bytes), source: "--secret-file \(path)"))
        } catch let error as CryptoError {
            throw Failure(description: "--secret-file \(path): \(error.reason)")
        }
    }

    /// tokend's key directory: keyring.json names every key with its state; public keys come
    /// from its `jwk` members, else from `<kid>.pem`. Without keyring.json, every `*.pem`
    /// is loaded with its file name as kid.
    static func loadKeysDirectory(_ dir: String, into set: inout KeySet) throws {
        let index = dir + "/keyring.json"
        if SystemIO.fileExists(index) {
            let document: KeyringDocument
            do { document = try KeyringDocument.parse(try SystemIO.readFile(index)) } catch let error as JOSEError {
                throw Failure(description: "--keys-dir \(dir): \(error.reason)")
            }
            for entry in document.keys {
                let key: VerifyingKey
                if let jwk = entry.publicJWK {
                    do { key = try JWK.verifyingKey(from: jwk).key } catch let error as JOSEError {
                        throw Failure(description: "--keys-dir \(dir): key \(entry.kid): \(error.reason)")
                    }
                } else {
                    key = try privateKeyFile(dir: dir, kid: entry.kid, algorithm: entry.algorithm)
                }
                guard key.algorithm == entry.algorithm else {
                    throw Failure(
                        description:
                            "--keys-dir \(dir): key \(entry.kid) is listed as \(entry.algorithm) but is a \(key.algorithm) key"
                    )
                }
                set.add(KeySet.Entry(kid: entry.kid, key: key, state: entry.state, source: "--keys-dir \(dir)"))
            }
            return
        }
        let pems = try SystemIO.listDirectory(dir).filter { $0.hasSuffix(".pem") }
        guard !pems.isEmpty else { throw Failure(description: "--keys-dir \(dir): no keyring.json and no .pem files") }
        for name in pems {
            let kid = String(name.dropLast(4))
            set.add(
                KeySet.Entry(
                    kid: kid,
                    key: try privateKeyFile(dir: dir, kid: kid, algorithm: nil),
                    source: "--keys-dir \(dir)",
                    algorithmIsDeclared: false
                )
            )
        }
    }

    private static func privateKeyFile(dir: String, kid: String, algorithm: SignatureAlgorithm?) throws -> VerifyingKey
    {
        let path = "\(dir)/\(kid).pem"
        let bytes: [UInt8]
        do { bytes = try SystemIO.readFile(path) } catch {
            throw Failure(
                description:
                    "--keys-dir: \(error) (private key files are 0600: run as the key owner, or verify with the published JWKS via --jwks)"
            )
        }
        do {
            return try SigningKey(pem: String(decoding: bytes, as: UTF8.self), algorithm: algorithm).verifyingKey
        } catch let error as CryptoError {
            throw Failure(description: "--keys-dir: \(path): \(error.reason)")
        }
    }
}
