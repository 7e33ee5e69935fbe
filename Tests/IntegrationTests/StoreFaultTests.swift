import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10 finding 9: store faults and health must agree. A write is acknowledged only when it
/// is in the store tokend opens next time; while writes fail, `/healthz` says so (200,
/// `"status":"degraded"`, `"writes":"failing (…)"`), the log says so once, and token checks
/// keep answering from memory.
@Suite("Store faults against the real daemon")
struct StoreFaultTests {
    static let signUp = #"{"username":"fault-user","email":"fault-user@example.com","password":"correct horse"}"#

    @Test("database files deleted: writes answer 503, /healthz says why, nothing acknowledged is lost after restart")
    func deletedFiles() async throws {
        let sandbox = try Sandbox("store-deleted")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox)
        defer { daemon.send(SIGKILL) }
        let revokedBefore = try await daemon.issue(sub: "revoked-before")
        #expect(try await daemon.revoke(revokedBefore.accessToken).status == 200)
        let live = try await daemon.issue(sub: "live")
        // The operator's backup, taken while tokend is idle (the WAL holds the revocation).
        for suffix in ["", "-wal"] {
            try copy(sandbox.storePath + suffix, to: sandbox.file("backup.db" + suffix))
        }

        for suffix in ["", "-wal", "-shm"] { unlink(sandbox.storePath + suffix) }
        let refused = try await daemon.revoke(live.accessToken)
        #expect(refused.status == 503, "a revocation into a deleted file was acknowledged: \(refused.summary)")
        #expect(refused.header("Retry-After") != nil)
        let signUp = try await daemon.api("POST", "/user", json: Self.signUp)
        #expect(signUp.status == 503, "a sign-up into a deleted file was acknowledged: \(signUp.summary)")

        let health = try await daemon.api("GET", "/healthz")
        #expect(health.status == 200, "token checks still work: \(health.summary)")
        #expect(health.string("status") == "degraded", "\(health.summary)")
        #expect(health.string("writes")?.hasPrefix("failing (") == true, "\(health.summary)")
        #expect(health.string("writes")?.contains("deleted") == true, "\(health.summary)")
        #expect(health.string("keys") == "ok")
        let status = try await daemon.admin("GET", "/admin/status")
        #expect(status.string("status") == "degraded", "\(status.summary)")
        #expect(status.json?["health"]?["writes"]?.stringValue == health.string("writes"), "\(status.summary)")
        // Token checks answer from memory, which holds every acknowledged revocation.
        #expect(try await daemon.isActive(live.accessToken))
        #expect(try await daemon.isActive(revokedBefore.accessToken) == false)
        // A second failing write and a second health check: the change was logged once.
        #expect(try await daemon.revoke(live.accessToken).status == 503)
        _ = try await daemon.api("GET", "/healthz")
        #expect(
            daemon.log.components(separatedBy: "token store writes fail").count - 1 == 1,
            "\(daemon.log.redactingSecrets)"
        )
        await daemon.stop()

        // The operator restores the backup: every acknowledged write is there, and the
        // refused ones are not (they were never acknowledged).
        for suffix in ["", "-wal"] {
            unlink(sandbox.storePath + suffix)
            try copy(sandbox.file("backup.db" + suffix), to: sandbox.storePath + suffix)
        }
        let restarted = try await Tokend.start(sandbox)
        defer { restarted.send(SIGKILL) }
        #expect(try await restarted.isActive(revokedBefore.accessToken) == false)
        #expect(try await restarted.isActive(live.accessToken))
        #expect(try await restarted.api("GET", "/healthz").string("status") == "serving")
        #expect(try await restarted.revoke(live.accessToken).status == 200)
        #expect(await restarted.stop() == .exited(0))
    }

    @Test(
        "a read-only database file: writes 503, /healthz and STATUS= degraded naming it, token checks 200, one log line"
    )
    func readOnlyDatabaseFile() async throws {
        let sandbox = try Sandbox("store-readonly")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox, notify: true)
        let notify = try #require(daemon.notify)
        defer { daemon.send(SIGKILL) }
        let revoked = try await daemon.issue(sub: "revoked")
        #expect(try await daemon.revoke(revoked.accessToken).status == 200)
        let live = try await daemon.issue(sub: "live")

        // Root may write whatever the mode says: make the file immutable for it instead.
        let readOnly = try ReadOnlyFile(sandbox.storePath)
        defer { readOnly.undo() }
        let walBefore = fileSize(sandbox.storePath + "-wal")
        for _ in 0..<3 {
            let refused = try await daemon.revoke(live.accessToken)
            #expect(refused.status == 503, "\(refused.summary)")
        }
        #expect(fileSize(sandbox.storePath + "-wal") == walBefore, "refused writes must not grow the WAL")
        let health = try await daemon.api("GET", "/healthz")
        #expect(health.status == 200, "\(health.summary)")
        #expect(health.string("status") == "degraded")
        #expect(health.string("writes")?.contains(sandbox.storePath) == true, "\(health.summary)")
        #expect(health.string("reads") == "ok")
        // Introspection and /v1/verify agree with health: they answer, from memory.
        #expect(try await daemon.isActive(live.accessToken))
        #expect(try await daemon.isActive(revoked.accessToken) == false)
        let verify = try await http(
            daemon.apiSocket,
            "GET",
            "/v1/verify",
            headers: [("Authorization", "Bearer \(live.accessToken)")]
        )
        #expect(verify.status == 200, "\(verify.summary)")
        #expect(
            daemon.log.components(separatedBy: "token store writes fail").count - 1 == 1,
            "\(daemon.log.redactingSecrets)"
        )
        // systemd's STATUS= says the same within a health interval (5 s).
        let degraded = try await notify.waitFor("STATUS=degraded") {
            $0["STATUS"]?.hasPrefix("degraded: writes failing") == true
        }

        readOnly.undo()
        let recovered = try await eventually("/healthz to say serving again") { () async throws -> Reply? in
            let reply = try await daemon.api("GET", "/healthz")
            return reply.string("status") == "serving" ? reply : nil
        }
        #expect(recovered.string("writes") == "ok")
        #expect(daemon.log.contains("token store writes work again"))
        _ = try await notify.waitFor("STATUS=serving", after: degraded.index + 1) {
            $0["STATUS"]?.hasPrefix("serving;") == true
        }
        #expect(try await daemon.revoke(live.accessToken).status == 200)
        #expect(try await daemon.isActive(live.accessToken) == false)
        #expect(await daemon.stop() == .exited(0))
    }

    @Test(
        "disk full: writes 503, /healthz degraded 'the disk is full', token checks go on, and writes resume",
        .enabled(if: geteuid() == 0, "needs root to mount a small tmpfs")
    )
    func diskFull() async throws {
        let sandbox = try Sandbox("store-full")
        defer { sandbox.remove() }
        let disk = try SmallDisk(at: sandbox.file("disk"))
        defer { disk.unmount() }
        let store = disk.path + "/tokend.db"
        let environment = ["TOKEND_STORE": "sqlite:\(store)"]
        let daemon = try await Tokend.start(sandbox, environment: environment)
        defer { daemon.send(SIGKILL) }
        let revoked = try await daemon.issue(sub: "revoked")
        #expect(try await daemon.revoke(revoked.accessToken).status == 200)
        let live = try await daemon.issue(sub: "live")

        try disk.fill()
        // A write appends frames to the WAL; the first ones may still fit where earlier
        // frames were. Revoke fresh tokens until the disk refuses.
        var refused: TokenResponse?
        for index in 0..<50 where refused == nil {
            let token = try await daemon.issue(sub: "filler-\(index)")
            let reply = try await daemon.revoke(token.accessToken)
            if reply.status == 503 {
                refused = token
            } else {
                #expect(reply.status == 200, "\(reply.summary)")
            }
        }
        let unrevoked = try #require(refused, "writes kept being acknowledged on a full disk")
        #expect(try await daemon.isActive(unrevoked.accessToken), "a refused revocation must not apply")
        let health = try await daemon.api("GET", "/healthz")
        #expect(health.status == 200, "\(health.summary)")
        #expect(health.string("status") == "degraded", "\(health.summary)")
        #expect(health.string("writes")?.contains("the disk is full") == true, "\(health.summary)")
        #expect(try await daemon.isActive(live.accessToken))
        #expect(try await daemon.isActive(revoked.accessToken) == false)

        disk.empty()
        _ = try await eventually("/healthz to say serving again") { () async throws -> Bool? in
            try await daemon.api("GET", "/healthz").string("status") == "serving" ? true : nil
        }
        #expect(try await daemon.revoke(live.accessToken).status == 200)
        #expect(await daemon.stop() == .exited(0))
    }

    private func copy(_ source: String, to destination: String) throws {
        let bytes = try #require(FileManager.default.contents(atPath: source), "read \(source)")
        try #require(FileManager.default.createFile(atPath: destination, contents: bytes))
        try #require(chmod(destination, 0o600) == 0)
    }

    private func fileSize(_ path: String) -> Int64 {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : -1
    }
}

/// Runs a system tool to its end, synchronously (usable in `defer`); its exit code.
@discardableResult
private func runTool(_ executable: String, _ arguments: [String]) -> Int32 {
    guard
        let child = try? ChildProcess(
            executable,
            arguments,
            environment: minimalEnvironment(),
            stdout: .null,
            stderr: .null
        )
    else { return 127 }
    switch child.waitForExitBlocking() {
    case .exited(let code): return code
    case .signalled: return 128
    }
}

/// A file tokend may no longer write: mode 0400 for an ordinary user; for root, whom modes do
/// not stop, the immutable attribute (`chattr +i`).
private struct ReadOnlyFile {
    let path: String

    init(_ path: String) throws {
        self.path = path
        if geteuid() == 0 {
            try #require(runTool("/usr/bin/chattr", ["+i", path]) == 0, "chattr +i \(path)")
        } else {
            try #require(chmod(path, 0o400) == 0)
        }
    }

    /// Makes it writable again; harmless when it is already.
    func undo() {
        if geteuid() == 0 {
            runTool("/usr/bin/chattr", ["-i", path])
        } else {
            chmod(path, 0o600)
        }
    }
}

/// A 4 MiB tmpfs for a store, and a file that fills it.
private struct SmallDisk {
    let path: String

    init(at path: String) throws {
        self.path = path
        try #require(mkdir(path, 0o700) == 0)
        let status = runTool("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tokend-test", path])
        try #require(status == 0, "mount a tmpfs on \(path)")
    }

    var filler: String { path + "/filler" }

    /// Writes to `filler` until the file system refuses.
    func fill() throws {
        let fd = open(filler, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    func empty() { unlink(filler) }

    /// Unmounts, lazily if tokend still holds files on it.
    func unmount() { runTool("/usr/bin/umount", ["-l", path]) }
}
