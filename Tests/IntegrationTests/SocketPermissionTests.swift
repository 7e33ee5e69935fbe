import Foundation
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Socket creation (issue 10, finding 7): with a permissive umask, another uid could connect to
/// the admin socket between `bind` and `chmod` and be served as admin. The sockets are never
/// reachable with a wider mode than their final one, and tokend refuses socket and key
/// directories that other users could write (or, for keys, read), saying how to fix them.
@Suite("Socket files and the directories of sockets and keys")
struct SocketPermissionTests {
    @Test(
        "under umask 000 the sockets never show a wider mode than their final one: admin 0600, API 0660, no staging left"
    )
    func socketsNeverWider() async throws {
        let sandbox = try Sandbox("sockmode")
        defer { sandbox.remove() }
        let api = sandbox.apiSocket
        let admin = sandbox.adminSocket
        // Watches both paths while tokend starts, recording every mode it sees.
        let watcher = ModeWatcher(paths: [api, admin])
        let thread = Thread { watcher.run() }
        thread.start()
        defer { watcher.stop() }

        let bash = try #require(Binaries.which("bash"))
        let tokend = try Binaries.tokend()
        let log = sandbox.nextLogFile("tokend")
        let child = try ChildProcess(
            bash,
            ["-c", "umask 000; exec \(tokend.shellQuoted)"],
            environment: sandbox.environment(),
            stdout: .file(log),
            stderr: .file(log),
            name: "tokend",
            currentDirectory: sandbox.path
        )
        do {
            _ = try await eventually("tokend to serve", timeout: Timeouts.start) { () async throws -> Bool? in
                if let status = child.exitStatus { throw HarnessError("tokend exited (\(status)):\n\(child.output)") }
                guard FileManager.default.fileExists(atPath: admin) else { return nil }
                return (try? await http(api, "GET", "/healthz", timeout: 5))?.status == 200 ? true : nil
            }
            #expect(try mode(of: admin) == 0o600)
            #expect(try mode(of: api) == 0o660)
            // The watching thread may not have been scheduled yet on a loaded machine: let it
            // see both sockets at least once before it stops.
            _ = try await eventually("the watcher to see both sockets", timeout: .seconds(30)) {
                () async throws -> Bool? in
                let seen = watcher.seen
                return seen[admin] != nil && seen[api] != nil ? true : nil
            }
            watcher.stop()
            let seen = watcher.seen
            #expect(seen[admin] == [0o600], "modes of the admin socket seen during start: \(octal(seen[admin]))")
            #expect(seen[api] == [0o660], "modes of the API socket seen during start: \(octal(seen[api]))")
            let left = try FileManager.default.contentsOfDirectory(atPath: sandbox.path).filter { $0.hasPrefix(".td") }
            #expect(left.isEmpty, "staging directories left behind: \(left)")
        } catch {
            _ = await child.stop()
            throw error
        }
        let stopped = await child.stop()
        #expect(stopped.status == .exited(0))
    }

    @Test(
        "a socket directory group or others may write is refused, naming it and the fix",
        arguments: [0o777, 0o770, 0o1777] as [mode_t]
    )
    func looseSocketDirectory(_ directoryMode: mode_t) async throws {
        let sandbox = try Sandbox("sockdir")
        defer { sandbox.remove() }
        let directory = sandbox.file("run")
        #expect(mkdir(directory, 0o700) == 0)
        #expect(chmod(directory, directoryMode) == 0)
        let environment = [
            "TOKEND_SOCKET": directory + "/api.sock", "TOKEND_ADMIN_SOCKET": directory + "/admin.sock",
        ]
        let refused = try await Tokend.refusedStart(
            sandbox,
            environment: environment,
            boundSocket: directory + "/admin.sock"
        )
        #expect(refused.stderr.contains("the socket directory \(directory) is writable by"), "\(refused)")
        #expect(refused.stderr.contains("chmod go-w \(directory)"), "\(refused)")

        // Fixed as the message says, it starts.
        #expect(chmod(directory, directoryMode & ~0o022) == 0)
        let fixed = try await Tokend.start(
            sandbox,
            environment: [
                "TOKEND_SOCKET": directory + "/api.sock", "TOKEND_ADMIN_SOCKET": directory + "/admin.sock",
            ]
        )
        #expect(await fixed.stop() == .exited(0))
    }

    @Test(
        "a key directory group or others may write, or others may read, is refused, naming it and the fix",
        arguments: [0o755, 0o770, 0o704, 0o702] as [mode_t]
    )
    func looseKeyDirectory(_ directoryMode: mode_t) async throws {
        let sandbox = try Sandbox("keydir")
        defer { sandbox.remove() }
        // A first start generates the keys; the directory is loosened afterwards, and also
        // checked when it holds nothing yet.
        let first = try await Tokend.start(sandbox)
        #expect(await first.stop() == .exited(0))
        let empty = sandbox.file("empty-keys")
        #expect(mkdir(empty, 0o700) == 0)
        for (directory, extra) in [
            (sandbox.keysDirectory, [:]), (empty, ["TOKEND_KEYS_DIR": empty]),
        ] as [(String, [String: String])] {
            #expect(chmod(directory, directoryMode) == 0)
            let refused = try await Tokend.refusedStart(sandbox, environment: extra)
            #expect(refused.stderr.contains("the key directory \(directory) is"), "\(refused)")
            #expect(refused.stderr.contains("chmod 700 \(directory)"), "\(refused)")
            #expect(chmod(directory, 0o700) == 0)
        }
        let fixed = try await Tokend.start(sandbox)
        #expect(await fixed.stop() == .exited(0))
    }

    @Test(
        "a socket or key directory that belongs to another user is refused, naming the owner and the fix",
        .enabled(if: geteuid() == 0, "needs root to give a directory to another user")
    )
    func foreignOwnedDirectories() async throws {
        let sandbox = try Sandbox("owner")
        defer { sandbox.remove() }
        let first = try await Tokend.start(sandbox)
        #expect(await first.stop() == .exited(0))
        let runDirectory = sandbox.file("run")
        #expect(mkdir(runDirectory, 0o700) == 0)
        let sockets = [
            "TOKEND_SOCKET": runDirectory + "/api.sock", "TOKEND_ADMIN_SOCKET": runDirectory + "/admin.sock",
        ]
        for (directory, extra, what) in [
            (runDirectory, sockets, "the socket directory"), (sandbox.keysDirectory, [:], "the key directory"),
        ] as [(String, [String: String], String)] {
            #expect(chown(directory, 65534, 65534) == 0)
            let refused = try await Tokend.refusedStart(sandbox, environment: extra)
            #expect(refused.stderr.contains("\(what) \(directory) belongs to uid 65534"), "\(refused)")
            #expect(refused.stderr.contains("chown 0 \(directory)"), "\(refused)")
            #expect(chown(directory, 0, 0) == 0)
        }
        let fixed = try await Tokend.start(sandbox, environment: sockets)
        #expect(await fixed.stop() == .exited(0))
    }

    private func mode(of path: String) throws -> mode_t {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw HarnessError("stat \(path): \(errno)") }
        return info.st_mode & 0o7777
    }
}

private func octal(_ mode: mode_t) -> String { "0" + String(mode, radix: 8) }
private func octal(_ modes: Set<mode_t>?) -> String { (modes ?? []).map(octal).sorted().joined(separator: ", ") }

/// Polls the mode of some paths as fast as it can until stopped.
final class ModeWatcher: Sendable {
    private struct State {
        var seen: [String: Set<mode_t>] = [:]
        var stopped = false
    }

    private let paths: [String]
    private let state = Mutex(State())

    init(paths: [String]) { self.paths = paths }

    var seen: [String: Set<mode_t>] { state.withLock { $0.seen } }
    func stop() { state.withLock { $0.stopped = true } }

    func run() {
        var seen: [String: Set<mode_t>] = [:]
        var rounds = 0
        while true {
            for path in paths {
                var info = stat()
                if lstat(path, &info) == 0 { seen[path, default: []].insert(info.st_mode & 0o7777) }
            }
            rounds += 1
            if rounds % 64 == 0 {
                let snapshot = seen
                if state.withLock({ state in
                    state.seen = snapshot
                    return state.stopped
                }) {
                    return
                }
            }
        }
    }
}
