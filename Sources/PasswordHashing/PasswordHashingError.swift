public import CodedErrors

/// A failure of password hashing: what went wrong and what is accepted.
///
/// Equality is on ``code`` only; ``description`` is safe to log: it never holds a password or
/// a hash.
public struct PasswordHashingError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// Every worker is busy and the queue is full; the caller may retry shortly.
        public static let overloaded = Code("overloaded")
        /// The password is longer than `PasswordHasher.maximumPasswordBytes`.
        public static let passwordTooLong = Code("password too long")
        /// Argon2 parameters or pool settings out of the accepted range.
        public static let invalidConfiguration = Code("invalid configuration")
        /// The hasher was shut down.
        public static let shutDown = Code("shut down")
        /// The calling task was cancelled before a worker took the job.
        public static let cancelled = Code("cancelled")
        /// libargon2 failed (memory allocation, thread creation).
        public static let hashingFailed = Code("hashing failed")
    }

    public let storage: CodedErrorStorage<Code, Void>

    private init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, file: file, line: line)
    }

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
