public import CodedErrors

/// An error of the systemd integration: what went wrong and what is accepted.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct SystemdError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidListenEnvironment
            case listenPIDMismatch
            case listenFDNamesMissing
            case listenFDNamesMismatch
            case systemCallFailed
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// `LISTEN_FDS` or `LISTEN_PID` is not a number in the accepted range.
        public static let invalidListenEnvironment = Code(.invalidListenEnvironment)
        /// `LISTEN_FDS` is set but `LISTEN_PID` is missing or names another process.
        public static let listenPIDMismatch = Code(.listenPIDMismatch)
        /// `LISTEN_FDS` is set but `LISTEN_FDNAMES` is not, so the sockets cannot be told apart.
        public static let listenFDNamesMissing = Code(.listenFDNamesMissing)
        /// `LISTEN_FDNAMES` holds a different number of names than `LISTEN_FDS` says.
        public static let listenFDNamesMismatch = Code(.listenFDNamesMismatch)
        /// A system call or libsystemd call failed.
        public static let systemCallFailed = Code(.systemCallFailed)

        public var description: String {
            switch self.base {
            case .invalidListenEnvironment: "invalid socket activation environment"
            case .listenPIDMismatch: "socket activation meant for another process"
            case .listenFDNamesMissing: "socket activation without names"
            case .listenFDNamesMismatch: "socket activation names do not match the descriptors"
            case .systemCallFailed: "system call failed"
            }
        }
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
