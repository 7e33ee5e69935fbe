import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
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

enum JWTInspectBinary {
    /// The built jwt-inspect, found as every test target finds the products
    /// (`TokenTestSupport.Binaries`: next to the test bundle, else `<package>/.build/debug`).
    static let url: URL? = (try? Binaries.path("jwt-inspect")).map { URL(fileURLWithPath: $0) }
}

/// A run that takes longer than this is a hang (a real run takes milliseconds).
let runTimeout: TimeInterval = 60

/// Runs the real `jwt-inspect` binary. `environment` entries are added to (or, with nil,
/// removed from) the test process's environment; NO_COLOR is removed unless given, so a
/// developer's setting cannot change what a test sees.
func jwtInspect(
    _ arguments: [String],
    stdin: StandardInput = .null,
    environment: [String: String?] = [:],
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> RunResult {
    guard let binary = JWTInspectBinary.url else {
        Issue.record(
            "jwt-inspect binary not found next to the test bundle nor in .build/debug: run swift build first",
            sourceLocation: sourceLocation
        )
        throw BinaryMissing()
    }
    var env = ProcessInfo.processInfo.environment
    env["NO_COLOR"] = nil
    for (name, value) in environment { env[name] = value }
    let finalEnvironment = env
    return try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(
                with: Result {
                    try runBlocking(binary, arguments, stdin: stdin, environment: finalEnvironment)
                }
            )
        }
    }
}

struct BinaryMissing: Error {}

struct ProcessTimedOut: Error, CustomStringConvertible {
    let arguments: [String]
    var description: String { "jwt-inspect did not exit within \(Int(runTimeout)) s: \(arguments.first ?? "")…" }
}

/// Starts the process, feeds stdin, drains stdout and stderr concurrently, and waits.
private func runBlocking(
    _ binary: URL,
    _ arguments: [String],
    stdin: StandardInput,
    environment: [String: String]
) throws -> RunResult {
    ignoreSIGPIPE
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.environment = environment

    let outPipe = Pipe()
    let errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe

    var inPipe: Pipe?
    var terminal: PseudoTerminal?
    switch stdin {
    case .null:
        process.standardInput = FileHandle.nullDevice
    case .pipe:
        let pipe = Pipe()
        inPipe = pipe
        process.standardInput = pipe
    case .terminal:
        let pty = try PseudoTerminal()
        terminal = pty
        process.standardInput = FileHandle(fileDescriptor: pty.secondary, closeOnDealloc: false)
    }

    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }
    do { try process.run() } catch {
        terminal?.close()
        throw error
    }
    terminal?.closeSecondary()

    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data()
    nonisolated(unsafe) var errData = Data()
    DispatchQueue.global().async(group: group) { outData = outPipe.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { errData = errPipe.fileHandleForReading.readDataToEndOfFile() }

    if case .pipe(let text) = stdin, let inPipe {
        // The binary may exit without reading (a usage error); EPIPE is then expected.
        try? inPipe.fileHandleForWriting.write(contentsOf: Data(text.utf8))
        try? inPipe.fileHandleForWriting.close()
    }

    if exited.wait(timeout: .now() + runTimeout) == .timedOut {
        process.terminate()
        _ = exited.wait(timeout: .now() + 5)
        group.wait()
        terminal?.close()
        throw ProcessTimedOut(arguments: arguments)
    }
    group.wait()
    terminal?.close()
    return RunResult(
        arguments: arguments,
        exitCode: exitStatus(process),
        stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self)
    )
}

/// The exit code, or 128 + N when signal N killed the process, as a shell reports it. A
/// Swift trap is SIGILL (4) on Linux: read raw, a crash would pass for exit code 4.
private func exitStatus(_ process: Process) -> Int32 {
    process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
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
    /// reports that as EIO on the primary side), or until `timeout` passes.
    func readAll(timeout: TimeInterval) -> String {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            var request = pollfd(fd: primary, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
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

/// Runs the binary with its standard output on a pseudo-terminal, as in an interactive
/// shell; stderr goes to a pipe. Returns the terminal text (with the terminal's CRLFs).
func jwtInspectOnTerminal(_ arguments: [String], environment: [String: String?] = [:]) async throws -> RunResult {
    guard let binary = JWTInspectBinary.url else {
        Issue.record("jwt-inspect binary not found next to the test bundle nor in .build/debug: run swift build first")
        throw BinaryMissing()
    }
    var env = ProcessInfo.processInfo.environment
    env["NO_COLOR"] = nil
    for (name, value) in environment { env[name] = value }
    let finalEnvironment = env
    return try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(
                with: Result {
                    let pty = try PseudoTerminal()
                    defer { pty.close() }
                    let process = Process()
                    process.executableURL = binary
                    process.arguments = arguments
                    process.environment = finalEnvironment
                    process.standardInput = FileHandle.nullDevice
                    process.standardOutput = FileHandle(fileDescriptor: pty.secondary, closeOnDealloc: false)
                    let errPipe = Pipe()
                    process.standardError = errPipe
                    let exited = DispatchSemaphore(value: 0)
                    process.terminationHandler = { _ in exited.signal() }
                    try process.run()
                    pty.closeSecondary()
                    let text = pty.readAll(timeout: runTimeout)
                    let errors = errPipe.fileHandleForReading.readDataToEndOfFile()
                    if exited.wait(timeout: .now() + runTimeout) == .timedOut {
                        process.terminate()
                        throw ProcessTimedOut(arguments: arguments)
                    }
                    return RunResult(
                        arguments: arguments,
                        exitCode: exitStatus(process),
                        stdout: text,
                        stderr: String(decoding: errors, as: UTF8.self)
                    )
                }
            )
        }
    }
}
