import Foundation
import JOSE
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A failure of the harness itself (a missing binary, a timeout), with a message for the reader.
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The built executables: `tokend` and `jwt-inspect` in `<package>/.build/debug` (or next to the
/// test bundle).
enum Binaries {
    /// `<package>`: this file is `<package>/Tests/AccountAPITests/Support/Harness.swift`.
    static let packageDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ name: String) throws -> String {
        for directory in [Bundle.main.bundleURL, packageDirectory.appendingPathComponent(".build/debug")] {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw HarnessError("\(name) not found in .build/debug: run swift build --build-tests first")
    }
}

/// How a process ended.
enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signalled(let signal): "killed by signal \(signal)"
        }
    }
}

/// A process this test started. Every signal goes to its pid alone, never by name.
final class ChildProcess: Sendable {
    let pid: Int32
    let outputPath: String
    private let process: Process
    private let reaped = Mutex<ExitStatus?>(nil)

    /// Starts `executable` with exactly `environment`, stdin from /dev/null, stdout and stderr
    /// into `output` (created or truncated).
    init(_ executable: String, _ arguments: [String], environment: [String: String], output: String) throws {
        outputPath = output
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HarnessError("cannot create \(output): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        pid = process.processIdentifier
    }

    var exitStatus: ExitStatus? {
        if let status = reaped.withLock({ $0 }) { return status }
        guard !process.isRunning else { return nil }
        let status: ExitStatus =
            process.terminationReason == .exit ? .exited(process.terminationStatus) : .signalled(process.terminationStatus)
        reaped.withLock { $0 = status }
        return status
    }

    func send(_ signal: Int32) {
        guard exitStatus == nil else { return }
        _ = kill(pid, signal)
    }

    func waitForExit(timeout: Duration) async -> ExitStatus? {
        try? await eventually("pid \(pid) to exit", timeout: timeout, interval: .milliseconds(20)) { self.exitStatus }
    }

    /// SIGTERM, then SIGKILL if it has not ended within `timeout`.
    func stop(timeout: Duration) async -> (status: ExitStatus?, killed: Bool) {
        if let status = exitStatus { return (status, false) }
        send(SIGTERM)
        if let status = await waitForExit(timeout: timeout) { return (status, false) }
        send(SIGKILL)
        return (await waitForExit(timeout: .seconds(10)), true)
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
}

/// Runs blocking work (socket I/O, waiting on a process) on a thread of its own, so the
/// cooperative pool (two threads here, shared by every test running in parallel) never blocks.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// Polls `probe` until it returns a value, or throws after `timeout`.
func eventually<T: Sendable>(
    _ what: String, timeout: Duration = .seconds(15), interval: Duration = .milliseconds(50),
    _ probe: @Sendable () async throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var lastError: (any Error)?
    while true {
        do {
            if let value = try await probe() { return value }
            lastError = nil
        } catch {
            lastError = error
        }
        if clock.now >= deadline {
            throw HarnessError("timed out after \(timeout) waiting for \(what)" + (lastError.map { " (last error: \($0))" } ?? ""))
        }
        try await Task.sleep(for: interval)
    }
}

/// The result of a short command.
struct CommandResult: Sendable {
    let status: ExitStatus
    let output: String
}

/// Runs a command to completion (killed after `timeout`), stdout and stderr together.
func run(_ executable: String, _ arguments: [String], in directory: String, timeout: Duration = .seconds(60)) async throws
    -> CommandResult
{
    let file = "\(directory)/cmd-\(UUID().uuidString.prefix(8)).out"
    defer { unlink(file) }
    let child = try ChildProcess(executable, arguments, environment: minimalEnvironment(), output: file)
    guard let status = await child.waitForExit(timeout: timeout) else {
        _ = await child.stop(timeout: .seconds(2))
        throw HarnessError("\(URL(fileURLWithPath: executable).lastPathComponent) did not finish within \(timeout)")
    }
    return CommandResult(status: status, output: child.output)
}

/// PATH and little else: the developer's TOKEND_* never reach the binaries by accident.
func minimalEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var environment = [
        "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    ]
    if let home = ProcessInfo.processInfo.environment["HOME"] { environment["HOME"] = home }
    return environment.merging(extra) { $1 }
}

extension String {
    /// The text with anything that looks like a JWT or a long base64url run (refresh tokens,
    /// signatures) masked, so a failure message never shows a secret.
    var redactingSecrets: String {
        var text = self
        for pattern in [#"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"#, #"[A-Za-z0-9_+/=-]{40,}"#] {
            text = text.replacingOccurrences(of: pattern, with: "[redacted]", options: .regularExpression)
        }
        return text
    }

    func lastLines(_ count: Int) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }
}

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
        guard mkdir(directory.file("keys"), 0o700) == 0 else { throw HarnessError("mkdir keys: \(String(cString: strerror(errno)))") }
        let environment = minimalEnvironment(
            [
                "TOKEND_SOCKET": directory.file("api.sock"), "TOKEND_ADMIN_SOCKET": directory.file("admin.sock"),
                "TOKEND_STORE": "sqlite:\(directory.file("tokend.db"))", "TOKEND_KEYS_DIR": directory.file("keys"),
            ].merging(relaxedLimits) { $1 }.merging(extra) { $1 })
        let child = try ChildProcess(try Binaries.path("tokend"), [], environment: environment, output: directory.file("tokend.log"))
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
        _ = try await eventually("tokend to serve on \(apiSocket)", timeout: .seconds(30)) { () async throws -> Bool? in
            if let status = self.child.exitStatus {
                throw HarnessError("tokend exited (\(status)) before serving; its log:\n\(self.log.lastLines(30).redactingSecrets)")
            }
            guard FileManager.default.fileExists(atPath: self.apiSocket), FileManager.default.fileExists(atPath: self.adminSocket)
            else { return nil }
            let health = try await http(self.apiSocket, "GET", "/healthz", timeout: 5)
            let admin = try await http(self.adminSocket, "GET", "/admin/status", timeout: 5)
            return health.status == 200 && admin.status == 200 ? true : nil
        }
    }

    /// SIGTERM by pid and wait (SIGKILL after 20 s, recorded as an issue).
    func stop(sourceLocation: SourceLocation = #_sourceLocation) async {
        let (_, killed) = await child.stop(timeout: .seconds(20))
        if killed { Issue.record("tokend (pid \(child.pid)) ignored SIGTERM for 20 s; killed it", sourceLocation: sourceLocation) }
    }

    // MARK: Talking to it

    /// A request on the API socket; `json` is sent as `application/json`.
    func api(_ method: String, _ target: String, json: String? = nil, headers: [(String, String)] = []) async throws -> Reply {
        try await http(apiSocket, method, target, headers: headers, body: json.map { .json($0) })
    }

    func api(_ method: String, _ target: String, body: RequestBody?, headers: [(String, String)] = []) async throws -> Reply {
        try await http(apiSocket, method, target, headers: headers, body: body)
    }

    /// A request on the admin socket.
    func admin(_ method: String, _ target: String, json: String? = nil) async throws -> Reply {
        try await http(adminSocket, method, target, body: json.map { .json($0) })
    }

    /// `POST /admin/tokens` → the access token.
    func adminToken(sub: String, scope: String) async throws -> String {
        let reply = try await admin("POST", "/admin/tokens", json: jsonText(["sub": .string(sub), "scope": .string(scope)]))
        guard reply.status == 200, let token = reply.json?["access_token"]?.stringValue else {
            throw HarnessError("POST /admin/tokens answered \(reply.status): \(reply.text.redactingSecrets)")
        }
        return token
    }

    /// `POST /admin/users` → the created user (admin shape).
    @discardableResult
    func createUser(_ username: String, _ email: String, _ password: String, extra: [String: JSONValue] = [:]) async throws
        -> AdminUser
    {
        var members: [String: JSONValue] = ["username": .string(username), "email": .string(email), "password": .string(password)]
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
    func inspect(_ token: String) async throws -> (exitCode: ExitStatus, report: JSONValue) {
        let result = try await run(
            try Binaries.path("jwt-inspect"), ["--policy", "auto", "--json", "--keys-dir", keysDirectory, "--", token],
            in: directory.path)
        guard let report = try? JSONParser().parse(result.output) else {
            throw HarnessError("jwt-inspect printed no JSON (\(result.status)): \(result.output.redactingSecrets.prefix(400))")
        }
        return (result.status, report)
    }
}

/// Starts a daemon, runs `body`, and always stops it (by pid) and removes its directory.
func withDaemon<T>(_ name: String, environment: [String: String] = [:], _ body: (Daemon) async throws -> T) async throws -> T {
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
