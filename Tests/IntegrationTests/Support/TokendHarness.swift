import Foundation
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One test's private world: a temporary directory (0700) holding tokend's sockets, store, key
/// directory and logs. Restarting tokend on the same sandbox keeps its state.
final class Sandbox: Sendable {
    let directory: TemporaryDirectory
    private let runs = Mutex(0)

    init(_ name: String = "it") throws {
        directory = try TemporaryDirectory(prefix: "tokend-\(name)")
        guard mkdir(keysDirectory, 0o700) == 0 else {
            throw HarnessError("mkdir \(keysDirectory): \(String(cString: strerror(errno)))")
        }
    }

    var path: String { directory.path }
    func file(_ name: String) -> String { directory.file(name) }

    var apiSocket: String { file("api.sock") }
    var adminSocket: String { file("admin.sock") }
    var storePath: String { file("tokend.db") }
    var keysDirectory: String { file("keys") }

    /// TOKEND_* for this sandbox: sockets, store and keys inside the directory.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        minimalEnvironment(
            [
                "TOKEND_SOCKET": apiSocket,
                "TOKEND_ADMIN_SOCKET": adminSocket,
                "TOKEND_STORE": "sqlite:\(storePath)",
                "TOKEND_KEYS_DIR": keysDirectory,
            ].merging(extra) { $1 }
        )
    }

    /// A fresh log file name for the next run of something.
    func nextLogFile(_ stem: String) -> String {
        let run = runs.withLock { value -> Int in
            value += 1
            return value
        }
        return file("\(stem)-\(run).log")
    }

    /// The private key files (`*.pem`) in the key directory.
    var privateKeyFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: keysDirectory)) ?? []).filter { $0.hasSuffix(".pem") }
            .sorted()
            .map { "\(keysDirectory)/\($0)" }
    }

    func remove() { directory.remove() }
}

/// A running tokend: the real binary, started with a sandbox's environment, stderr in a log file.
final class Tokend: Sendable {
    let sandbox: Sandbox
    let child: ChildProcess

    var pid: Int32 { child.pid }
    var apiSocket: String { sandbox.apiSocket }
    var adminSocket: String { sandbox.adminSocket }
    /// Everything tokend wrote to stderr (its logs) so far.
    var log: String { child.stderr }

    private init(sandbox: Sandbox, child: ChildProcess) {
        self.sandbox = sandbox
        self.child = child
    }

    /// Starts tokend with `environment` (use `sandbox.environment(…)`) and `arguments`; unless
    /// `waitUntilServing` is false, returns once both sockets answer.
    static func start(
        _ sandbox: Sandbox,
        environment: [String: String]? = nil,
        arguments: [String] = [],
        waitUntilServing: Bool = true
    ) async throws -> Tokend {
        let log = sandbox.nextLogFile("tokend")
        let child = try ChildProcess(
            try Binaries.tokend(),
            arguments,
            environment: environment ?? sandbox.environment(),
            stdout: log,
            stderr: log,
            name: "tokend"
        )
        let daemon = Tokend(sandbox: sandbox, child: child)
        if waitUntilServing {
            do {
                try await daemon.waitUntilServing()
            } catch {
                await daemon.stop()
                throw error
            }
        }
        return daemon
    }

    /// Polls both sockets until `/healthz` answers 200 on the API socket and `/admin/status`
    /// 200 on the admin socket; fails at once if tokend exits.
    func waitUntilServing(timeout: Duration = Timeouts.start) async throws {
        _ = try await eventually("tokend to serve on \(apiSocket) and \(adminSocket)", timeout: timeout) {
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

    /// SIGTERM by pid and wait; SIGKILL after the timeout (recorded as an issue).
    @discardableResult
    func stop(
        timeout: Duration = Timeouts.stop,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> TokenTestSupport.ExitStatus? {
        let (status, killed) = await child.stop(timeout: timeout)
        if killed {
            Issue.record(
                "tokend (pid \(pid)) ignored SIGTERM for \(timeout); killed it",
                sourceLocation: sourceLocation
            )
        }
        return status
    }

    /// kill -9 by pid, and wait until it is gone.
    func kill9() async throws {
        child.send(SIGKILL)
        guard await child.waitForExit(timeout: .seconds(10)) != nil else {
            throw HarnessError("tokend survived SIGKILL")
        }
    }

    func send(_ signal: Int32) { child.send(signal) }

    // MARK: The API, as a client sees it

    /// `POST /admin/tokens` on the admin socket.
    func issue(
        sub: String,
        scope: String? = nil,
        refresh: Bool = false,
        policy: String? = nil
    ) async throws -> IssuedTokens {
        var members = ["\"sub\":\(sub.jsonQuoted)", "\"refresh\":\(refresh)"]
        if let scope { members.append("\"scope\":\(scope.jsonQuoted)") }
        if let policy { members.append("\"policy\":\(policy.jsonQuoted)") }
        let response = try await http(
            adminSocket,
            "POST",
            "/admin/tokens",
            body: .json("{\(members.joined(separator: ","))}")
        )
        guard response.status == 200, let tokens = IssuedTokens(response) else {
            throw HarnessError("POST /admin/tokens answered \(response.status): \(response.text.redactingSecrets)")
        }
        return tokens
    }

    /// `POST /oauth2/introspect` (form) on the API socket.
    func introspect(_ token: String) async throws -> HTTPResponse {
        try await http(apiSocket, "POST", "/oauth2/introspect", body: .form([("token", token)]))
    }

    /// Whether the token introspects active; throws on anything but 200.
    func isActive(_ token: String) async throws -> Bool {
        let response = try await introspect(token)
        guard response.status == 200, let active = response.json?["active"] as? Bool else {
            throw HarnessError("introspection answered \(response.status): \(response.text.redactingSecrets)")
        }
        return active
    }

    /// `POST /oauth2/revoke` (form) on the API socket.
    func revoke(_ token: String, hint: String? = nil) async throws -> HTTPResponse {
        var fields = [("token", token)]
        if let hint { fields.append(("token_type_hint", hint)) }
        return try await http(apiSocket, "POST", "/oauth2/revoke", body: .form(fields))
    }

    /// `POST /oauth2/token` with grant_type=refresh_token on the API socket.
    func refresh(_ refreshToken: String) async throws -> HTTPResponse {
        try await http(
            apiSocket,
            "POST",
            "/oauth2/token",
            body: .form([("grant_type", "refresh_token"), ("refresh_token", refreshToken)])
        )
    }

    /// Runs `tokenctl ARGS --socket ADMIN` against this daemon.
    func tokenctl(_ arguments: [String]) async throws -> CommandResult {
        try await run(
            try Binaries.tokenctl(),
            arguments + ["--socket", adminSocket],
            in: sandbox.path,
            display: "tokenctl " + arguments.map(\.shortened).joined(separator: " ")
        )
    }
}

/// An access token, and a refresh token when one was asked for (RFC 6749 §5.1 body).
struct IssuedTokens: Sendable, Hashable {
    let accessToken: String
    let refreshToken: String?

    init(accessToken: String, refreshToken: String?) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
    }

    init?(_ response: HTTPResponse) {
        guard let access = response.string("access_token") else { return nil }
        accessToken = access
        refreshToken = response.string("refresh_token")
    }
}

/// Starts tokend in a fresh sandbox, runs `body`, and always stops tokend and removes the
/// sandbox, whatever `body` does.
func withTokend<T>(
    _ name: String,
    environment extra: [String: String] = [:],
    _ body: (Tokend) async throws -> T
) async throws -> T {
    let sandbox = try Sandbox(name)
    defer { sandbox.remove() }
    let daemon = try await Tokend.start(sandbox, environment: sandbox.environment(extra))
    do {
        let result = try await body(daemon)
        await daemon.stop()
        return result
    } catch {
        await daemon.stop()
        throw error
    }
}
