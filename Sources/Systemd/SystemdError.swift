public import CodedErrors

/// An error of the systemd integration: what went wrong and what is accepted.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct SystemdError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// `LISTEN_FDS` or `LISTEN_PID` is not a number in the accepted range.
        public static let invalidListenEnvironment = Code("invalid socket activation environment")
        /// `LISTEN_FDS` is set but `LISTEN_PID` is missing or names another process.
        public static let listenPIDMismatch = Code("socket activation meant for another process")
        /// `LISTEN_FDS` is set but `LISTEN_FDNAMES` is not, so the sockets cannot be told apart.
        public static let listenFDNamesMissing = Code("socket activation without names")
        /// `LISTEN_FDNAMES` holds a different number of names than `LISTEN_FDS` says.
        public static let listenFDNamesMismatch = Code("socket activation names do not match the descriptors")
        /// A system call or libsystemd call failed.
        public static let systemCallFailed = Code("system call failed")
    }

    public let storage: CodedErrorStorage<Code, Void>

    private init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, file: file, line: line)
    }

    static func invalidListenEnvironment(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidListenEnvironment, reason, file: file, line: line)
    }

    static func listenPIDMismatch(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.listenPIDMismatch, reason, file: file, line: line)
    }

    static func listenFDNamesMissing(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.listenFDNamesMissing, reason, file: file, line: line)
    }

    static func listenFDNamesMismatch(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.listenFDNamesMismatch, reason, file: file, line: line)
    }

    static func systemCallFailed(_ call: String, errno code: Int32, file: String = #fileID, line: Int = #line) -> Self {
        Self(.systemCallFailed, "\(call) failed: \(SystemCall.describe(errno: code))", file: file, line: line)
    }
}
