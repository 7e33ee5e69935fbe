public import JOSE
import TokenStore

extension TokenService {
    /// Every check of a token and its result, for `POST /admin/tokens/explain`: header,
    /// claims, signature, times, the key's state, revocations and the refresh family. It
    /// shows claims (they are not secret) and never the token, a signature or a key.
    public func explain(token: String) async -> JSONObject {
        let now = clock.now()
        let snapshot = keyring.snapshot
        let report = TokenInspector(keys: snapshot.keySet, options: validationOptions).inspect(token, now: now)
        var checks: [JSONValue] = report.checks.map { check in
            var object = JSONObject([
                ("name", .string(check.name)), ("status", .string(check.outcome.label.lowercased())),
                ("detail", .string(check.outcome.detail)),
            ])
            if case .fail(let error) = check.outcome { object["rule"] = .string(error.code.name) }
            return .object(object)
        }
        func add(_ name: String, _ ok: Bool, _ detail: String) {
            checks.append(
                .object(
                    JSONObject([
                        ("name", .string(name)), ("status", .string(ok ? "ok" : "fail")), ("detail", .string(detail)),
                    ])
                )
            )
        }

        var result = JSONObject()
        if let kid = report.header?["kid"]?.stringValue {
            let entry = snapshot.document.keys.first { $0.kid == kid }
            let state = entry?.state.rawValue ?? "unknown"
            add("key state", entry?.state.verifies ?? false, "kid \(kid) is \(state) in the keyring")
            result["key"] = .object(JSONObject([("kid", .string(kid)), ("state", .string(state))]))
        }
        if let claims = report.claims {
            if let jti = claims.jti {
                let revoked = revocations.isAccessTokenRevoked(jti: jti)
                add("jti revoked", !revoked, revoked ? "jti \(jti) was revoked" : "jti \(jti) is not revoked")
            }
            if let sub = claims.sub {
                if let cutoff = revocations.cutoff(subject: sub), let iat = claims.iat {
                    let ok = iat.seconds > cutoff
                    let when = NumericDate(seconds: cutoff)?.iso8601 ?? "?"
                    add(
                        "subject cutoff",
                        ok,
                        ok
                            ? "issued after \(sub) was signed out (\(when))"
                            : "issued before \(sub) was signed out at \(when)"
                    )
                } else {
                    add("subject cutoff", true, "\(sub) has not been signed out")
                }
            }
            if let sid = claims.json["sid"]?.stringValue {
                if let family = try? await store.refreshFamily(id: sid) {
                    let ended = family.revokedAt != nil || revocations.isFamilyRevoked(sid)
                    add(
                        "refresh family",
                        !ended,
                        ended ? "session \(sid) ended: \(family.revokedReason ?? "revoked")" : "session \(sid) is live"
                    )
                    var object = JSONObject([
                        ("id", .string(family.id)), ("subject", .string(family.subject)),
                        ("client_id", .string(family.clientID)), ("state", .string(ended ? "revoked" : "active")),
                        ("expires_at", .string(NumericDate(seconds: family.expiresAt)?.iso8601 ?? "?")),
                    ])
                    if let reason = family.revokedReason { object["revoked_reason"] = .string(reason) }
                    result["family"] = .object(object)
                } else {
                    let ended = revocations.isFamilyRevoked(sid)
                    add("refresh family", !ended, ended ? "session \(sid) ended" : "session \(sid) is not in the store")
                }
            }
            if let exp = claims.exp {
                result["expires_in"] = .number(JSONNumber(Int64((exp.seconds - now).rounded(.down))))
            }
            result["claims"] = .object(claims.json)
        }
        if let header = report.header { result["header"] = .object(header) }
        switch introspect(token) {
        case .active:
            result["active"] = .bool(true)
            result["verdict"] = "active"
        case .inactive(let reason):
            result["active"] = .bool(false)
            result["verdict"] = .string(report.decisive.map { "inactive: \($0.reason)" } ?? "inactive: \(reason)")
        case .unavailable(let reason):
            result["active"] = .bool(false)
            result["verdict"] = .string("unavailable: \(reason); the token's revocation state cannot be vouched for")
        }
        result["checks"] = .array(checks)
        return result
    }
}
