import Foundation
import JOSE
import Synchronization
public import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One test's private world: a temporary directory (0700) holding the store, the key directory,
/// and each daemon's sockets and logs. Every daemon started in a sandbox uses its one store and
/// key directory, so several daemons can run over one store, and a restarted daemon keeps its
/// state.
public final class Sandbox: Sendable {
    public let directory: TemporaryDirectory
    private let runs = Mutex(0)

    public init(_ name: String = "it") throws {
        directory = try TemporaryDirectory(prefix: "tokend-\(name)")
        guard mkdir(keysDirectory, 0o700) == 0 else {
            throw HarnessError("mkdir \(keysDirectory): \(String(cString: strerror(errno)))")
        }
    }

    public var path: String { directory.path }
    public func file(_ name: String) -> String { directory.file(name) }

    /// The SQLite store every daemon of the sandbox opens.
    public var storePath: String { file("tokend.db") }
    public var keysDirectory: String { file("keys") }

    /// The API socket of the daemon called `daemon` (`api.sock` for the default one).
    public func apiSocket(of daemon: String) -> String { file(socketPrefix(daemon) + "api.sock") }
    /// The admin socket of the daemon called `daemon` (`admin.sock` for the default one).
    public func adminSocket(of daemon: String) -> String { file(socketPrefix(daemon) + "admin.sock") }
    /// The default daemon's API socket.
    public var apiSocket: String { apiSocket(of: Tokend.defaultName) }
    /// The default daemon's admin socket.
    public var adminSocket: String { adminSocket(of: Tokend.defaultName) }

    private func socketPrefix(_ daemon: String) -> String { daemon == Tokend.defaultName ? "" : "\(daemon)-" }

    /// TOKEND_* for the daemon called `daemon`: its own sockets, the sandbox's store and keys,
    /// then `extra`.
    public func environment(_ extra: [String: String] = [:], daemon: String = Tokend.defaultName) -> [String: String] {
        minimalEnvironment(
            [
                "TOKEND_SOCKET": apiSocket(of: daemon),
                "TOKEND_ADMIN_SOCKET": adminSocket(of: daemon),
                "TOKEND_STORE": "sqlite:\(storePath)",
                "TOKEND_KEYS_DIR": keysDirectory,
            ].merging(extra) { $1 }
        )
    }

    /// A fresh log file name for the next run of something.
    public func nextLogFile(_ stem: String) -> String {
        let run = runs.withLock { value -> Int in
            value += 1
            return value
        }
        return file("\(stem)-\(run).log")
    }

    /// The private key files (`*.pem`) in the key directory.
    public var privateKeyFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: keysDirectory)) ?? []).filter { $0.hasSuffix(".pem") }
            .sorted()
            .map { "\(keysDirectory)/\($0)" }
    }

    public func remove() { directory.remove() }
}

/// A running tokend: the real binary, started in a sandbox with sockets of its own, its output
/// in a log file, optionally with a NOTIFY_SOCKET listener of its own. Stopped by pid only.
public final class Tokend: Sendable {
    /// The name of a sandbox's default daemon.
    public static let defaultName = "tokend"

    /// Limits high enough that many sign-ins from one uid are not refused; a test about
    /// limits sets its own.
    public static let relaxedLimits = [
        "TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT": "100000", "TOKEND_SIGNIN_RATE_LIMIT_IP": "100000",
        "USER_SIGNUP_RATE_LIMIT_EMAIL": "100000", "USER_SIGNUP_RATE_LIMIT_IP": "100000",
    ]

    public let sandbox: Sandbox
    /// Tells this daemon from the others of its sandbox (in socket and log file names).
    public let name: String
    public let child: ChildProcess
    public let apiSocket: String
    public let adminSocket: String
    /// The listener on this daemon's NOTIFY_SOCKET, when it was started with one.
    public let notify: NotifyListener?

    public var pid: Int32 { child.pid }
    public var keysDirectory: String { sandbox.keysDirectory }
    /// Everything tokend wrote (its logs) so far.
    public var log: String { child.output }

    private init(
        sandbox: Sandbox,
        name: String,
        child: ChildProcess,
        environment: [String: String],
        notify: NotifyListener?
    ) {
        self.sandbox = sandbox
        self.name = name
        self.child = child
        apiSocket = environment["TOKEND_SOCKET"] ?? sandbox.apiSocket(of: name)
        adminSocket = environment["TOKEND_ADMIN_SOCKET"] ?? sandbox.adminSocket(of: name)
        self.notify = notify
    }

    /// Starts tokend `name` in `sandbox` with the sandbox's environment for it plus `extra`,
    /// and `arguments`. With `notify`, NOTIFY_SOCKET points at a listener of its own
    /// (`notify`). With `launcher`, tokend is started through that command, which must exec it
    /// in its own place (like `ip netns exec NAME`: the pid stays tokend's). Unless
    /// `waitUntilServing` is false, returns once both sockets answer.
    public static func start(
        _ sandbox: Sandbox,
        name: String = defaultName,
        environment extra: [String: String] = [:],
        arguments: [String] = [],
        launcher: [String] = [],
        notify: Bool = false,
        waitUntilServing: Bool = true
    ) async throws -> Tokend {
        var extra = extra
        let listener = notify ? try NotifyListener(address: sandbox.file("\(name)-notify.sock")) : nil
        if let listener { extra["NOTIFY_SOCKET"] = listener.address }
        let environment = sandbox.environment(extra, daemon: name)
        let daemon: Tokend
        do {
            let log = sandbox.nextLogFile(name)
            let tokend = try Binaries.tokend()
            let child = try ChildProcess(
                launcher.first ?? tokend,
                launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [tokend] + arguments,
                environment: environment,
                stdout: log,
                stderr: log,
                name: name
            )
            daemon = Tokend(sandbox: sandbox, name: name, child: child, environment: environment, notify: listener)
        } catch {
            await listener?.close()
            throw error
        }
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
    public func waitUntilServing(timeout: Duration = Timeouts.start) async throws {
        _ = try await eventually("\(name) to serve on \(apiSocket) and \(adminSocket)", timeout: timeout) {
            () async throws -> Bool? in
            if let status = self.child.exitStatus {
                throw HarnessError(
                    "\(self.name) exited (\(status)) before serving; its log:\n\(self.log.lastLines(30).redactingSecrets)"
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

    /// SIGTERM by pid and wait; SIGKILL after the timeout (recorded as an issue). Then closes
    /// the NOTIFY_SOCKET listener (its messages stay readable).
    @discardableResult
    public func stop(
        timeout: Duration = Timeouts.stop,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> ExitStatus? {
        let (status, killed) = await child.stop(timeout: timeout)
        if killed {
            Issue.record(
                "\(name) (pid \(pid)) ignored SIGTERM for \(timeout); killed it",
                sourceLocation: sourceLocation
            )
        }
        await notify?.close()
        return status
    }

    /// kill -9 by pid, and wait until it is gone.
    public func kill9() async throws {
        child.send(SIGKILL)
        guard await child.waitForExit(timeout: .seconds(10)) != nil else {
            throw HarnessError("\(name) survived SIGKILL")
        }
    }

    /// Sends `signal` to this daemon's pid.
    public func send(_ signal: Int32) { child.send(signal) }

    // MARK: The API, as a client sees it

    /// A request on the API socket; `json` is sent as `application/json`.
    public func api(
        _ method: String,
        _ target: String,
        json: String? = nil,
        headers: [(String, String)] = []
    ) async throws -> Reply {
        try await http(apiSocket, method, target, headers: headers, body: json.map { .json($0) })
    }

    /// A request on the API socket with `body`.
    public func api(
        _ method: String,
        _ target: String,
        body: RequestBody?,
        headers: [(String, String)] = []
    ) async throws -> Reply {
        try await http(apiSocket, method, target, headers: headers, body: body)
    }

    /// A request on the admin socket.
    public func admin(_ method: String, _ target: String, json: String? = nil) async throws -> Reply {
        try await http(adminSocket, method, target, body: json.map { .json($0) })
    }

    /// `POST /admin/tokens` on the admin socket.
    public func issue(
        sub: String,
        scope: String? = nil,
        refresh: Bool = false,
        policy: String? = nil
    ) async throws -> TokenResponse {
        var members: [String: JSONValue] = ["sub": .string(sub), "refresh": .bool(refresh)]
        if let scope { members["scope"] = .string(scope) }
        if let policy { members["policy"] = .string(policy) }
        let reply = try await admin("POST", "/admin/tokens", json: jsonText(members))
        guard reply.status == 200, let tokens = TokenResponse(reply) else {
            throw HarnessError("POST /admin/tokens answered \(reply.status): \(reply.text.redactingSecrets)")
        }
        return tokens
    }

    /// `POST /oauth2/introspect` (form) on the API socket.
    public func introspect(_ token: String) async throws -> Reply {
        try await api("POST", "/oauth2/introspect", body: .form([("token", token)]))
    }

    /// Whether the token introspects active; throws on anything but 200.
    public func isActive(_ token: String) async throws -> Bool {
        let reply = try await introspect(token)
        guard reply.status == 200, let active = reply.json?["active"]?.boolValue else {
            throw HarnessError("introspection answered \(reply.status): \(reply.text.redactingSecrets)")
        }
        return active
    }

    /// `POST /oauth2/revoke` (form) on the API socket.
    public func revoke(_ token: String, hint: String? = nil) async throws -> Reply {
        var fields = [("token", token)]
        if let hint { fields.append(("token_type_hint", hint)) }
        return try await api("POST", "/oauth2/revoke", body: .form(fields))
    }

    /// `POST /oauth2/token` with grant_type=refresh_token on the API socket.
    public func refresh(_ refreshToken: String) async throws -> Reply {
        try await api(
            "POST",
            "/oauth2/token",
            body: .form([("grant_type", "refresh_token"), ("refresh_token", refreshToken)])
        )
    }

    /// Runs `tokenctl ARGS --socket ADMIN` against this daemon.
    public func tokenctl(_ arguments: [String]) async throws -> CommandResult {
        try await run(
            try Binaries.tokenctl(),
            arguments + ["--socket", adminSocket],
            in: sandbox.path,
            display: "tokenctl " + arguments.map(\.shortened).joined(separator: " ")
        )
    }
}

/// An access token, and a refresh token when one was asked for (RFC 6749 §5.1 body).
public struct TokenResponse: Sendable, Hashable {
    public let accessToken: String
    public let refreshToken: String?

    public init(accessToken: String, refreshToken: String?) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
    }

    public init?(_ reply: Reply) {
        guard let access = reply.string("access_token") else { return nil }
        accessToken = access
        refreshToken = reply.string("refresh_token")
    }
}

/// Starts tokend in a fresh sandbox with `environment` added, runs `body`, and always stops
/// tokend (by pid) and removes the sandbox, whatever `body` does.
public func withTokend<T>(
    _ name: String,
    environment extra: [String: String] = [:],
    _ body: (Tokend) async throws -> T
) async throws -> T {
    let sandbox = try Sandbox(name)
    defer { sandbox.remove() }
    let daemon = try await Tokend.start(sandbox, environment: extra)
    do {
        let result = try await body(daemon)
        await daemon.stop()
        return result
    } catch {
        await daemon.stop()
        throw error
    }
}

extension Tokend {
    /// Runs tokend in `sandbox` when it must refuse to start (a bad setting, a loose directory,
    /// a key that does not match): records an issue when it started (exit 0), crashed (a
    /// signal) or left `boundSocket` (the API socket by default) behind, and returns the result
    /// for the caller's checks of what it said.
    public static func refusedStart(
        _ sandbox: Sandbox,
        environment: [String: String] = [:],
        arguments: [String] = [],
        boundSocket: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> CommandResult {
        let result = try await run(
            try Binaries.tokend(),
            arguments,
            environment: sandbox.environment(environment),
            in: sandbox.path,
            timeout: .seconds(30)
        )
        switch result.status {
        case .exited(0):
            Issue.record("tokend started where it must refuse: \(result)", sourceLocation: sourceLocation)
        case .signalled:
            Issue.record("tokend crashed instead of refusing: \(result)", sourceLocation: sourceLocation)
        default:
            break
        }
        let socket = boundSocket ?? sandbox.apiSocket
        if FileManager.default.fileExists(atPath: socket) {
            Issue.record("a refused start left \(socket) behind", sourceLocation: sourceLocation)
        }
        return result
    }
}
