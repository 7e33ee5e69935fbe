/// Why ``UnixHTTPClient`` could not complete a request. The message says what failed and,
/// where it helps, what to check ("is tokend running?").
public struct HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The socket could not be reached (missing, refused, permission denied, bad address).
        case cannotConnect
        /// No complete answer within the timeout.
        case timedOut
        /// The connection failed or closed before the response was complete.
        case connectionClosed
        /// The server's answer is not valid HTTP/1.1, or is larger than the client accepts.
        case invalidResponse
        /// The request itself cannot be sent (a header with CR/LF, a path with spaces, …).
        case invalidRequest
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

    public static func == (lhs: HTTPClientError, rhs: HTTPClientError) -> Bool { lhs.code == rhs.code }
}
