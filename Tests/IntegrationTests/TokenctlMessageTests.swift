import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What an operator reads from tokenctl when the daemon is not there.
@Suite("tokenctl without a daemon")
struct TokenctlMessageTests {
    @Test("tokenctl says the admin socket cannot be reached, asks whether tokend runs, and exits 1")
    func noDaemon() async throws {
        let sandbox = try Sandbox("ctl")
        defer { sandbox.remove() }
        let socket = sandbox.adminSocket
        let result = try await run(try Binaries.tokenctl(), ["status", "--socket", socket], in: sandbox.path)
        #expect(result.status == .exited(1), "\(result)")
        #expect(result.stdout.isEmpty, "\(result)")
        #expect(
            result.stderr == "tokenctl: cannot connect to \(socket): No such file or directory — is tokend running?\n",
            "\(result)"
        )
    }

    @Test(
        "without --socket or TOKEND_ADMIN_SOCKET, tokenctl uses ./run/tokend-admin.sock when it exists, and names both defaults when none does"
    )
    func defaultSockets() async throws {
        // Only meaningful where no system install's socket exists (a test machine).
        try #require(access("/run/tokend/admin.sock", F_OK) != 0, "this machine runs a system tokend")
        let sandbox = try Sandbox("ctl-default")
        defer { sandbox.remove() }
        let tokenctl = try Binaries.tokenctl()
        let none = try await run(tokenctl, ["status"], in: sandbox.path, currentDirectory: sandbox.path)
        #expect(none.status == .exited(1), "\(none)")
        #expect(
            none.stderr == "tokenctl: no admin socket at ./run/tokend-admin.sock or /run/tokend/admin.sock: "
                + "is tokend running? Name its socket with --socket or TOKEND_ADMIN_SOCKET\n",
            "\(none)"
        )

        // A tokend whose admin socket is ./run/tokend-admin.sock of the directory tokenctl runs in.
        try await withTokend("ctl-default-daemon") { daemon in
            let directory = daemon.sandbox.path + "/cwd"
            try #require(mkdir(directory, 0o700) == 0 && mkdir(directory + "/run", 0o700) == 0)
            try #require(symlink(daemon.adminSocket, directory + "/run/tokend-admin.sock") == 0)
            let found = try await run(tokenctl, ["status"], in: daemon.sandbox.path, currentDirectory: directory)
            #expect(found.status == .exited(0), "\(found)")
            #expect(found.stdout.contains("serving"), "\(found)")
        }
    }
}
