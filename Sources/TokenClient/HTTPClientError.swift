/// Why ``UnixHTTPClient`` could not complete a request. The reason says what failed and,
/// where it helps, what to check ("is tokend running?").
///
/// Equality is on ``code`` only; ``description`` is safe to log (paths, addresses and system
/// error texts, never a header value or a body).
public struct HTTPClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case cannotConnect
            case timedOut
            case connectionClosed
            case invalidResponse
            case invalidRequest
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The socket could not be reached (missing, refused, permission denied, bad address).
        public static let cannotConnect = Code(.cannotConnect)
        /// No complete answer within the timeout.
        public static let timedOut = Code(.timedOut)
        /// The connection failed or closed before the response was complete.
        public static let connectionClosed = Code(.connectionClosed)
        /// The server's answer is not valid HTTP/1.1, or is larger than the client accepts.
        public static let invalidResponse = Code(.invalidResponse)
        /// The request itself cannot be sent (a header with CR/LF, a path with spaces, …).
        public static let invalidRequest = Code(.invalidRequest)

        public var description: String {
            switch self.base {
            case .cannotConnect: "cannot connect"
            case .timedOut: "timed out"
            case .connectionClosed: "connection closed"
            case .invalidResponse: "invalid response"
            case .invalidRequest: "invalid request"
            }
        }
    }

    private final class Backing: Sendable {
        let code: Code
        let reason: String
        let file: String
        let line: Int

        init(code: Code, reason: String, file: String, line: Int) {
            self.code = code
            self.reason = reason
            self.file = file
            self.line = line
        }
    }

    private let backing: Backing

    private init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.backing = Backing(code: code, reason: reason, file: file, line: line)
    }

    /// The kind of failure.
    public var code: Code { self.backing.code }
    /// A human explanation: what failed and, where it helps, what to check.
    public var reason: String { self.backing.reason }
    /// Where the error was raised.
    public var file: String { self.backing.file }
    /// Where the error was raised.
    public var line: Int { self.backing.line }

    public var description: String {
        "\(self.reason) (\(self.code); \(self.file):\(self.line))"
    }

    public static func == (lhs: HTTPClientError, rhs: HTTPClientError) -> Bool {
        lhs.code == rhs.code
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.code)
    }

    static func cannotConnect(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.cannotConnect, reason, file: file, line: line)
    }

    static func timedOut(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.timedOut, reason, file: file, line: line)
    }

    static func connectionClosed(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.connectionClosed, reason, file: file, line: line)
    }

    static func invalidResponse(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidResponse, reason, file: file, line: line)
    }

    static func invalidRequest(_ reason: String, file: String = #fileID, line: Int = #line) -> Self {
        Self(.invalidRequest, reason, file: file, line: line)
    }
}
