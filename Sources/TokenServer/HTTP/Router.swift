/// Maps a method and a path to a handler.
///
/// Patterns are literal segments and whole-segment parameters: `/admin/keys/{kid}/revoke`.
/// Parameters are captured, percent-decoded, into ``HTTPRequest/pathParameters``. When several
/// patterns match a path, literal segments win over parameters (`/admin/keys/rotate` before
/// `/admin/keys/{kid}`), then the pattern added first. `HEAD` is served by the `GET` handler
/// without a body unless a `HEAD` route exists.
public struct Router: Sendable {
    /// One registered handler. A class: routing a request hands out one reference, not
    /// copies of three strings and a closure.
    public final class Route: Sendable {
        public let method: String
        public let pattern: String
        /// The low-cardinality label used in metrics and logs.
        public let name: String
        public let handler: RouteHandler

        init(method: String, pattern: String, name: String, handler: RouteHandler) {
            self.method = method
            self.pattern = pattern
            self.name = name
            self.handler = handler
        }
    }

    /// The outcome of ``resolve(method:segments:)``.
    public enum Resolution: Sendable {
        case matched(Route, parameters: [String: String])
        /// No pattern matches the path.
        case notFound
        /// The path exists, but not for this method; `allowed` is the value of `Allow`.
        case methodNotAllowed(allowed: [String])
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private struct Entry: Sendable {
        var segments: [Segment]
        var literalCount: Int
        /// A path's routes, one per method.
        var routes: [Route]
    }

    /// Patterns without parameters, keyed by the pattern (`/oauth2/introspect`). A pattern is
    /// plain text (visible ASCII without `%`, `?` or `#`), so a request target that equals it
    /// is its own decoded path and is routed by this one lookup.
    /// A path's routes, one per method, are a few and found by a scan (no hashing per request).
    private var literal: [String: [Route]] = [:]
    /// Patterns with parameters, most literal segments first, then in insertion order.
    private var parameterised: [Entry] = []

    public init() {}

    /// Adds a route. A pattern starts with `/`; `{name}` segments are parameters.
    ///
    /// - Precondition: the same method and pattern are not added twice, and a pattern does not
    ///   repeat a parameter name.
    public mutating func add(_ method: String, _ pattern: String, name: String, _ handler: RouteHandler) {
        precondition(pattern.hasPrefix("/"), "route pattern \(pattern) must start with /")
        let segments: [Segment] = pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
            if $0.hasPrefix("{"), $0.hasSuffix("}"), $0.count > 2 {
                return .parameter(String($0.dropFirst().dropLast()))
            }
            return .literal(String($0))
        }
        let parameterNames = segments.compactMap { if case .parameter(let n) = $0 { n } else { nil } }
        precondition(Set(parameterNames).count == parameterNames.count, "route pattern \(pattern) repeats a parameter")
        precondition(
            pattern.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !"%?#".utf8.contains($0) },
            "route pattern \(pattern) must be visible ASCII without %, ? or #"
        )
        let method = method.uppercased()
        let route = Route(method: method, pattern: pattern, name: name, handler: handler)

        if parameterNames.isEmpty {
            precondition(
                Self.route(in: literal[pattern] ?? [], exactly: method) == nil,
                "route \(method) \(pattern) added twice"
            )
            literal[pattern, default: []].append(route)
            return
        }
        if let index = parameterised.firstIndex(where: { $0.segments == segments }) {
            precondition(
                Self.route(in: parameterised[index].routes, exactly: method) == nil,
                "route \(method) \(pattern) added twice"
            )
            parameterised[index].routes.append(route)
            return
        }
        let entry = Entry(
            segments: segments,
            literalCount: segments.count - parameterNames.count,
            routes: [route]
        )
        let position = parameterised.firstIndex { $0.literalCount < entry.literalCount } ?? parameterised.endIndex
        parameterised.insert(entry, at: position)
    }

    /// A request target routed: its decoded path and query, and what the path resolves to.
    struct RoutedTarget {
        var path: String
        var query: [(name: String, value: String)]
        var resolution: Resolution
    }

    /// Routes an origin-form request target as it arrived (`/path?query`, still encoded): a
    /// target that is a literal route's pattern is found at once; any other is parsed and
    /// percent-decoded (``RequestTarget``) and resolved by its segments. Fails when the target
    /// is not an absolute path or does not decode.
    func route(method: String, target: String) -> Result<RoutedTarget, HTTPError> {
        if let routes = literal[target], let route = Self.route(in: routes, for: method) {
            return .success(RoutedTarget(path: target, query: [], resolution: .matched(route, parameters: [:])))
        }
        switch RequestTarget.parse(target) {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let parsed):
            return .success(
                RoutedTarget(
                    path: parsed.path,
                    query: parsed.query,
                    resolution: resolve(method: method, segments: parsed.segments)
                )
            )
        }
    }

    /// Resolves a path given as percent-decoded segments (`/a/b` is `["a", "b"]`).
    public func resolve(method: String, segments: [String]) -> Resolution {
        var allowed: Set<String> = []
        // A segment holding a decoded `/` can only match a parameter.
        if !segments.contains(where: { $0.utf8.contains(UInt8(ascii: "/")) }),
            let routes = literal["/" + segments.joined(separator: "/")]
        {
            if let route = Self.route(in: routes, for: method) { return .matched(route, parameters: [:]) }
            allowed.formUnion(routes.map(\.method))
        }
        for entry in parameterised where entry.segments.count == segments.count {
            guard let parameters = Self.match(entry.segments, segments) else { continue }
            if let route = Self.route(in: entry.routes, for: method) { return .matched(route, parameters: parameters) }
            allowed.formUnion(entry.routes.map(\.method))
        }
        if allowed.isEmpty { return .notFound }
        if allowed.contains("GET") { allowed.insert("HEAD") }
        return .methodNotAllowed(allowed: allowed.sorted())
    }

    /// Resolves a percent-decoded path such as `/admin/keys/k1/revoke`.
    public func resolve(method: String, path: String) -> Resolution {
        resolve(
            method: method,
            segments: path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        )
    }

    /// The route for `method`, HEAD served by GET's.
    private static func route(in routes: [Route], for method: String) -> Route? {
        if let route = route(in: routes, exactly: method) { return route }
        if method == "HEAD" { return route(in: routes, exactly: "GET") }
        return nil
    }

    private static func route(in routes: [Route], exactly method: String) -> Route? {
        for route in routes where route.method == method { return route }
        return nil
    }

    private static func match(_ pattern: [Segment], _ segments: [String]) -> [String: String]? {
        var parameters: [String: String] = [:]
        for (part, segment) in zip(pattern, segments) {
            switch part {
            case .literal(let literal):
                guard literal == segment else { return nil }
            case .parameter(let name):
                guard !segment.isEmpty else { return nil }
                parameters[name] = segment
            }
        }
        return parameters
    }
}
