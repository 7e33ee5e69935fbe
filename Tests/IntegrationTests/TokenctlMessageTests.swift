import Testing
import TokenTestSupport

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
}
