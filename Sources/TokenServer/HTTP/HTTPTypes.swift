import HTTPSyntax

/// The HTTP/1.1 request as handlers see it: method, path, query, headers and the whole
/// body (already bounded by the server's limits), plus which listener it came in on.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path, percent-decoded, without the query.
    public var path: String
    /// Query parameters in order, percent-decoded.
    public var query: [(name: String, value: String)]
    /// Header fields in order; names as sent. Use `header(_:)` for lookup.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Which listener accepted the connection.
    public var listener: ListenerKind
    /// The peer's credentials on a Unix socket (SO_PEERCRED), for audit logs.
    public var peer: PeerCredentials?
    /// The peer's address on the TCP listener (nil on Unix sockets).
    public var remoteAddress: IPAddress?
    /// Path parameters captured by the router (`/admin/keys/{kid}/revoke` → ["kid": …]).
    public var pathParameters: [String: String]

    public init(
        method: String,
        path: String,
        query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        listener: ListenerKind = .api,
        peer: PeerCredentials? = nil,
        remoteAddress: IPAddress? = nil,
        pathParameters: [String: String] = [:]
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.listener = listener
        self.peer = peer
        self.remoteAddress = remoteAddress
        self.pathParameters = pathParameters
    }

    /// The first value of a header, case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { HTTPSyntax.equalsIgnoringCase($0.name, name) }?.value
    }

    /// The first value of a query parameter.
    public func queryValue(_ name: String) -> String? { query.first { $0.name == name }?.value }
}

/// What a handler answers.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header fields in order. Setting them drops `constantHeaders`, so the writer always
    /// writes what is here.
    public var headers: [(name: String, value: String)] {
        didSet { constantHeaders = nil }
    }
    public var body: [UInt8]
    /// Headers fixed in the source, rendered once (`headers` holds the same fields): the hot
    /// path neither checks nor encodes them again.
    var constantHeaders: ConstantHeaders?

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response whose headers are constants of the source.
    init(status: Int, constantHeaders: ConstantHeaders, body: [UInt8]) {
        self.init(status: status, headers: constantHeaders.fields, body: body)
        self.constantHeaders = constantHeaders
    }
}

/// Which socket a request arrived on. Admin routes exist only on `.admin`.
public enum ListenerKind: String, Sendable {
    case api
    case admin
    case tcp
}

/// SO_PEERCRED of a Unix-socket peer. Under `PrivateUsers=yes` outside uids show as
/// nobody: logged for audit and used to tell clients apart for rate limits (with
/// `TrustedProxies`), never used for authorization.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "pid=\(pid) uid=\(uid) gid=\(gid)" }
}

/// A route's handler. Synchronous handlers run on the connection's event loop and must not
/// block (introspection: in-memory checks and a signature verification); asynchronous ones
/// run in a task and may wait on the store or a thread pool.
public enum RouteHandler: Sendable {
    case sync(@Sendable (HTTPRequest) -> HTTPResponse)
    case async(@Sendable (HTTPRequest) async -> HTTPResponse)
    /// Asynchronous, with the task's own work run on the connection's event loop (its executor
    /// preference): for handlers whose work between awaits is short and never blocks (parsing,
    /// signing a token, sealing it) while every wait is on the store or another pool, like the
    /// refresh grant. It saves the hops to and from the cooperative pool on every request.
    case asyncOnEventLoop(@Sendable (HTTPRequest) async -> HTTPResponse)
}
