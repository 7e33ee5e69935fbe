public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signalled(let signal): "killed by signal \(signal)"
        }
    }

    /// The code a shell reports: the exit code, or 128 + N when signal N ended the process (a
    /// Swift trap is SIGILL, 4: read raw, a crash would pass for exit code 4).
    public var shellCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signalled(let signal): 128 + signal
        }
    }
}

/// Where a child's standard stream is connected.
public enum StandardStream: Sendable {
    /// `/dev/null`.
    case null
    /// A file: read from as stdin; created or truncated as stdout or stderr.
    case file(String)
    /// An open descriptor of the test process (a pipe end, a terminal), duplicated into the
    /// child; the caller closes its own copy.
    case descriptor(Int32)
}

/// A process this test started: its pid, its output in files, and nothing else. Every stop
/// goes to this pid alone — never by name: other work shares the machine.
///
/// Spawned with posix_spawn rather than Foundation's Process: Process creates its
/// termination-watch socketpair without CLOEXEC and closes a child's other descriptors from a
/// list taken before that, so processes spawned concurrently by parallel tests inherit each
/// other's sockets, and a finished process looks alive until an unrelated long-lived one exits.
/// Here the child closes every descriptor above stderr at exec (closefrom), starts with the
/// default signal dispositions and an empty signal mask, and is reaped with waitpid on its pid.
public final class ChildProcess: Sendable {
    public let name: String
    public let pid: Int32
    /// The file stdout goes to, when it goes to a file.
    public let stdoutPath: String?
    /// The file stderr goes to, when it goes to a file.
    public let stderrPath: String?
    private let reaped = Mutex<ExitStatus?>(nil)

    /// Starts `executable` with exactly `environment` (nothing inherited) and its standard
    /// streams connected as given.
    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String],
        stdin: StandardStream = .null,
        stdout: StandardStream,
        stderr: StandardStream,
        name: String? = nil,
        currentDirectory: String? = nil
    ) throws {
        self.name = name ?? URL(fileURLWithPath: executable).lastPathComponent
        if case .file(let path) = stdout { stdoutPath = path } else { stdoutPath = nil }
        if case .file(let path) = stderr { stderrPath = path } else { stderrPath = nil }

        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        var openedFiles: [String: Int32] = [:]
        func descriptor(_ stream: StandardStream, writing: Bool) throws -> Int32 {
            switch stream {
            case .descriptor(let fd):
                return fd
            case .null, .file:
                let path: String
                if case .file(let file) = stream { path = file } else { path = "/dev/null" }
                if let fd = openedFiles[path] { return fd }
                let flags = writing ? (path == "/dev/null" ? O_WRONLY : O_WRONLY | O_CREAT | O_TRUNC) : O_RDONLY
                let fd = open(path, flags | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw HarnessError("cannot open \(path): \(String(cString: strerror(errno)))") }
                opened.append(fd)
                if writing { openedFiles[path] = fd }
                return fd
            }
        }
        let inFD = try descriptor(stdin, writing: false)
        let outFD = try descriptor(stdout, writing: true)
        let errFD = try descriptor(stderr, writing: true)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inFD, 0)
        posix_spawn_file_actions_adddup2(&actions, outFD, 1)
        posix_spawn_file_actions_adddup2(&actions, errFD, 2)
        if let closeFrom = SpawnExtensions.addCloseFrom {
            _ = closeFrom(&actions, 3)
        }
        if let currentDirectory {
            guard let addChdir = SpawnExtensions.addChdir else {
                throw HarnessError("this libc has no posix_spawn_file_actions_addchdir_np")
            }
            _ = currentDirectory.withCString { addChdir(&actions, $0) }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw HarnessError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    /// Starts `executable` with exactly `environment` (nothing inherited), stdin from
    /// /dev/null, stdout and stderr to the given files (created or truncated).
    public convenience init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String],
        stdout stdoutPath: String,
        stderr stderrPath: String,
        name: String? = nil,
        currentDirectory: String? = nil
    ) throws {
        try self.init(
            executable,
            arguments,
            environment: environment,
            stdout: .file(stdoutPath),
            stderr: .file(stderrPath),
            name: name,
            currentDirectory: currentDirectory
        )
    }

    /// The exit status once the process has ended (reaping it), else nil.
    public var exitStatus: ExitStatus? {
        reaped.withLock { cached -> ExitStatus? in
            if let cached { return cached }
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, WNOHANG) } while result < 0 && errno == EINTR
            guard result == pid else { return nil }
            let signal = status & 0x7f
            cached = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
            return cached
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    /// Sends `signal` to this process's pid (and only to it), unless it has been reaped.
    public func send(_ signal: Int32) {
        reaped.withLock { cached in
            // While unreaped, the pid cannot have been reused by another process.
            if cached == nil { _ = kill(pid, signal) }
        }
    }

    /// Waits for the process to end; nil when it is still running after `timeout`.
    public func waitForExit(timeout: Duration) async -> ExitStatus? {
        try? await eventually("\(name) (pid \(pid)) to exit", timeout: timeout, interval: .milliseconds(20)) {
            self.exitStatus
        }
    }

    /// Blocks the calling thread until the process ends, and reaps it. For short-lived tools
    /// whose end a `defer` must wait for; everything else uses `waitForExit(timeout:)`.
    public func waitForExitBlocking() -> ExitStatus {
        reaped.withLock { cached -> ExitStatus in
            if let cached { return cached }
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
            let signal = status & 0x7f
            let ended: ExitStatus = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
            cached = ended
            return ended
        }
    }

    /// SIGTERM, then SIGKILL if it has not ended within `timeout`. Returns how it ended and
    /// whether SIGKILL was needed.
    @discardableResult
    public func stop(timeout: Duration = Timeouts.stop) async -> (status: ExitStatus?, killed: Bool) {
        if let status = exitStatus { return (status, false) }
        send(SIGTERM)
        if let status = await waitForExit(timeout: timeout) { return (status, false) }
        send(SIGKILL)
        return (await waitForExit(timeout: .seconds(10)), true)
    }

    /// Everything the process wrote so far: stdout, then stderr when it went to another file.
    public var output: String { stdoutPath == stderrPath ? stdout : stdout + stderr }

    /// What the process wrote to stdout so far (when it goes to a file).
    public var stdout: String { stdoutPath.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "" }
    /// What the process wrote to stderr so far (when it goes to a file).
    public var stderr: String { stderrPath.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "" }
}

/// glibc's posix_spawn extensions that Swift's Glibc module does not import (they need
/// _GNU_SOURCE): looked up at run time.
enum SpawnExtensions {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+).
    static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: AddCloseFrom.self)
    }
    /// posix_spawn_file_actions_addchdir_np (glibc 2.29+).
    static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map {
        unsafeBitCast($0, to: AddChdir.self)
    }
}

/// The result of a short-lived command.
public struct CommandResult: Sendable, CustomStringConvertible {
    public let command: String
    public let status: ExitStatus
    public let stdout: String
    public let stderr: String

    public var succeeded: Bool { status == .exited(0) }

    /// stdout, then stderr.
    public var output: String { stdout + stderr }

    /// For failure messages; secrets are masked (see `redactingSecrets`).
    public var description: String {
        "\(command) → \(status)\n--- stdout\n\(stdout.redactingSecrets)\n--- stderr\n\(stderr.redactingSecrets)"
    }
}

/// Runs a command to completion (killed after `timeout`), output captured through files in
/// `directory`.
public func run(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String] = minimalEnvironment(),
    in directory: String,
    timeout: Duration = .seconds(60),
    display: String? = nil,
    currentDirectory: String? = nil
) async throws -> CommandResult {
    let stem = "\(directory)/cmd-\(UUID().uuidString.prefix(8))"
    let child = try ChildProcess(
        executable,
        arguments,
        environment: environment,
        stdout: stem + ".out",
        stderr: stem + ".err",
        currentDirectory: currentDirectory
    )
    defer {
        unlink(stem + ".out")
        unlink(stem + ".err")
    }
    let shown =
        display
        ?? ([URL(fileURLWithPath: executable).lastPathComponent] + arguments.map(\.shortened)).joined(separator: " ")
    guard let status = await child.waitForExit(timeout: timeout) else {
        await child.stop(timeout: .seconds(2))
        throw HarnessError("\(shown) did not finish within \(timeout)")
    }
    return CommandResult(command: shown, status: status, stdout: child.stdout, stderr: child.stderr)
}

/// PATH and little else: tests never pass the developer's TOKEND_*, NOTIFY_SOCKET or
/// LISTEN_FDS on to the binaries by accident.
public func minimalEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var environment = [
        "PATH": ProcessInfo.processInfo.environment["PATH"]
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    ]
    if let home = ProcessInfo.processInfo.environment["HOME"] { environment["HOME"] = home }
    for (name, value) in extra { environment[name] = value }
    return environment
}

extension String {
    /// Long arguments (tokens) shortened for messages.
    public var shortened: String { count > 40 ? String(prefix(12)) + "…" : self }

    /// The text with anything that looks like a JWT or a long base64url run (refresh tokens,
    /// signatures, key material) masked, so a failure message never shows a secret.
    public var redactingSecrets: String {
        var text = self
        for pattern in [#"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"#, #"[A-Za-z0-9_+/=-]{40,}"#] {
            text = text.replacingOccurrences(of: pattern, with: "[redacted]", options: .regularExpression)
        }
        return text
    }

    /// The last `count` lines.
    public func lastLines(_ count: Int) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }
}

/// Runs blocking work (socket I/O, waiting on a process) on a thread of its own, so the
/// cooperative pool — two threads on a two-core machine, shared by every test running in
/// parallel — never blocks.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// Polls `probe` every `interval` until it returns a value, or throws after `timeout` with
/// `what` in the message. The probe's last error (if any) is part of the message.
public func eventually<T: Sendable>(
    _ what: String,
    timeout: Duration = .seconds(15),
    interval: Duration = .milliseconds(50),
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
            throw HarnessError(
                "timed out after \(timeout) waiting for \(what)" + (lastError.map { " (last error: \($0))" } ?? "")
            )
        }
        try await Task.sleep(for: interval)
    }
}

/// Common timeouts: generous for a loaded two-core machine running tests in parallel, short
/// enough that a hang fails fast.
public enum Timeouts {
    /// From spawning tokend to its sockets answering.
    public static let start: Duration = .seconds(30)
    /// From SIGTERM to exit.
    public static let stop: Duration = .seconds(20)
    /// One HTTP exchange.
    public static let request: Double = 15
}

/// The built executables the integration tests drive: `tokend`, `tokenctl`, `jwt-inspect`.
///
/// Found next to the test bundle (`swift test` runs from the products directory) or in
/// `<package>/.build/debug`, derived from this file's path.
public enum Binaries {
    /// `<package>`: this file is `<package>/Tests/TokenTestSupport/Processes.swift`.
    public static let packageDirectory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The project's unit files.
    public static var systemdDirectory: String { packageDirectory.appendingPathComponent("systemd").path }

    private static let productDirectories: [URL] = {
        var candidates: [URL] = []
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
        }
        #endif
        candidates.append(Bundle.main.bundleURL)
        candidates.append(packageDirectory.appendingPathComponent(".build/debug"))
        return candidates
    }()

    /// The absolute path of product `name`, or an error that says to build it first.
    public static func path(_ name: String) throws -> String {
        for directory in productDirectories {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw HarnessError(
            "\(name) not found next to the test bundle nor in .build/debug: run swift build first "
                + "(swift build --product \(name), or swift build --build-tests)"
        )
    }

    public static func tokend() throws -> String { try path("tokend") }

    /// A system command's path: the first executable `command` on PATH or in the usual
    /// directories, or nil.
    public static func which(_ command: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        for directory in path + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
            let candidate = "\(directory)/\(command)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
    public static func tokenctl() throws -> String { try path("tokenctl") }
}

/// A failure of the harness itself (a missing binary, a timeout), with a message for the reader.
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
