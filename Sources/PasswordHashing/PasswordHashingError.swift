/// A failure of password hashing, with a reason safe to log: it never holds a password or a hash.
public struct PasswordHashingError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }

        /// Every worker is busy and the queue is full; answer 503 with `Retry-After`.
        public static let overloaded = Code(name: "overloaded")
        /// The password is longer than `PasswordHasher.maximumPasswordBytes`.
        public static let passwordTooLong = Code(name: "password_too_long")
        /// Argon2 parameters or pool settings out of the accepted range.
        public static let invalidConfiguration = Code(name: "invalid_configuration")
        /// The hasher was shut down.
        public static let shutDown = Code(name: "shut_down")
        /// The calling task was cancelled before a worker took the job.
        public static let cancelled = Code(name: "cancelled")
        /// libargon2 failed (memory allocation, thread creation).
        public static let hashingFailed = Code(name: "hashing_failed")
    }

    public let code: Code
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(reason)" }

    public static func == (lhs: PasswordHashingError, rhs: PasswordHashingError) -> Bool { lhs.code == rhs.code }

    static func overloaded(capacity: Int, file: String = #fileID, line: Int = #line) -> Self {
        Self(
            .overloaded,
            "all password hashing workers are busy and \(capacity) jobs are waiting; retry later",
            file: file,
            line: line
        )
    }

    static func passwordTooLong(_ count: Int, file: String = #fileID, line: Int = #line) -> Self {
        Self(
            .passwordTooLong,
            "the password is \(count) bytes; at most \(PasswordHasher.maximumPasswordBytes) bytes (UTF-8) are accepted",
            file: file,
            line: line
        )
    }

    static func invalidConfiguration(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidConfiguration, reason, file: file, line: line)
    }

    static func shutDown(file: String = #fileID, line: Int = #line) -> Self {
        Self(.shutDown, "the password hasher is shut down", file: file, line: line)
    }

    static func cancelled(file: String = #fileID, line: Int = #line) -> Self {
        Self(.cancelled, "the request was cancelled before a hashing worker took it", file: file, line: line)
    }

    static func hashingFailed(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.hashingFailed, reason, file: file, line: line)
    }
}
