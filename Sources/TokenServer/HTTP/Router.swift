/// Maps a method and a path to a handler.
///
/// Patterns are literal segments and whole-segment parameters: `/admin/keys/{kid}/revoke`.
/// Parameters are captured, percent-decoded, into ``HTTPRequest/pathParameters``. When several
/// patterns match a path, literal segments win over parameters (`/admin/keys/rotate` before
/// `/admin/keys/{kid}`), then the pattern added first. `HEAD` is served by the `GET` handler
/// without a body unless a `HEAD` route exists.
public struct Router: Sendable {
    /// One registered handler. A class: a resolution hands out a reference, not copies of
    /// its strings and closure (the connection handler keeps the last one per connection).
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
        var routes: [String: Route]
    }

    /// Patterns without parameters, keyed by their segments.
    private var literal: [[String]: Entry] = [:]
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
        let method = method.uppercased()
        let route = Route(method: method, pattern: pattern, name: name, handler: handler)

        if parameterNames.isEmpty {
            let key = segments.map { if case .literal(let s) = $0 { s } else { "" } }
            var entry = literal[key] ?? Entry(segments: segments, literalCount: segments.count, routes: [:])
            precondition(entry.routes[method] == nil, "route \(method) \(pattern) added twice")
            entry.routes[method] = route
            literal[key] = entry
            return
        }
        if let index = parameterised.firstIndex(where: { $0.segments == segments }) {
            precondition(parameterised[index].routes[method] == nil, "route \(method) \(pattern) added twice")
            parameterised[index].routes[method] = route
            return
        }
        let entry = Entry(
            segments: segments,
            literalCount: segments.count - parameterNames.count,
            routes: [method: route]
        )
        let position = parameterised.firstIndex { $0.literalCount < entry.literalCount } ?? parameterised.endIndex
        parameterised.insert(entry, at: position)
    }

    /// Resolves a path given as percent-decoded segments (`/a/b` is `["a", "b"]`).
    public func resolve(method: String, segments: [String]) -> Resolution {
        var allowed: Set<String> = []
        if let entry = literal[segments] {
            if let route = Self.route(in: entry, for: method) { return .matched(route, parameters: [:]) }
            allowed.formUnion(entry.routes.keys)
        }
        for entry in parameterised where entry.segments.count == segments.count {
            guard let parameters = Self.match(entry.segments, segments) else { continue }
            if let route = Self.route(in: entry, for: method) { return .matched(route, parameters: parameters) }
            allowed.formUnion(entry.routes.keys)
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

    private static func route(in entry: Entry, for method: String) -> Route? {
        if let route = entry.routes[method] { return route }
        if method == "HEAD" { return entry.routes["GET"] }
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
