import CodedErrors
import JOSE
import Logging
import TokenCrypto
import TokenService
import TokenStore

extension TokenRoutes {
    func addAdmin(to router: inout Router) {
        let service = self.service
        let logger = self.logger
        router.add(
            "POST",
            "/admin/tokens",
            name: "admin_issue",
            .async { request in
                await TokenRoutes.issue(request, service, logger)
            }
        )
        router.add(
            "POST",
            "/admin/tokens/explain",
            name: "admin_explain",
            .async { request in
                let object: JSONObject
                do throws(HTTPError) { object = try request.jsonOrFormObject() } catch { return error.response }
                guard let token = object["token"]?.stringValue, !token.isEmpty else {
                    return .error(status: 400, error: "invalid_request", description: "token (a string) is required")
                }
                return .json(200, .object(await service.explain(token: token)))
            }
        )
        router.add(
            "GET",
            "/admin/keys",
            name: "admin_keys",
            .async { _ in
                .json(200, .object(await TokenRoutes.keysBody(service)))
            }
        )
        router.add(
            "POST",
            "/admin/keys/rotate",
            name: "admin_rotate",
            .async { request in
                let object: JSONObject
                do throws(HTTPError) {
                    object = request.body.isEmpty ? JSONObject() : try request.jsonOrFormObject()
                } catch { return error.response }
                let force: Bool
                switch object["force"] {
                case nil, .null?: force = false
                case .bool(let value)?: force = value
                case .string(let text)? where text == "true" || text == "false": force = text == "true"
                default:
                    return .error(status: 400, error: "invalid_request", description: "force must be a boolean")
                }
                logger.notice(
                    "key rotation requested",
                    metadata: ["peer": "\(request.peer?.description ?? "-")", "force": "\(force)"]
                )
                do {
                    let change = try await service.rotateKeys(force: force)
                    return .json(200, .object(await TokenRoutes.changeBody(change, service)))
                } catch {
                    return TokenRoutes.failure(error)
                }
            }
        )
        router.add(
            "POST",
            "/admin/keys/{kid}/revoke",
            name: "admin_revoke_key",
            .async { request in
                let kid = request.pathParameters["kid"] ?? ""
                logger.warning(
                    "key revocation requested",
                    metadata: ["peer": "\(request.peer?.description ?? "-")", "kid": "\(kid)"]
                )
                return await TokenRoutes.waiting(request, service) {
                    do {
                        let change = try await service.revokeKey(kid: kid)
                        return .json(200, .object(await TokenRoutes.changeBody(change, service)))
                    } catch {
                        return TokenRoutes.failure(error)
                    }
                }
            }
        )
        let accounts = self.accounts?.accounts
        router.add(
            "POST",
            "/admin/users/{id}/logout",
            name: "admin_logout",
            .async { request in
                var subject = request.pathParameters["id"] ?? ""
                guard !subject.isEmpty else {
                    return .error(status: 400, error: "invalid_request", description: "a user id is required")
                }
                // With accounts, the id names a user (public or numeric id); without, it is a subject.
                if let accounts {
                    do throws(AccountError) {
                        subject = try await accounts.find(subject).publicID
                    } catch {
                        return AccountRoutes.adminFailure(error)
                    }
                }
                let signedOut = subject
                return await TokenRoutes.waiting(request, service) {
                    do {
                        try await service.logout(subject: signedOut)
                        return .json(
                            200,
                            .object(JSONObject([("sub", .string(signedOut)), ("signed_out", .bool(true))]))
                        )
                    } catch {
                        return TokenRoutes.failure(error)
                    }
                }
            }
        )
        router.add(
            "GET",
            "/admin/status",
            name: "admin_status",
            .async { _ in
                // Both may read the store (the fleet's heartbeats for rotation_safe_at): side
                // by side, so a store that is down delays the answer once, not twice.
                async let checked = service.health()
                async let keys = TokenRoutes.keysBody(service)
                let health = await checked
                var body = await keys
                body["status"] = .string(health.status.rawValue)
                body["reason"] = .string(health.reason)
                // Nested: `keys` is the key list here.
                body["health"] = .object(JSONObject(health.parts.map { ($0.name, .string($0.state)) }))
                let counts = service.revocations.counts
                body["revoked_access_tokens"] = .number(JSONNumber(counts.jtis))
                body["signed_out_subjects"] = .number(JSONNumber(counts.cutoffs))
                body["ended_sessions"] = .number(JSONNumber(counts.families))
                body["issuer"] = .string(service.configuration.issuer)
                return .json(200, .object(body))
            }
        )
    }

    static func issue(_ request: HTTPRequest, _ service: TokenService, _ logger: Logger) async -> HTTPResponse {
        let object: JSONObject
        do throws(HTTPError) { object = try request.jsonOrFormObject() } catch { return error.response }
        guard let sub = object["sub"]?.stringValue, !sub.isEmpty else {
            return .error(status: 400, error: "invalid_request", description: "sub (a non-empty string) is required")
        }
        var scope: [String] = []
        switch object["scope"] {
        case nil, .null?: break
        case .string(let text)?: scope = text.split(separator: " ").map(String.init)
        case .array(let items)?:
            guard items.allSatisfy({ $0.stringValue != nil }) else {
                return .error(
                    status: 400,
                    error: "invalid_request",
                    description: "scope must be a string or an array of strings"
                )
            }
            scope = items.compactMap(\.stringValue)
        default:
            return .error(
                status: 400,
                error: "invalid_request",
                description: "scope must be a string or an array of strings"
            )
        }
        var policy: LifetimePolicy?
        if let value = object["policy"] {
            guard let text = value.stringValue, let parsed = LifetimePolicy(parsing: text) else {
                return .error(
                    status: 400,
                    error: "invalid_request",
                    description: "policy must be 1h, 24h, 30d or a duration like 15m"
                )
            }
            policy = parsed
        }
        let refresh: Bool
        switch object["refresh"] {
        case nil: refresh = false
        case .bool(let b)?: refresh = b
        case .string(let s)? where s == "true" || s == "false": refresh = s == "true"
        default: return .error(status: 400, error: "invalid_request", description: "refresh must be a boolean")
        }
        let clientID: String
        switch object["client_id"] {
        case nil, .null?: clientID = "tokend-admin"
        case .string(let text)?: clientID = text
        default: return .error(status: 400, error: "invalid_request", description: "client_id must be a string")
        }
        do {
            let tokens = try await service.issue(
                IssueRequest(subject: sub, scope: scope, clientID: clientID, policy: policy, withRefresh: refresh)
            )
            logger.info(
                "token issued through the admin socket",
                metadata: ["sub": "\(sub)", "jti": "\(tokens.jti)", "peer": "\(request.peer?.description ?? "-")"]
            )
            return .json(200, .object(tokens.oauthBody), headers: tokenHeaders)
        } catch {
            return failure(error)
        }
    }

    static func failure(_ error: any Error) -> HTTPResponse {
        guard let error = error as? ServiceError else {
            return .error(status: 500, error: "server_error", description: "unexpected failure: \(error)")
        }
        let answer = error.code.answer
        return .error(
            status: answer.status,
            error: answer.error,
            description: error.reason,
            headers: answer.status == 503 ? [("Retry-After", "1")] : []
        )
    }

    static func keysBody(_ service: TokenService) async -> JSONObject {
        let keys: [JSONValue] = service.keyList.map { entry in
            var object = JSONObject()
            object["kid"] = .string(entry.kid)
            object["alg"] = .string(entry.algorithm.rawValue)
            object["state"] = .string(entry.state.rawValue)
            object["created"] = .string(entry.created.iso8601)
            object["activated"] = entry.activated.map { .string($0.iso8601) } ?? .null
            object["deactivated"] = entry.deactivated.map { .string($0.iso8601) } ?? .null
            object["retired"] = entry.retired.map { .string($0.iso8601) } ?? .null
            return .object(object)
        }
        var body = JSONObject([("keys", .array(keys))])
        if let readiness = await service.rotationReadiness() {
            if let safe = readiness.safeAt {
                body["rotation_safe_at"] = .string(NumericDate(seconds: safe)?.iso8601 ?? "?")
            }
            if !readiness.waitingFor.isEmpty {
                body["rotation_waits_for"] = .array(readiness.waitingFor.map { .string($0) })
            }
            if readiness.fleetUnknown {
                body["rotation_fleet_unknown"] = .string(
                    "the fleet's heartbeats cannot be read: rotation_safe_at counts from this node's keyring only"
                )
            }
        }
        return body
    }

    static func changeBody(_ change: KeyLifecycle.Change, _ service: TokenService) async -> JSONObject {
        var body = await keysBody(service)
        var summary = JSONObject()
        if let promoted = change.promoted { summary["current"] = .string(promoted) }
        if let demoted = change.demoted { summary["previous"] = .string(demoted) }
        if let revoked = change.revoked { summary["revoked"] = .string(revoked) }
        if !change.added.isEmpty { summary["next"] = .string(change.added[0]) }
        body["change"] = .object(summary)
        return body
    }
}

extension HTTPRequest {
    /// A JSON object body, or a form body as an object of strings.
    func jsonOrFormObject() throws(HTTPError) -> JSONObject {
        let type = header("Content-Type")?.lowercased() ?? ""
        if type.hasPrefix("application/x-www-form-urlencoded") {
            let form = try formOrJSONParameters()
            return JSONObject(form.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) })
        }
        return try jsonObject()
    }
}
