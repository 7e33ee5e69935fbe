import Foundation
import JOSE
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A running tokend on sockets, store and key directory of its own temporary directory.
final class Daemon: Sendable {
    let directory: TemporaryDirectory
    let child: ChildProcess

    var apiSocket: String { directory.file("api.sock") }
    var adminSocket: String { directory.file("admin.sock") }
    var keysDirectory: String { directory.file("keys") }
    var log: String { child.output }

    /// Limits high enough that the tests' many sign-ins from one uid are not refused; a test
    /// about limits sets its own.
    static let relaxedLimits = [
        "TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT": "100000", "TOKEND_SIGNIN_RATE_LIMIT_IP": "100000",
        "USER_SIGNUP_RATE_LIMIT_EMAIL": "100000", "USER_SIGNUP_RATE_LIMIT_IP": "100000",
    ]

    private init(directory: TemporaryDirectory, child: ChildProcess) {
        self.directory = directory
        self.child = child
    }

    /// Starts `.build/debug/tokend` with `environment` over the relaxed limits and waits until
    /// both sockets answer and the account routes are served.
    static func start(_ name: String, environment extra: [String: String] = [:]) async throws -> Daemon {
        let directory = try TemporaryDirectory(prefix: "tokend-acct-\(name)")
        guard mkdir(directory.file("keys"), 0o700) == 0 else {
            throw HarnessError("mkdir keys: \(String(cString: strerror(errno)))")
        }
        let environment = minimalEnvironment(
            [
                "TOKEND_SOCKET": directory.file("api.sock"), "TOKEND_ADMIN_SOCKET": directory.file("admin.sock"),
                "TOKEND_STORE": "sqlite:\(directory.file("tokend.db"))", "TOKEND_KEYS_DIR": directory.file("keys"),
            ].merging(relaxedLimits) { $1 }.merging(extra) { $1 }
        )
        let child = try ChildProcess(
            try Binaries.path("tokend"),
            [],
            environment: environment,
            output: directory.file("tokend.log")
        )
        let daemon = Daemon(directory: directory, child: child)
        do {
            try await daemon.waitUntilServing()
        } catch {
            await daemon.stop()
            throw error
        }
        return daemon
    }

    func waitUntilServing() async throws {
        _ = try await eventually("tokend to serve on \(apiSocket)", timeout: Timeouts.start) {
            () async throws -> Bool? in
            if let status = self.child.exitStatus {
                throw HarnessError(
                    "tokend exited (\(status)) before serving; its log:\n\(self.log.lastLines(30).redactingSecrets)"
                )
            }
            guard FileManager.default.fileExists(atPath: self.apiSocket),
                FileManager.default.fileExists(atPath: self.adminSocket)
            else { return nil }
            let health = try await http(self.apiSocket, "GET", "/healthz", timeout: 5)
            let admin = try await http(self.adminSocket, "GET", "/admin/status", timeout: 5)
            return health.status == 200 && admin.status == 200 ? true : nil
        }
    }

    /// SIGTERM by pid and wait (SIGKILL after 20 s, recorded as an issue).
    func stop(sourceLocation: SourceLocation = #_sourceLocation) async {
        let (_, killed) = await child.stop(timeout: Timeouts.stop)
        if killed {
            Issue.record(
                "tokend (pid \(child.pid)) ignored SIGTERM for 20 s; killed it",
                sourceLocation: sourceLocation
            )
        }
    }

    // MARK: Talking to it

    /// A request on the API socket; `json` is sent as `application/json`.
    func api(
        _ method: String,
        _ target: String,
        json: String? = nil,
        headers: [(String, String)] = []
    ) async throws -> Reply {
        try await http(apiSocket, method, target, headers: headers, body: json.map { .json($0) })
    }

    func api(
        _ method: String,
        _ target: String,
        body: RequestBody?,
        headers: [(String, String)] = []
    ) async throws -> Reply {
        try await http(apiSocket, method, target, headers: headers, body: body)
    }

    /// A request on the admin socket.
    func admin(_ method: String, _ target: String, json: String? = nil) async throws -> Reply {
        try await http(adminSocket, method, target, body: json.map { .json($0) })
    }

    /// `POST /admin/tokens` → the access token.
    func adminToken(sub: String, scope: String) async throws -> String {
        let reply = try await admin(
            "POST",
            "/admin/tokens",
            json: jsonText(["sub": .string(sub), "scope": .string(scope)])
        )
        guard reply.status == 200, let token = reply.json?["access_token"]?.stringValue else {
            throw HarnessError("POST /admin/tokens answered \(reply.status): \(reply.text.redactingSecrets)")
        }
        return token
    }

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

    /// Whether `POST /oauth2/introspect` says the token is active (throws on anything but 200).
    func isActive(_ token: String) async throws -> Bool {
        let reply = try await api("POST", "/oauth2/introspect", body: .form([("token", token)]))
        guard reply.status == 200, let active = reply.json?["active"]?.boolValue else {
            throw HarnessError("introspection answered \(reply.status): \(reply.text.redactingSecrets)")
        }
        return active
    }

    /// `jwt-inspect --policy auto --json --keys-dir KEYS TOKEN`: exit code and its JSON report.
    func inspect(_ token: String) async throws -> (exitCode: TokenTestSupport.ExitStatus, report: JSONValue) {
        let result = try await run(
            try Binaries.path("jwt-inspect"),
            ["--policy", "auto", "--json", "--keys-dir", keysDirectory, "--", token],
            in: directory.path
        )
        guard let report = try? JSONParser().parse(result.stdout) else {
            throw HarnessError(
                "jwt-inspect printed no JSON (\(result.status)): \(result.output.redactingSecrets.prefix(400))"
            )
        }
        return (result.status, report)
    }
}

/// Starts a daemon, runs `body`, and always stops it (by pid) and removes its directory.
func withDaemon<T>(
    _ name: String,
    environment: [String: String] = [:],
    _ body: (Daemon) async throws -> T
) async throws -> T {
    let daemon = try await Daemon.start(name, environment: environment)
    do {
        let result = try await body(daemon)
        await daemon.stop()
        return result
    } catch {
        await daemon.stop()
        throw error
    }
}

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
