public import CodedErrors

/// Why an account operation failed. Routes turn it into each dialect's answer: TokenServer
/// decides the HTTP status from ``code`` and the wording per dialect, using ``problems``,
/// ``retryAfter`` and ``field`` where the code has them.
///
/// Equality is on ``code`` only; ``description`` is safe to log: it never holds a password.
public struct AccountError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// The input has problems, each a sentence in ``AccountError/problems``.
        public static let validation = Code("validation")
        /// Unknown user or wrong password: one answer for both.
        public static let invalidCredentials = Code("invalid credentials")
        /// The password is right but the account is inactive.
        public static let inactive = Code("inactive")
        /// Too many sign-ups for this email address; see ``AccountError/retryAfter``.
        public static let signUpLimitedPerEmail = Code("sign-ups limited per email")
        /// Too many sign-ups from this client address; see ``AccountError/retryAfter``.
        public static let signUpLimitedPerAddress = Code("sign-ups limited per address")
        /// Too many sign-in attempts; see ``AccountError/retryAfter``.
        public static let signInLimited = Code("sign-ins limited")
        /// The email or username is taken; ``AccountError/field`` says which.
        public static let conflict = Code("conflict")
        /// Missing or invalid bearer token.
        public static let unauthorized = Code("unauthorized")
        /// No such user.
        public static let notFound = Code("not found")
        /// Every password hashing worker is busy and the queue is full.
        public static let overloaded = Code("overloaded")
        /// The store or the token service cannot answer.
        public static let unavailable = Code("unavailable")

    }

    /// What a caller needs beyond the code.
    public struct Details: Sendable {
        var problems: [String] = []
        var retryAfter: Double?
        var field: String?
    }

    /// For `.validation`, each problem as a sentence ("password must be at least 6 characters").
    public var problems: [String] { storage.details.problems }
    /// For the rate limits, the seconds until a retry can succeed.
    public var retryAfter: Double? { storage.details.retryAfter }
    /// For `.conflict`, the taken value's name: `"email"` or `"username"`.
    public var field: String? { storage.details.field }

    public let storage: CodedErrorStorage<Code, Details>

    private init(_ code: Code, _ reason: String, _ details: Details = Details(), file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, details: details, file: file, line: line)
    }

    static func validation(_ problems: [String], file: String = #fileID, line: Int = #line) -> Self {
        Self(.validation, problems.joined(separator: "; "), Details(problems: problems), file: file, line: line)
    }

    static func invalidCredentials(file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidCredentials, "unknown user or wrong password", file: file, line: line)
    }

    static func inactive(file: String = #fileID, line: Int = #line) -> Self {
        Self(.inactive, "the account is inactive", file: file, line: line)
    }

    static func signUpLimited(
        perEmail: Bool,
        retryAfter: Double,
        file: String = #fileID,
        line: Int = #line
    ) -> Self {
        Self(
            perEmail ? .signUpLimitedPerEmail : .signUpLimitedPerAddress,
            "too many sign-ups \(perEmail ? "for this email address" : "from this client address"); "
                + "retry in \(Int(retryAfter.rounded(.up))) s",
            Details(retryAfter: retryAfter),
            file: file,
            line: line
        )
    }

    static func signInLimited(retryAfter: Double, file: String = #fileID, line: Int = #line) -> Self {
        Self(
            .signInLimited,
            "too many sign-in attempts; retry in \(Int(retryAfter.rounded(.up))) s",
            Details(retryAfter: retryAfter),
            file: file,
            line: line
        )
    }

    static func conflict(field: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.conflict, "\(field) is already in use", Details(field: field), file: file, line: line)
    }

    static func unauthorized(file: String = #fileID, line: Int = #line) -> Self {
        Self(.unauthorized, "a valid bearer token is required", file: file, line: line)
    }

    static func notFound(file: String = #fileID, line: Int = #line) -> Self {
        Self(.notFound, "no such user", file: file, line: line)
    }

    static func overloaded(file: String = #fileID, line: Int = #line) -> Self {
        Self(.overloaded, "every password hashing worker is busy and the queue is full", file: file, line: line)
    }

    static func unavailable(file: String = #fileID, line: Int = #line) -> Self {
        Self(.unavailable, "the user store or the token service cannot answer", file: file, line: line)
    }
}
