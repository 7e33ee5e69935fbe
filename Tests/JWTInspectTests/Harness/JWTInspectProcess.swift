import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What one run of the real `jwt-inspect` binary showed: its exit code and both streams.
struct RunResult: CustomStringConvertible {
    let arguments: [String]
    let exitCode: Int32
    let stdout: String
    let stderr: String

    /// Everything the user saw.
    var output: String { stdout + stderr }

    /// For failure messages: the command's options, never file contents. Tokens and paths
    /// are shortened so a message stays readable.
    var description: String {
        let shown = arguments.map { $0.count > 48 ? String($0.prefix(24)) + "…" : $0 }
        return
            "jwt-inspect \(shown.joined(separator: " ")) → exit \(exitCode)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)"
    }
}

/// How standard input is connected.
enum StandardInput {
    /// `/dev/null`: the binary sees an empty, non-terminal stdin.
    case null
    /// A pipe carrying these bytes, then closed (`echo … | jwt-inspect`).
    case pipe(String)
    /// A pseudo-terminal, as when a person runs the command without piping anything.
    case terminal
}

/// A run that takes longer than this is a hang (a real run takes milliseconds).
let runTimeout: Duration = .seconds(60)

/// Runs the real `jwt-inspect` binary. `environment` entries are added to (or, with nil,
/// removed from) the test process's environment; NO_COLOR is removed unless given, so a
/// developer's setting cannot change what a test sees.
func jwtInspect(
    _ arguments: [String],
    stdin: StandardInput = .null,
    environment: [String: String?] = [:]
) async throws -> RunResult {
    try await runJWTInspect(arguments, stdin: stdin, stdoutOnTerminal: false, environment: environment)
}

/// Runs the binary with its standard output on a pseudo-terminal, as in an interactive
/// shell; stderr goes to a file. Returns the terminal text (with the terminal's CRLFs).
func jwtInspectOnTerminal(_ arguments: [String], environment: [String: String?] = [:]) async throws -> RunResult {
    try await runJWTInspect(arguments, stdin: .null, stdoutOnTerminal: true, environment: environment)
}

struct ProcessTimedOut: Error, CustomStringConvertible {
    let arguments: [String]
    var description: String { "jwt-inspect did not exit within \(runTimeout): \(arguments.first ?? "")…" }
}

/// Starts the binary as a `ChildProcess` (stdout and stderr to files unless stdout is a
/// terminal), feeds stdin, and waits.
private func runJWTInspect(
    _ arguments: [String],
    stdin: StandardInput,
    stdoutOnTerminal: Bool,
    environment changes: [String: String?]
) async throws -> RunResult {
    ignoreSIGPIPE
    let binary = try Binaries.path("jwt-inspect")
    var environment = ProcessInfo.processInfo.environment
    environment["NO_COLOR"] = nil
    for (name, value) in changes { environment[name] = value }

    let directory = try TemporaryDirectory(prefix: "jwt-inspect-run")
    var input = StandardStream.null
    var pipeWriter: Int32?
    var terminal: PseudoTerminal?
    defer { terminal?.close() }
    switch stdin {
    case .null:
        break
    case .pipe:
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw HarnessError("pipe: \(String(cString: strerror(errno)))") }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        input = .descriptor(ends[0])
        pipeWriter = ends[1]
    case .terminal:
        terminal = try PseudoTerminal()
        input = .descriptor(terminal!.secondary)
    }
    var output = StandardStream.file(directory.file("stdout"))
    if stdoutOnTerminal {
        terminal = try PseudoTerminal()
        output = .descriptor(terminal!.secondary)
    }
    let child: ChildProcess
    do {
        child = try ChildProcess(
            binary,
            arguments,
            environment: environment,
            stdin: input,
            stdout: output,
            stderr: .file(directory.file("stderr")),
            name: "jwt-inspect"
        )
    } catch {
        if case .descriptor(let reader) = input, pipeWriter != nil { close(reader) }
        if let pipeWriter { close(pipeWriter) }
        throw error
    }
    // The child has its copies; the parent keeps only the pipe's writing end and the
    // terminal's primary side.
    if case .descriptor(let reader) = input, pipeWriter != nil { close(reader) }
    terminal?.closeSecondary()

    if case .pipe(let text) = stdin, let pipeWriter {
        // The binary may exit without reading (a usage error); EPIPE is then expected.
        try await onThread {
            _ = writeAll(pipeWriter, Array(text.utf8))
            close(pipeWriter)
        }
    }
    var terminalText: String?
    if stdoutOnTerminal, let primary = terminal?.primary {
        terminalText = try await onThread { PseudoTerminal.readAll(primary, timeout: runTimeout) }
    }
    guard let status = await child.waitForExit(timeout: runTimeout) else {
        await child.stop(timeout: .seconds(5))
        throw ProcessTimedOut(arguments: arguments)
    }
    return RunResult(
        arguments: arguments,
        exitCode: status.shellCode,
        stdout: terminalText ?? child.stdout,
        stderr: child.stderr
    )
}

/// Writing to a pipe whose reader has exited must be an error, not a signal that kills the
/// test runner.
private let ignoreSIGPIPE: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// A pseudo-terminal pair, so the binary sees a terminal on stdin or stdout.
final class PseudoTerminal {
    let primary: Int32
    private(set) var secondary: Int32

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init() throws {
        // posix_openpt and friends are not in the Glibc module (they need _XOPEN_SOURCE).
        guard let api = PTYFunctions.shared else { throw Failure(description: "libc has no posix_openpt") }
        let fd = api.openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "posix_openpt: \(String(cString: strerror(errno)))") }
        var name = [CChar](repeating: 0, count: 128)
        guard api.grant(fd) == 0, api.unlock(fd) == 0, api.name(fd, &name, name.count) == 0 else {
            Glibc.close(fd)
            throw Failure(description: "cannot set up the pseudo-terminal: \(String(cString: strerror(errno)))")
        }
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let other = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard other >= 0 else {
            Glibc.close(fd)
            throw Failure(description: "open \(path): \(String(cString: strerror(errno)))")
        }
        primary = fd
        secondary = other
    }

    /// The parent's copy of the terminal side; the child keeps its own.
    func closeSecondary() {
        if secondary >= 0 {
            Glibc.close(secondary)
            secondary = -1
        }
    }

    /// Everything written to the terminal side until every writer has closed it (Linux
    /// reports that as EIO on the primary side `primary`), or until `timeout` passes.
    static func readAll(_ primary: Int32, timeout: Duration) -> String {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + timeout
        while true {
            var request = pollfd(fd: primary, events: Int16(POLLIN), revents: 0)
            let left = (deadline - ContinuousClock.now).components
            let remaining = Int32(max(0, left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000))
            let ready = poll(&request, 1, remaining)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { break }
            let n = buffer.withUnsafeMutableBytes { read(primary, $0.baseAddress, $0.count) }
            if n > 0 {
                out += buffer[0..<n]
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    func close() {
        closeSecondary()
        Glibc.close(primary)
    }
}

/// libc's pseudo-terminal calls, looked up at run time.
private struct PTYFunctions: Sendable {
    let openpt: @convention(c) (Int32) -> Int32
    let grant: @convention(c) (Int32) -> Int32
    let unlock: @convention(c) (Int32) -> Int32
    let name: @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32

    static let shared: PTYFunctions? = {
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(nil, name).map { unsafeBitCast($0, to: type) }
        }
        guard let openpt = symbol("posix_openpt", as: (@convention(c) (Int32) -> Int32).self),
            let grant = symbol("grantpt", as: (@convention(c) (Int32) -> Int32).self),
            let unlock = symbol("unlockpt", as: (@convention(c) (Int32) -> Int32).self),
            let name = symbol(
                "ptsname_r",
                as: (@convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32).self
            )
        else { return nil }
        return PTYFunctions(openpt: openpt, grant: grant, unlock: unlock, name: name)
    }()
}
