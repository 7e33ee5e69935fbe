public import CodedErrors

/// Why the server could not start listening. The reason names the socket and what to do.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct HTTPServerError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case addressInUse
            case notASocket
            case socketPathTooLong
            case socketDirectory
            case bindFailed
            case invalidDescriptor
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// Another process accepts connections on the Unix socket path.
        public static let addressInUse = Code(.addressInUse)
        /// Something other than a socket exists at the path.
        public static let notASocket = Code(.notASocket)
        /// The path does not fit in a `sockaddr_un`.
        public static let socketPathTooLong = Code(.socketPathTooLong)
        /// The socket's directory is missing and cannot be created, or the path cannot be inspected.
        public static let socketDirectory = Code(.socketDirectory)
        /// bind/listen failed, or the socket's mode could not be set.
        public static let bindFailed = Code(.bindFailed)
        /// The passed descriptor is not a usable listening socket.
        public static let invalidDescriptor = Code(.invalidDescriptor)

        public var description: String {
            switch self.base {
            case .addressInUse: "address in use"
            case .notASocket: "not a socket"
            case .socketPathTooLong: "socket path too long"
            case .socketDirectory: "socket directory"
            case .bindFailed: "bind failed"
            case .invalidDescriptor: "invalid descriptor"
            }
        }
    }

    public let storage: CodedErrorStorage<Code, Void>

    private init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, file: file, line: line)
    }

    static func addressInUse(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.addressInUse, reason, file: file, line: line)
    }

    static func notASocket(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.notASocket, reason, file: file, line: line)
    }

    static func socketPathTooLong(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.socketPathTooLong, reason, file: file, line: line)
    }

    static func socketDirectory(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.socketDirectory, reason, file: file, line: line)
    }

    static func bindFailed(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.bindFailed, reason, file: file, line: line)
    }

    static func invalidDescriptor(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidDescriptor, reason, file: file, line: line)
    }
}
