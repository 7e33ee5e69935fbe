internal import COpenSSL

/// PEM reading and writing over memory BIOs. Never prompts for a passphrase.
enum PEM {
    static func readPrivateKey(_ bytes: [UInt8]) throws -> EVPKey {
        let key = try OpenSSL.withMemoryBIO(bytes) { tokend_read_private_pem($0) }
        guard let key else {
            let reason = describeFailure(bytes, expected: "a PEM private key (BEGIN PRIVATE KEY)")
            throw CryptoError(.invalidKey, reason)
        }
        return EVPKey(taking: key)
    }

    /// A public key from SPKI PEM, a certificate, or a private key's public half.
    static func readPublicKey(_ bytes: [UInt8]) throws -> EVPKey {
        let text = String(decoding: bytes, as: UTF8.self)
        if text.contains("-----BEGIN PUBLIC KEY-----") {
            if let key = try OpenSSL.withMemoryBIO(bytes, { tokend_read_public_pem($0) }) {
                return EVPKey(taking: key)
            }
        } else if text.contains("-----BEGIN CERTIFICATE-----") {
            if let cert = try OpenSSL.withMemoryBIO(bytes, { tokend_read_certificate_pem($0) }) {
                defer { X509_free(cert) }
                if let key = X509_get_pubkey(cert) { return EVPKey(taking: key) }
            }
        } else if text.contains("PRIVATE KEY-----") {
            return try readPrivateKey(bytes).publicOnly()
        }
        throw CryptoError(
            .invalidKey,
            describeFailure(bytes, expected: "a PEM public key (BEGIN PUBLIC KEY), certificate or private key")
        )
    }

    static func writePrivateKey(_ key: EVPKey) throws -> String {
        let bytes = try OpenSSL.collectingBIO { bio in
            guard tokend_write_pkcs8_pem(bio, key.pointer) == 1 else {
                throw CryptoError.openssl("cannot write the private key as PKCS#8 PEM")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func writePublicKey(_ key: EVPKey) throws -> String {
        let bytes = try OpenSSL.collectingBIO { bio in
            guard PEM_write_bio_PUBKEY(bio, key.pointer) == 1 else {
                throw CryptoError.openssl("cannot write the public key as PEM")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Explains why PEM input failed, without echoing the input (it may be a secret).
    private static func describeFailure(_ bytes: [UInt8], expected: String) -> String {
        let queue = OpenSSL.drainErrors()
        let text = String(decoding: bytes.prefix(4096), as: UTF8.self)
        if text.contains("ENCRYPTED") {
            return "the PEM key is encrypted; tokend needs an unencrypted PKCS#8 key"
        }
        if !text.contains("-----BEGIN") {
            return "expected \(expected), found no PEM header"
        }
        let detail = queue.last.map { " (\($0))" } ?? ""
        return "expected \(expected), but the PEM could not be parsed\(detail)"
    }
}
