import HTTPSyntax
import JOSE
public import Logging
public import Prometheus
public import TokenService

/// The routes of DESIGN §5 over a TokenService: the API socket gets the native routes, the
/// admin socket gets those plus `/admin/…`. Handlers only translate HTTP to service calls.
public struct TokenRoutes: Sendable {
    public let service: TokenService
    public let registry: PrometheusCollectorRegistry
    /// The account APIs, when the daemon serves them.
    public let accounts: AccountRoutes?
    let logger: Logger

    public init(
        service: TokenService,
        registry: PrometheusCollectorRegistry,
        accounts: AccountRoutes? = nil,
        logger: Logger
    ) {
        self.service = service
        self.registry = registry
        self.accounts = accounts
        self.logger = logger
    }

    /// Routes for the API socket (and the optional TCP listener).
    public func apiRouter() -> Router {
        var router = Router()
        addNative(to: &router)
        accounts?.register(on: &router)
        return router
    }

    /// Routes for the admin socket: the native ones, the account APIs and `/admin/…`.
    public func adminRouter() -> Router {
        var router = Router()
        addNative(to: &router)
        accounts?.register(on: &router)
        addAdmin(to: &router)
        addFleet(to: &router)
        accounts?.registerAdmin(on: &router)
        return router
    }

    func addNative(to router: inout Router) {
        let service = self.service
        let registry = self.registry
        router.add(
            "POST",
            "/oauth2/introspect",
            name: "introspect",
            .sync { request in
                TokenRoutes.introspect(request, service)
            }
        )
        router.add(
            "POST",
            "/oauth2/revoke",
            name: "revoke",
            .async { request in
                // `?wait=` on the admin socket: answers once every node has applied the revocation.
                guard request.listener == .admin else { return await TokenRoutes.revoke(request, service) }
                return await TokenRoutes.waiting(request, service) { await TokenRoutes.revoke(request, service) }
            }
        )
        router.add(
            "POST",
            "/oauth2/token",
            name: "token",
            // Between its awaits on the store the refresh grant only signs and seals.
            .asyncOnEventLoop { request in
                await TokenRoutes.token(request, service)
            }
        )
        router.add(
            "GET",
            "/v1/verify",
            name: "verify",
            .sync { request in
                TokenRoutes.verify(request, service)
            }
        )
        router.add(
            "GET",
            "/.well-known/jwks.json",
            name: "jwks",
            .sync { request in
                TokenRoutes.jwks(request, service)
            }
        )
        router.add(
            "GET",
            "/healthz",
            name: "healthz",
            .async { _ in
                TokenRoutes.health(await service.health())
            }
        )
        router.add(
            "GET",
            "/metrics",
            name: "metrics",
            .sync { _ in
                HTTPResponse(
                    status: 200,
                    headers: [
                        ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store"),
                    ],
                    body: MetricsExposition.render(registry)
                )
            }
        )
    }

    // MARK: Native handlers

    /// `/healthz`: 200 while tokens can be checked and issued — `serving`, or `degraded` when
    /// only writes fail (token checks answer from memory; writes answer 503, and restarting
    /// would not help) — and 503 with `Retry-After` when tokend cannot serve (the store cannot
    /// be read, or no key can sign). The body names each part: `"writes": "failing (reason)"`.
    static func health(_ report: HealthReport) -> HTTPResponse {
        var members: [(String, JSONValue)] = [
            ("status", .string(report.status.rawValue)), ("reason", .string(report.reason)),
        ]
        members += report.parts.map { ($0.name, .string($0.state)) }
        // On a fleet: this node's clock against the database's (a warning, never a refusal).
        if let offset = report.clockOffset {
            members.append(("clock_offset_seconds", number(offset)))
            members.append(("clock", .string(report.clockWarning.map { "warning (\($0))" } ?? "ok")))
        }
        let unavailable = report.status == .unavailable
        return HTTPResponse.json(
            unavailable ? 503 : 200,
            .object(JSONObject(members)),
            headers: unavailable ? [("Retry-After", "5")] : []
        )
    }

    static let jsonHeaders = [(name: "Content-Type", value: "application/json")]
    static let constantJSONHeaders = ConstantHeaders(jsonHeaders)
    static let inactiveBody = Array(#"{"active":false}"#.utf8)

    static func introspect(_ request: HTTPRequest, _ service: TokenService) -> HTTPResponse {
        let token: String?
        do throws(HTTPError) { token = try request.formOrJSONParameter("token") } catch { return error.response }
        guard let token, !token.isEmpty else {
            return .error(status: 400, error: "invalid_request", description: "the token parameter is required")
        }
        switch service.introspect(token) {
        case .active(let verified):
            return HTTPResponse(status: 200, constantHeaders: constantJSONHeaders, body: verified.activeIntrospection)
        case .inactive:
            return HTTPResponse(status: 200, constantHeaders: constantJSONHeaders, body: inactiveBody)
        case .unavailable(let reason):
            return .error(
                status: 503,
                error: "temporarily_unavailable",
                description: reason,
                headers: [("Retry-After", "1")]
            )
        }
    }

    static func revoke(_ request: HTTPRequest, _ service: TokenService) async -> HTTPResponse {
        let parameters: [String: String]
        do throws(HTTPError) { parameters = try request.formOrJSONParameters() } catch { return error.response }
        guard let token = parameters["token"], !token.isEmpty else {
            return .error(status: 400, error: "invalid_request", description: "the token parameter is required")
        }
        do {
            try await service.revoke(token: token, hint: parameters["token_type_hint"])
            return HTTPResponse(status: 200, headers: [("Cache-Control", "no-store")])
        } catch {
            return failure(error)
        }
    }

    static let tokenHeaders = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]

    static func token(_ request: HTTPRequest, _ service: TokenService) async -> HTTPResponse {
        let parameters: [String: String]
        do throws(HTTPError) { parameters = try request.formOrJSONParameters() } catch { return error.response }
        guard let grant = parameters["grant_type"] else {
            return .error(
                status: 400,
                error: "invalid_request",
                description: "the grant_type parameter is required",
                headers: tokenHeaders
            )
        }
        guard grant == "refresh_token" else {
            return .error(
                status: 400,
                error: "unsupported_grant_type",
                description: "grant_type \(grant.prefix(40)) is not supported; use refresh_token",
                headers: tokenHeaders
            )
        }
        guard let refresh = parameters["refresh_token"], !refresh.isEmpty else {
            return .error(
                status: 400,
                error: "invalid_request",
                description: "the refresh_token parameter is required",
                headers: tokenHeaders
            )
        }
        let scope = parameters["scope"].map { $0.split(separator: " ").map(String.init) }
        switch await service.refresh(token: refresh, scope: scope, clientID: parameters["client_id"]) {
        case .success(let tokens):
            return .json(200, .object(tokens.oauthBody), headers: tokenHeaders)
        case .failure(let error):
            let (status, body) = error.response
            var headers = tokenHeaders
            if status == 503 { headers.append(("Retry-After", "1")) }
            return .json(status, .object(body), headers: headers)
        }
    }

    /// RFC 6750 §3's answer to a token that cannot be used: 401 `invalid_token`.
    private static func invalidToken(_ description: String) -> HTTPResponse {
        HTTPResponse(
            status: 401,
            headers: [
                (
                    "WWW-Authenticate",
                    "Bearer realm=\"tokend\", error=\"invalid_token\", error_description=\"\(description)\""
                ),
                ("Cache-Control", "no-store"),
            ]
        )
    }

    /// For nginx `auth_request`: 200 with the subject's headers, or 401 per RFC 6750 §3.
    static func verify(_ request: HTTPRequest, _ service: TokenService) -> HTTPResponse {
        guard let authorization = request.header("Authorization") else {
            return HTTPResponse(
                status: 401,
                headers: [("WWW-Authenticate", "Bearer realm=\"tokend\""), ("Cache-Control", "no-store")]
            )
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else {
            return HTTPResponse(
                status: 401,
                headers: [
                    (
                        "WWW-Authenticate",
                        "Bearer realm=\"tokend\", error=\"invalid_request\", error_description=\"expected Authorization: Bearer <token>\""
                    ),
                    ("Cache-Control", "no-store"),
                ]
            )
        }
        switch service.introspect(String(parts[1]).trimmingCharacters(in: " ")) {
        case .active(let token)
        where !HTTPSyntax.isFieldValue(token.subject) || !HTTPSyntax.isFieldValue(token.scope):
            // Signed by a key of ours but not sendable in a header (a sub with CR/LF, from before
            // issuance refused such subjects): refused like any token that cannot be used here.
            return invalidToken("the token's sub or scope holds control characters")
        case .active(let token):
            return HTTPResponse(
                status: 200,
                headers: [
                    ("X-Token-Subject", token.subject), ("X-Token-Scope", token.scope),
                    ("X-Token-Expires", String(Int64(token.exp))), ("Cache-Control", "no-store"),
                ]
            )
        case .inactive(let reason):
            return invalidToken("\(reason)")
        case .unavailable(let reason):
            return .error(
                status: 503,
                error: "temporarily_unavailable",
                description: reason,
                headers: [("Retry-After", "1")]
            )
        }
    }

    static func jwks(_ request: HTTPRequest, _ service: TokenService) -> HTTPResponse {
        let snapshot = service.keyring.snapshot
        let headers = [
            ("Content-Type", "application/json"), ("ETag", snapshot.etag),
            ("Cache-Control", "public, max-age=\(Int(service.configuration.jwksMaxAge))"),
        ]
        if let match = request.header("If-None-Match"),
            match.split(separator: ",").contains(where: {
                $0.trimmingCharacters(in: " ") == snapshot.etag
            })
        {
            return HTTPResponse(status: 304, headers: Array(headers.dropFirst()))
        }
        return HTTPResponse(status: 200, headers: headers, body: snapshot.jwks)
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: Character) -> String {
        var slice = Substring(self)
        while slice.first == set { slice = slice.dropFirst() }
        while slice.last == set { slice = slice.dropLast() }
        return String(slice)
    }
}
