public import CodedErrors

/// Why a grant was refused (RFC 6749 §5.2): the refresh grant's failures. TokenServer decides
/// the HTTP answer and the error code on the wire from ``code``; ``reason`` is the
/// `error_description`.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct OAuthError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// The refresh token is unknown, spent, expired, revoked or another client's.
        public static let invalidGrant = Code("invalid grant")
        /// The requested scope exceeds the scope granted to the refresh token.
        public static let invalidScope = Code("invalid scope")
        /// The account behind the refresh token may no longer sign in.
        public static let accountInactive = Code("account inactive")
        /// The store cannot answer; retry shortly.
        public static let temporarilyUnavailable = Code("temporarily unavailable")
    }

    public let storage: CodedErrorStorage<Code, Void>

    private init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, file: file, line: line)
    }

    public static func invalidGrant(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidGrant, reason, file: file, line: line)
    }

    public static func invalidScope(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidScope, reason, file: file, line: line)
    }

    public static func accountInactive(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.accountInactive, reason, file: file, line: line)
    }

    public static func temporarilyUnavailable(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.temporarilyUnavailable, reason, file: file, line: line)
    }
}
