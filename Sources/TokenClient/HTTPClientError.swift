public import CodedErrors

/// Why ``UnixHTTPClient`` could not complete a request. The reason says what failed and,
/// where it helps, what to check ("is tokend running?").
///
/// Equality is on ``code`` only; ``description`` is safe to log (paths, addresses and system
/// error texts, never a header value or a body).
public struct HTTPClientError: CodedError {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as people read it, in logs and messages.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// The socket could not be reached (missing, refused, permission denied, bad address).
        public static let cannotConnect = Code("cannot connect")
        /// No complete answer within the timeout.
        public static let timedOut = Code("timed out")
        /// The connection failed or closed before the response was complete.
        public static let connectionClosed = Code("connection closed")
        /// The server's answer is not valid HTTP/1.1, or is larger than the client accepts.
        public static let invalidResponse = Code("invalid response")
        /// The request itself cannot be sent (a header with CR/LF, a path with spaces, …).
        public static let invalidRequest = Code("invalid request")
    }

    public let storage: CodedErrorStorage<Code, Void>

    private init(_ code: Code, _ reason: String, file: String, line: Int) {
        self.storage = CodedErrorStorage(code, reason, file: file, line: line)
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
