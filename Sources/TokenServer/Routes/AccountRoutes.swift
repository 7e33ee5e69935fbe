import CodedErrors
import JOSE
public import Logging
public import TokenService
import TokenStore

/// The account APIs of the seed documents, all three at once (DESIGN §5.3): the appmixer
/// dialect (`/user`, `/user/auth`), the classic one (`/api/user/login`, `/api/user/signup`)
/// and v1 (`/api/v1/auths/sign-in`, `/api/v1/auths/refresh`). Every answer, errors included,
/// keeps its dialect's shape.
public struct AccountRoutes: Sendable {
    public let accounts: AccountService
    /// Whose `X-Real-IP` / `X-Forwarded-For` the rate limits believe.
    public let trustedProxies: TrustedProxies
    let logger: Logger

    public init(accounts: AccountService, trustedProxies: TrustedProxies = .none, logger: Logger) {
        self.accounts = accounts
        self.trustedProxies = trustedProxies
        self.logger = logger
    }

    /// Which error body a path gets.
    enum Shape {
        /// `{"error": "…"}` (appmixer, classic).
        case message
        /// `{"statusCode": N, "message": "…"[, "errors": […]]}` (v1).
        case statusCode
        /// `{"error": code, "error_description": "…"}` (native OAuth routes).
        case oauth

        init(path: String) {
            if path.hasPrefix("/api/v1/") {
                self = .statusCode
            } else if path == "/user" || path.hasPrefix("/user/") || path.hasPrefix("/api/user/") {
                self = .message
            } else {
                self = .oauth
            }
        }
    }

    /// The server's own errors (413, 404, 405, 400, 431) in the shape of the path's dialect.
    public static func renderError(_ error: HTTPError, path: String) -> HTTPResponse {
        switch Shape(path: path) {
        case .oauth: return error.response
        case .message: return failure(.message, error.status, error.errorDescription, headers: error.headers)
        case .statusCode: return failure(.statusCode, error.status, error.errorDescription, headers: error.headers)
        }
    }

    static func failure(
        _ shape: Shape,
        _ status: Int,
        _ message: String,
        errors: [String] = [],
        headers: [(name: String, value: String)] = []
    ) -> HTTPResponse {
        var body = JSONObject()
        switch shape {
        case .message:
            body["error"] = .string(message)
        case .statusCode:
            body["statusCode"] = .number(JSONNumber(status))
            body["message"] = .string(message)
            if !errors.isEmpty { body["errors"] = .array(errors.map { .string($0) }) }
        case .oauth:
            body["error"] = .string(status == 400 ? "invalid_request" : "error")
            body["error_description"] = .string(message)
        }
        return .json(status, .object(body), headers: headers)
    }

    public func register(on router: inout Router) {
        let accounts = self.accounts
        let logger = self.logger
        let proxies = self.trustedProxies
        router.add(
            "POST",
            "/user/auth",
            name: "appmixer_signin",
            .async { request in
                await AccountRoutes.signIn(request, accounts, .appmixer, proxies, logger)
            }
        )
        router.add(
            "POST",
            "/user",
            name: "appmixer_signup",
            .async { request in
                await AccountRoutes.signUp(request, accounts, .appmixer, proxies, logger)
            }
        )
        router.add(
            "GET",
            "/user",
            name: "appmixer_user",
            .async { request in
                await AccountRoutes.userInfo(request, accounts)
            }
        )
        router.add(
            "POST",
            "/api/user/login",
            name: "classic_login",
            .async { request in
                await AccountRoutes.signIn(request, accounts, .classic, proxies, logger)
            }
        )
        router.add(
            "POST",
            "/api/user/signup",
            name: "classic_signup",
            .async { request in
                await AccountRoutes.signUp(request, accounts, .classic, proxies, logger)
            }
        )
        router.add(
            "POST",
            "/api/v1/auths/sign-in",
            name: "v1_signin",
            .async { request in
                await AccountRoutes.signIn(request, accounts, .v1, proxies, logger)
            }
        )
        router.add(
            "POST",
            "/api/v1/auths/refresh",
            name: "v1_refresh",
            .async { request in
                await AccountRoutes.refresh(request, accounts)
            }
        )
    }

    // MARK: Requests

    /// A response that ends a request early.
    struct Refusal: Error {
        let response: HTTPResponse
    }

    /// A sentence naming what is wrong with one field.
    struct Problem: Error {
        let text: String
    }

    /// The JSON object body, or the dialect's 400/415 error.
    static func body(_ request: HTTPRequest, _ shape: Shape) -> Result<JSONObject, Refusal> {
        do throws(HTTPError) {
            return .success(try request.jsonOrFormObject())
        } catch {
            return .failure(
                Refusal(response: failure(shape, error.status, error.errorDescription, headers: error.headers))
            )
        }
    }

    /// A string member, or a type error naming it. Absent and null read as nil.
    static func string(_ object: JSONObject, _ name: String) -> Result<String?, Problem> {
        switch object[name] {
        case nil, .null?: return .success(nil)
        case .string(let s)?: return .success(s)
        case let other?: return .failure(Problem(text: "\(name) must be a string, got \(other.typeName)"))
        }
    }

    // MARK: Handlers

    static func signIn(
        _ request: HTTPRequest,
        _ accounts: AccountService,
        _ dialect: AccountDialect,
        _ proxies: TrustedProxies,
        _ logger: Logger
    ) async -> HTTPResponse {
        let shape: Shape = dialect == .v1 ? .statusCode : .message
        let object: JSONObject
        switch body(request, shape) {
        case .success(let o): object = o
        case .failure(let refusal): return refusal.response
        }
        var problems: [String] = []
        func read(_ name: String) -> String? {
            switch string(object, name) {
            case .success(let value): return value
            case .failure(let problem):
                problems.append(problem.text)
                return nil
            }
        }
        let email = read("email").flatMap { $0.isEmpty ? nil : $0 }
        let username = read("username").flatMap { $0.isEmpty ? nil : $0 }
        let password = read("password")
        if dialect == .classic && email == nil && problems.isEmpty { problems.append("email must be provided") }
        if email == nil && username == nil && problems.isEmpty { problems.append("email or username must be provided") }
        if password == nil || password!.isEmpty {
            problems.append("password must be provided")
        } else if password!.count < accounts.configuration.minimumPasswordLength {
            problems.append("password must be at least \(accounts.configuration.minimumPasswordLength) characters")
        } else if password!.utf8.count > accounts.configuration.maximumPasswordBytes {
            problems.append("password must be at most \(accounts.configuration.maximumPasswordBytes) bytes")
        }
        guard problems.isEmpty, let password else { return validationFailure(shape, problems) }
        let identifier: AccountService.Identifier =
            switch dialect {
            case .appmixer: email.map { .email($0) } ?? .emailOrUsername(username!)
            case .classic: .email(email!)
            case .v1: email.map { .email($0) } ?? .username(username!)
            }
        do throws(AccountError) {
            let (user, tokens) = try await accounts.signIn(
                identifier,
                password: password,
                clientAddress: proxies.clientAddress(of: request),
                dialect: dialect
            )
            logger.info(
                "signed in",
                metadata: ["user": "\(user.publicID)", "dialect": "\(dialect.rawValue)", "jti": "\(tokens.jti)"]
            )
            return .json(200, .object(signInBody(user, tokens, dialect)))
        } catch {
            return accountFailure(error, shape)
        }
    }

    static func signUp(
        _ request: HTTPRequest,
        _ accounts: AccountService,
        _ dialect: AccountDialect,
        _ proxies: TrustedProxies,
        _ logger: Logger
    ) async -> HTTPResponse {
        let shape: Shape = .message
        let object: JSONObject
        switch body(request, shape) {
        case .success(let o): object = o
        case .failure(let refusal): return refusal.response
        }
        var problems: [String] = []
        func required(_ name: String) -> String? {
            switch string(object, name) {
            case .success(let value?) where !value.isEmpty: return value
            case .success: problems.append("\(name) is required")
            case .failure(let problem): problems.append(problem.text)
            }
            return nil
        }
        let username = required(dialect == .classic ? "name" : "username")
        let email = required("email")
        let password = required("password")
        guard problems.isEmpty, let username, let email, let password else { return validationFailure(shape, problems) }

        // An admin token bypasses the limits; with API_USER_CREATE_SCOPE set it is required.
        var isAdmin = false
        let adminScope = accounts.configuration.createScope ?? "admin"
        if let authorization = request.header("Authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                return failure(shape, 401, "Authorization must be a Bearer token")
            }
            switch accounts.tokens.introspect(String(parts[1])) {
            case .active(let token):
                isAdmin = token.scope.split(separator: " ").contains { $0 == adminScope }
            case .inactive:
                return failure(shape, 401, "The bearer token is not valid")
            case .unavailable:
                return failure(shape, 503, "Temporarily unavailable; try again", headers: [("Retry-After", "1")])
            }
        }
        if let scope = accounts.configuration.createScope, !isAdmin {
            return request.header("Authorization") == nil
                ? failure(shape, 401, "Creating users requires a bearer token with scope \(scope)")
                : failure(shape, 403, "Creating users requires a bearer token with scope \(scope)")
        }
        do throws(AccountError) {
            let user = try await accounts.signUp(
                username: username,
                email: email,
                password: password,
                clientAddress: proxies.clientAddress(of: request),
                bypassLimits: isAdmin
            )
            let tokens = try await accounts.issueTokens(for: user, dialect: dialect)
            if dialect == .appmixer {
                return .json(
                    200,
                    .object(
                        JSONObject([("token", .string(tokens.accessToken)), ("user", .object(appmixerUser(user)))])
                    )
                )
            }
            return .json(200, .object(signInBody(user, tokens, dialect)))
        } catch {
            return accountFailure(error, shape)
        }
    }

    static func userInfo(_ request: HTTPRequest, _ accounts: AccountService) async -> HTTPResponse {
        guard let authorization = request.header("Authorization") else {
            return failure(.message, 401, "Unauthorized", headers: [("WWW-Authenticate", "Bearer realm=\"tokend\"")])
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return failure(.message, 401, "Unauthorized", headers: [("WWW-Authenticate", "Bearer realm=\"tokend\"")])
        }
        do throws(AccountError) {
            let (user, _) = try await accounts.user(bearer: String(parts[1]))
            var body = JSONObject()
            body["id"] = .string(user.publicID)
            body["username"] = .string(user.username)
            body["isActive"] = .bool(user.status == .active)
            body["email"] = .string(user.email)
            body["scope"] = .array(user.scope.map { .string($0) })
            body["plan"] = .string(user.plan)
            return .json(200, .object(body))
        } catch {
            if error.code == .unauthorized {
                return failure(
                    .message,
                    401,
                    "Unauthorized",
                    headers: [("WWW-Authenticate", "Bearer realm=\"tokend\", error=\"invalid_token\"")]
                )
            }
            return accountFailure(error, .message)
        }
    }

    static func refresh(_ request: HTTPRequest, _ accounts: AccountService) async -> HTTPResponse {
        let object: JSONObject
        switch body(request, .statusCode) {
        case .success(let o): object = o
        case .failure(let refusal): return refusal.response
        }
        guard case .success(let token?) = string(object, "refreshToken"), !token.isEmpty else {
            return validationFailure(.statusCode, ["refreshToken must be provided"])
        }
        switch await accounts.tokens.refresh(token: token) {
        case .success(let tokens):
            do throws(AccountError) {
                let (user, _) = try await accounts.user(bearer: tokens.accessToken)
                return .json(200, .object(signInBody(user, tokens, .v1)))
            } catch {
                return accountFailure(error, .statusCode)
            }
        case .failure(let error):
            let status = error.code.answer.status
            if status == 403 { return failure(.statusCode, 403, "Account is inactive. Contact administrator.") }
            if status == 503 { return failure(.statusCode, 503, error.reason, headers: [("Retry-After", "1")]) }
            return failure(.statusCode, 401, "Invalid refresh token")
        }
    }

    // MARK: Bodies

    static func appmixerUser(_ user: UserView) -> JSONObject {
        JSONObject([
            ("id", .string(user.publicID)), ("username", .string(user.username)),
            ("isActive", .bool(user.status == .active)),
            ("email", .string(user.email)), ("plan", .string(user.plan)),
            ("vendor", user.vendor.map { .string($0) } ?? .null),
        ])
    }

    static func signInBody(_ user: UserView, _ tokens: IssuedTokens, _ dialect: AccountDialect) -> JSONObject {
        switch dialect {
        case .appmixer:
            return JSONObject([("user", .object(appmixerUser(user))), ("token", .string(tokens.accessToken))])
        case .classic:
            return JSONObject([
                ("userId", .string(user.publicID)), ("email", .string(user.email)),
                ("userName", .string(user.username)),
                ("token", .string(tokens.accessToken)),
            ])
        case .v1:
            let stats = (try? JSONParser().parse(user.statsJSON))?.objectValue ?? JSONObject()
            let v1User = JSONObject([
                ("id", .number(JSONNumber(user.numericID))), ("username", .string(user.username)),
                ("email", .string(user.email)), ("firstName", .string(user.firstName)),
                ("lastName", .string(user.lastName)),
                ("rol", .string(user.role)), ("avatar", .string(user.avatar)),
                ("status", .string(user.status.rawValue)),
                (
                    "lastLogin",
                    user.lastLoginAt.flatMap { NumericDate(seconds: $0)?.iso8601 }.map { .string($0) } ?? .null
                ),
                ("createdAt", .string(NumericDate(seconds: user.createdAt)?.iso8601 ?? "")),
                ("permissions", .array(user.permissions.map { .string($0) })), ("stats", .object(stats)),
            ])
            return JSONObject([
                ("accessToken", .string(tokens.accessToken)),
                ("refreshToken", tokens.refreshToken.map { .string($0) } ?? .null),
                ("user", .object(v1User)),
            ])
        }
    }

    static func validationFailure(_ shape: Shape, _ problems: [String]) -> HTTPResponse {
        if case .statusCode = shape { return failure(.statusCode, 400, "Validation failed", errors: problems) }
        return failure(shape, 400, problems.joined(separator: "; "))
    }

    static func accountFailure(_ error: AccountError, _ shape: Shape) -> HTTPResponse {
        let status = error.code.status
        let message: String
        switch error.code {
        case .validation:
            return validationFailure(shape, error.problems)
        case .invalidCredentials:
            message = shape == .statusCode ? "Invalid email or password" : "Invalid credentials"
        case .inactive:
            message = "Account is inactive. Contact administrator."
        case .signUpLimitedPerEmail:
            message = "Too many signup attempts for this email address. Please try again later."
        case .signUpLimitedPerAddress:
            message = "Too many signup attempts from your IP address. Please try again later."
        case .signInLimited:
            message = "Too many sign-in attempts. Please try again later."
        case .conflict:
            message = error.field == "username" ? "Username is already taken" : "Email is already registered"
        case .unauthorized:
            message = "Unauthorized"
        case .notFound:
            message = "User not found"
        case .overloaded:
            message = "Too many sign-ins in progress; try again shortly"
        default:
            message = "Temporarily unavailable; try again shortly"
        }
        var headers: [(name: String, value: String)] = []
        if status == 429 { headers = [("Retry-After", String(Int((error.retryAfter ?? 1).rounded(.up))))] }
        if status == 503 { headers = [("Retry-After", "1")] }
        return failure(shape, status, message, headers: headers)
    }
}
