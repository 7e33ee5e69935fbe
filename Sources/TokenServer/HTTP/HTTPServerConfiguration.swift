public import CoreMetrics
public import NIOCore

/// Limits and timeouts of an ``HTTPServer``.
public struct HTTPServerConfiguration: Sendable {
    /// Largest request body accepted; beyond it the answer is 413 and the connection closes.
    /// Checked against `Content-Length` before the body is read and against the bytes
    /// actually received (chunked bodies).
    public var maxBodyBytes: Int
    /// Largest request head (request line and header lines) accepted; beyond it the answer is
    /// 431 and the connection closes.
    public var maxHeaderBytes: Int
    /// A connection with no request in progress is closed this long after its last answer (or
    /// its accept). Bytes of an unfinished request do not extend it: the head and body
    /// deadlines govern those.
    public var idleTimeout: Duration
    /// A request head (request line and header fields) must be complete this long after its
    /// first byte arrived; a new connection's first head, this long after the accept. However
    /// the bytes trickle in, a slower head is answered 408 and the connection closed.
    public var headerTimeout: Duration
    /// A request body must be complete this long after its head: a slower body (one that stops
    /// arriving, or trickles) is answered 408 and the connection closed.
    public var bodyTimeout: Duration
    /// An asynchronous handler that has not answered after this long gets a 503.
    public var requestTimeout: Duration
    /// On graceful shutdown, how long in-flight requests may take before their connections
    /// are closed.
    public var drainTimeout: Duration
    /// Open connections allowed on each listener that does not set its own cap
    /// (``HTTPListener/maxConnections``); every listener counts only its own connections.
    /// Beyond it, a new connection gets a 503 with `Retry-After: 1` and `Connection: close`,
    /// and is closed.
    public var maxConnections: Int
    /// After an error that ends a connection (413, 431, 400, over capacity) the server stops
    /// writing and discards what the client still sends for at most this long, so the client
    /// reads the answer instead of a reset.
    public var lingerTimeout: Duration
    /// The listen backlog for sockets the server binds itself.
    public var backlog: Int
    /// Where the request metrics go; nil means the process-wide `MetricsSystem.factory`
    /// (read when the server is created, so bootstrap the metrics system first).
    public var metricsFactory: (any MetricsFactory)?
    /// Shapes the errors the server answers itself (400, 404, 405, 413, 431, 503) for the
    /// request's path, so each API can keep its own error body. Nil: the OAuth-style body.
    public var errorRenderer: (@Sendable (_ error: HTTPError, _ path: String) -> HTTPResponse)?
    /// Event loops the caller owns, for sharing them with other clients of the process (tokend:
    /// one loop per CPU it may run on, shared with its PostgreSQL connections); the server
    /// never shuts them down. Nil: NIO's process-wide singleton group (one loop per core NIO
    /// counts, which ignores the CPU affinity a process is pinned to).
    public var eventLoopGroup: (any EventLoopGroup)?

    public init(
        maxBodyBytes: Int = 65536,
        maxHeaderBytes: Int = 16384,
        idleTimeout: Duration = .seconds(60),
        headerTimeout: Duration = .seconds(10),
        bodyTimeout: Duration = .seconds(10),
        requestTimeout: Duration = .seconds(30),
        drainTimeout: Duration = .seconds(10),
        maxConnections: Int = 1024,
        lingerTimeout: Duration = .seconds(2),
        backlog: Int = 256,
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.requestTimeout = requestTimeout
        self.drainTimeout = drainTimeout
        self.maxConnections = maxConnections
        self.lingerTimeout = lingerTimeout
        self.backlog = backlog
        self.metricsFactory = metricsFactory
    }
}

/// One socket the server listens on, the kind of listener it is, and its routes.
public struct HTTPListener: Sendable {
    /// Where to listen.
    public enum Address: Sendable, Equatable, CustomStringConvertible {
        /// Bind a Unix socket at this path and set its file mode. The parent directory is created
        /// if missing. An existing stale socket file is replaced; a live one (another process
        /// accepts on it) or a file that is not a socket is refused.
        case unixPath(String, mode: UInt32)
        /// Adopt an already-bound listening socket, e.g. one passed by systemd socket activation.
        case descriptor(Int32)
        /// Bind a TCP socket.
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unixPath(let path, _): path
            case .descriptor(let fd): "fd \(fd)"
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            }
        }
    }

    public var address: Address
    public var kind: ListenerKind
    public var router: Router
    /// This listener's connection cap; nil: ``HTTPServerConfiguration/maxConnections``.
    public var maxConnections: Int?

    public init(address: Address, kind: ListenerKind, router: Router, maxConnections: Int? = nil) {
        self.address = address
        self.kind = kind
        self.router = router
        self.maxConnections = maxConnections
    }
}
