public import CodedErrors

/// Why the server could not start listening. The reason names the socket and what to do.
///
/// Equality is on ``code`` only; ``description`` is safe to log.
public struct HTTPServerError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// Another process accepts connections on the Unix socket path.
        public static let addressInUse = Code("address in use")
        /// Something other than a socket exists at the path.
        public static let notASocket = Code("not a socket")
        /// The path does not fit in a `sockaddr_un`.
        public static let socketPathTooLong = Code("socket path too long")
        /// The socket's directory is missing and cannot be created, or the path cannot be inspected.
        public static let socketDirectory = Code("socket directory")
        /// bind/listen failed, or the socket's mode could not be set.
        public static let bindFailed = Code("bind failed")
        /// The passed descriptor is not a usable listening socket.
        public static let invalidDescriptor = Code("invalid descriptor")
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
