/// Why the server could not start listening. The message names the socket and what to do.
public struct HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// Another process accepts connections on the Unix socket path.
        case addressInUse
        /// Something other than a socket exists at the path.
        case notASocket
        /// The path does not fit in a `sockaddr_un`.
        case socketPathTooLong
        /// The socket's directory is missing and cannot be created, or the path cannot be inspected.
        case socketDirectory
        /// bind/listen failed, or the socket's mode could not be set.
        case bindFailed
        /// The passed descriptor is not a usable listening socket.
        case invalidDescriptor
    }

    public let code: Code
    public let message: String
    public let file: String
    public let line: Int

    init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { message }

    public static func == (lhs: HTTPServerError, rhs: HTTPServerError) -> Bool { lhs.code == rhs.code }
}
