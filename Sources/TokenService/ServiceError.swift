public import CodedErrors

/// A failure of a TokenService operation: what went wrong and what is accepted, with a reason
/// safe to show and log. TokenServer decides the HTTP answer from ``code``.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct ServiceError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// The request is malformed or names something that cannot be.
        public static let invalidRequest = Code("invalid request")
        /// Rotation refused because the next key is not yet safe to use.
        public static let rotationTooEarly = Code("rotation too early")
        /// No such key, user, token or family.
        public static let notFound = Code("not found")
        /// The subject was signed out (logout, deactivation, password change) while the
        /// token was being issued: no token was issued.
        public static let signedOut = Code("signed out")
        /// The store or key directory cannot answer; retry later.
        public static let unavailable = Code("unavailable")
        /// The key directory or keyring is inconsistent.
        public static let keyring = Code("keyring error")
    }

    public let storage: CodedErrorStorage<Code, Void>

    private init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, file: file, line: line)
    }

    static func invalidRequest(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidRequest, reason, file: file, line: line)
    }

    static func rotationTooEarly(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.rotationTooEarly, reason, file: file, line: line)
    }

    static func notFound(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.notFound, reason, file: file, line: line)
    }

    static func signedOut(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.signedOut, reason, file: file, line: line)
    }

    static func unavailable(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.unavailable, reason, file: file, line: line)
    }

    static func keyring(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.keyring, reason, file: file, line: line)
    }
}
