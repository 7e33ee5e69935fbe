import CodedErrors
import JOSE
import TokenService
import TokenStore

extension AccountRoutes {
    /// `/admin/users…` on the admin socket: create (no rate limits), list and search, show,
    /// activate, deactivate, set-password. Logout lives in the token routes.
    public func registerAdmin(on router: inout Router) {
        let accounts = self.accounts
        router.add(
            "POST",
            "/admin/users",
            name: "admin_user_create",
            .async { request in
                let object: JSONObject
                do throws(HTTPError) { object = try request.jsonOrFormObject() } catch { return error.response }
                var problems: [String] = []
                func field(_ name: String, required: Bool) -> String? {
                    switch object[name] {
                    case .string(let s)? where !s.isEmpty: return s
                    case nil, .null?, .string?: if required { problems.append("\(name) is required") }
                    case let other?: problems.append("\(name) must be a string, got \(other.typeName)")
                    }
                    return nil
                }
                let username = field("username", required: true)
                let email = field("email", required: true)
                let password = field("password", required: true)
                let firstName = field("firstName", required: false) ?? ""
                let lastName = field("lastName", required: false) ?? ""
                let role = field("role", required: false) ?? "user"
                guard problems.isEmpty, let username, let email, let password else {
                    return .error(status: 400, error: "invalid_request", description: problems.joined(separator: "; "))
                }
                do throws(AccountError) {
                    let user = try await accounts.signUp(
                        username: username,
                        email: email,
                        password: password,
                        clientAddress: "admin",
                        bypassLimits: true,
                        profile: (firstName, lastName, role)
                    )
                    return .json(201, .object(AccountRoutes.adminUser(user)))
                } catch {
                    return AccountRoutes.adminFailure(error)
                }
            }
        )
        router.add(
            "GET",
            "/admin/users",
            name: "admin_user_list",
            .async { request in
                var query = UserQuery()
                query.emailContains = request.queryValue("email")
                query.usernameContains = request.queryValue("username")
                if let status = request.queryValue("status") {
                    guard let parsed = UserRecord.Status(rawValue: status) else {
                        return .error(
                            status: 400,
                            error: "invalid_request",
                            description: "status must be active or inactive"
                        )
                    }
                    query.status = parsed
                }
                if let limit = request.queryValue("limit") {
                    guard let n = Int(limit), (1...1000).contains(n) else {
                        return .error(
                            status: 400,
                            error: "invalid_request",
                            description: "limit must be a number from 1 to 1000"
                        )
                    }
                    query.limit = n
                }
                if let offset = request.queryValue("offset") {
                    guard let n = Int(offset), n >= 0 else {
                        return .error(status: 400, error: "invalid_request", description: "offset must be a number ≥ 0")
                    }
                    query.offset = n
                }
                do throws(AccountError) {
                    let users = try await accounts.list(query)
                    return .json(
                        200,
                        .object(JSONObject([("users", .array(users.map { .object(AccountRoutes.adminUser($0)) }))]))
                    )
                } catch {
                    return AccountRoutes.adminFailure(error)
                }
            }
        )
        router.add(
            "GET",
            "/admin/users/{id}",
            name: "admin_user_show",
            .async { request in
                do throws(AccountError) {
                    return .json(
                        200,
                        .object(AccountRoutes.adminUser(try await accounts.find(request.pathParameters["id"] ?? "")))
                    )
                } catch {
                    return AccountRoutes.adminFailure(error)
                }
            }
        )
        for (action, active) in [("activate", true), ("deactivate", false)] {
            router.add(
                "POST",
                "/admin/users/{id}/\(action)",
                name: "admin_user_\(action)",
                .async { request in
                    // `?wait=`: a deactivation answers once every node has applied it.
                    await TokenRoutes.waiting(request, accounts.tokens) {
                        do throws(AccountError) {
                            let user = try await accounts.find(request.pathParameters["id"] ?? "")
                            return .json(
                                200,
                                .object(AccountRoutes.adminUser(try await accounts.setActive(user.publicID, active)))
                            )
                        } catch {
                            return AccountRoutes.adminFailure(error)
                        }
                    }
                }
            )
        }
        router.add(
            "POST",
            "/admin/users/{id}/password",
            name: "admin_user_password",
            .async { request in
                let object: JSONObject
                do throws(HTTPError) { object = try request.jsonOrFormObject() } catch { return error.response }
                guard let password = object["password"]?.stringValue else {
                    return .error(status: 400, error: "invalid_request", description: "password (a string) is required")
                }
                do throws(AccountError) {
                    let user = try await accounts.find(request.pathParameters["id"] ?? "")
                    return .json(
                        200,
                        .object(AccountRoutes.adminUser(try await accounts.setPassword(user.publicID, password)))
                    )
                } catch {
                    return AccountRoutes.adminFailure(error)
                }
            }
        )
    }

    /// A user for operators: everything but the password hash.
    static func adminUser(_ user: UserView) -> JSONObject {
        var object = JSONObject()
        object["id"] = .string(user.publicID)
        object["numericId"] = .number(JSONNumber(user.numericID))
        object["username"] = .string(user.username)
        object["email"] = .string(user.email)
        object["status"] = .string(user.status.rawValue)
        object["plan"] = .string(user.plan)
        object["role"] = .string(user.role)
        object["firstName"] = .string(user.firstName)
        object["lastName"] = .string(user.lastName)
        object["scope"] = .array(user.scope.map { .string($0) })
        object["createdAt"] = .string(NumericDate(seconds: user.createdAt)?.iso8601 ?? "")
        object["lastLogin"] =
            user.lastLoginAt.flatMap { NumericDate(seconds: $0)?.iso8601 }.map { .string($0) } ?? .null
        return object
    }

    static func adminFailure(_ error: AccountError) -> HTTPResponse {
        let status = error.code.status
        switch error.code {
        case .validation:
            return .error(status: status, error: "invalid_request", description: error.problems.joined(separator: "; "))
        case .conflict:
            return .error(
                status: status,
                error: "conflict",
                description: "\(error.field ?? "a value") is already in use"
            )
        case .notFound:
            return .error(status: status, error: "not_found", description: "no such user")
        case .overloaded:
            return .error(
                status: status,
                error: "temporarily_unavailable",
                description: "the hashing pool is full",
                headers: [("Retry-After", "1")]
            )
        default:
            // Only `unavailable` reaches here from the admin routes.
            return .error(
                status: 503,
                error: "temporarily_unavailable",
                description: "\(error.code)",
                headers: [("Retry-After", "1")]
            )
        }
    }
}
