/// An error from TokenCrypto. Its `description` is safe to log: it never holds key material.
public struct CryptoError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of failure this is; errors compare equal by code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        /// The key bytes or text could not be parsed.
        public static let invalidKey = Code(name: "invalidKey")
        /// The key is of a type or size this algorithm refuses (RSA < 2048 bits, HS256 < 32 bytes).
        public static let weakKey = Code(name: "weakKey")
        /// The key's type does not fit the algorithm asked for.
        public static let algorithmMismatch = Code(name: "algorithmMismatch")
        /// The algorithm name is not one TokenCrypto implements.
        public static let unsupportedAlgorithm = Code(name: "unsupportedAlgorithm")
        /// A signature is not in the encoding the algorithm requires (e.g. DER instead of raw R‖S).
        public static let signatureEncoding = Code(name: "signatureEncoding")
        /// The operation needs a private key or secret and only a public key is present.
        public static let notPrivate = Code(name: "notPrivate")
        /// OpenSSL reported a failure; the reason carries its error queue.
        public static let openssl = Code(name: "openssl")
        /// A key-encryption key (KEK) is not 32 random bytes, raw or in base64.
        public static let weakKeyEncryptionKey = Code(name: "weakKeyEncryptionKey")
        /// A sealed private key was sealed under another KEK than this one (its fingerprint says so).
        public static let wrongKeyEncryptionKey = Code(name: "wrongKeyEncryptionKey")
        /// A sealed private key does not open: altered, truncated, of an unknown format, or
        /// sealed for another kid or algorithm.
        public static let sealedKey = Code(name: "sealedKey")
    }

    public let code: Code
    public let reason: String
    public let file: String
    public let line: Int

    init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var description: String { reason }

    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.code == rhs.code }

    static func invalidKey(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.invalidKey, reason, file: file, line: line)
    }
    static func weakKey(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.weakKey, reason, file: file, line: line)
    }
    static func algorithmMismatch(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.algorithmMismatch, reason, file: file, line: line)
    }
    static func signatureEncoding(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.signatureEncoding, reason, file: file, line: line)
    }
    static func notPrivate(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.notPrivate, reason, file: file, line: line)
    }
    static func weakKeyEncryptionKey(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.weakKeyEncryptionKey, reason, file: file, line: line)
    }
    static func wrongKeyEncryptionKey(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.wrongKeyEncryptionKey, reason, file: file, line: line)
    }
    package static func sealedKey(_ reason: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        CryptoError(.sealedKey, reason, file: file, line: line)
    }
    /// Builds an error from OpenSSL's error queue, draining it.
    static func openssl(_ what: String, file: String = #fileID, line: Int = #line) -> CryptoError {
        let queue = OpenSSL.drainErrors()
        let reason = queue.isEmpty ? what : "\(what): \(queue.joined(separator: "; "))"
        return CryptoError(.openssl, reason, file: file, line: line)
    }
}
