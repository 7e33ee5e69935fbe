import Foundation
import JOSE
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

extension Tokend {
    /// `POST /admin/users` → the created user (admin shape).
    @discardableResult
    func createUser(
        _ username: String,
        _ email: String,
        _ password: String,
        extra: [String: JSONValue] = [:]
    ) async throws
        -> AdminUser
    {
        var members: [String: JSONValue] = [
            "username": .string(username), "email": .string(email), "password": .string(password),
        ]
        members.merge(extra) { $1 }
        let reply = try await admin("POST", "/admin/users", json: jsonText(members))
        guard reply.status == 201, let user = AdminUser(reply.json) else {
            throw HarnessError("POST /admin/users answered \(reply.status): \(reply.text.redactingSecrets)")
        }
        return user
    }

    /// `jwt-inspect --policy auto --json --keys-dir KEYS TOKEN`: exit code and its JSON report.
    func inspect(_ token: String) async throws -> (exitCode: TokenTestSupport.ExitStatus, report: JSONValue) {
        let result = try await run(
            try Binaries.path("jwt-inspect"),
            ["--policy", "auto", "--json", "--keys-dir", keysDirectory, "--", token],
            in: sandbox.path
        )
        guard let report = try? JSONParser().parse(result.stdout) else {
            throw HarnessError(
                "jwt-inspect printed no JSON (\(result.status)): \(result.output.redactingSecrets.prefix(400))"
            )
        }
        return (result.status, report)
    }
}

/// Starts a daemon with the relaxed limits and `environment`, runs `body`, and always stops it
/// (by pid) and removes its directory.
func withDaemon<T>(
    _ name: String,
    environment: [String: String] = [:],
    _ body: (Tokend) async throws -> T
) async throws -> T {
    try await withTokend("acct-\(name)", environment: Tokend.relaxedLimits.merging(environment) { $1 }, body)
}

/// `TOKEND_TRUSTED_PROXIES` naming this test process's uid: the tests' requests on the API
/// socket come from a trusted proxy, so their `X-Real-IP` / `X-Forwarded-For` are believed.
let trustingTheTests = ["TOKEND_TRUSTED_PROXIES": "uid:\(getuid())"]

/// A user as `/admin/users` shows it.
struct AdminUser: Sendable {
    let id: String
    let numericID: Int64
    let username: String
    let email: String
    let status: String

    init?(_ json: JSONValue?) {
        guard let json, let id = json["id"]?.stringValue, let numeric = json["numericId"]?.numberValue?.int64Value,
            let username = json["username"]?.stringValue, let email = json["email"]?.stringValue,
            let status = json["status"]?.stringValue
        else { return nil }
        (self.id, numericID, self.username, self.email, self.status) = (id, numeric, username, email, status)
    }
}
