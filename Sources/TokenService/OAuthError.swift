public import CodedErrors

/// Why a grant was refused (RFC 6749 §5.2): the refresh grant's failures. TokenServer decides
/// the HTTP answer and the error code on the wire from ``code``; ``reason`` is the
/// `error_description`.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct OAuthError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidGrant
            case invalidScope
            case accountInactive
            case temporarilyUnavailable
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The refresh token is unknown, spent, expired, revoked or another client's.
        public static let invalidGrant = Code(.invalidGrant)
        /// The requested scope exceeds the scope granted to the refresh token.
        public static let invalidScope = Code(.invalidScope)
        /// The account behind the refresh token may no longer sign in.
        public static let accountInactive = Code(.accountInactive)
        /// The store cannot answer; retry shortly.
        public static let temporarilyUnavailable = Code(.temporarilyUnavailable)

        public var description: String {
            switch self.base {
            case .invalidGrant: "invalid grant"
            case .invalidScope: "invalid scope"
            case .accountInactive: "account inactive"
            case .temporarilyUnavailable: "temporarily unavailable"
            }
        }
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
