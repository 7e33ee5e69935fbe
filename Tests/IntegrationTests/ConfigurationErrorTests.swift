import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// DESIGN §7: an invalid value stops tokend at start with a message naming the variable and the
/// accepted form; DESIGN §4: a group-readable private key is refused, naming the file.
@Suite("Start-up refuses bad configuration")
struct ConfigurationErrorTests {
    /// (variable, bad value, a phrase of the accepted form the message must show)
    static let cases: [(String, String, String)] = [
        ("TOKEND_ACCESS_POLICY", "forever", "1h, 24h, 30d"),
        ("TOKEND_ACCESS_POLICY", "-5m", "1h, 24h, 30d"),
        ("TOKEND_LEEWAY", "a little", "30s"),
        ("TOKEND_LEEWAY", "2h", "5m"),
        ("TOKEND_EVENT_RETENTION", "forever", "at least 1h"),
        ("TOKEND_EVENT_RETENTION", "10m", "at least 1h"),
        ("TOKEND_STORE", "mysql://db/tokend", "sqlite:PATH"),
        ("TOKEND_STORE", "sqlite:", "sqlite:PATH"),
        ("TOKEND_HEADER_TIMEOUT", "0s", "from 1s to 1h"),
        ("TOKEND_BODY_TIMEOUT", "soon", "from 1s to 1h"),
        ("TOKEND_MAX_CONNECTIONS", "0", "from 1 to 1048576"),
        ("TOKEND_ADMIN_MAX_CONNECTIONS", "many", "from 1 to 1048576"),
        ("TOKEND_MAX_STALENESS", "1s", "0 (never refuse) or a duration from 2s to 1d"),
        ("TOKEND_MAX_STALENESS", "a while", "0 (never refuse) or a duration from 2s to 1d"),
        ("TOKEND_FLEET_NOTIFY", "off", "1 or 0"),
        ("TOKEND_ECDSA_PRECOMPUTE", "yes", "1 or 0"),
    ]

    @Test(
        "A bad value stops tokend at once: nonzero exit, the variable and the accepted form named, no socket bound",
        arguments: cases
    )
    func badValue(_ variable: String, _ value: String, _ accepted: String) async throws {
        let sandbox = try Sandbox("badconf")
        defer { sandbox.remove() }
        let result = try await Tokend.refusedStart(sandbox, environment: [variable: value])
        let message = result.stderr
        #expect(message.contains(variable), "the message must name \(variable):\n\(result)")
        #expect(message.contains(accepted), "the message must show the accepted form (\(accepted)):\n\(result)")
    }

    @Test("The same check applies to a flag, named by its variable")
    func badFlag() async throws {
        let sandbox = try Sandbox("badflag")
        defer { sandbox.remove() }
        let result = try await run(
            try Binaries.tokend(),
            ["--access-policy", "forever"],
            environment: sandbox.environment(),
            in: sandbox.path,
            timeout: .seconds(30)
        )
        #expect(result.status != .exited(0))
        #expect(
            result.stderr.contains("TOKEND_ACCESS_POLICY") || result.stderr.contains("--access-policy"),
            "\(result)"
        )
    }

    @Test("A group-readable private key in the key directory is refused, naming the file")
    func groupReadableKey() async throws {
        let sandbox = try Sandbox("keymode")
        defer { sandbox.remove() }
        // A first start generates the keyring.
        let daemon = try await Tokend.start(sandbox)
        #expect(await daemon.stop() == .exited(0))
        let keyFile = try #require(sandbox.privateKeyFiles.first, "the first start wrote no *.pem")
        #expect(chmod(keyFile, 0o640) == 0)

        let result = try await run(
            try Binaries.tokend(),
            [],
            environment: sandbox.environment(),
            in: sandbox.path,
            timeout: .seconds(30)
        )
        #expect(result.status != .exited(0), "tokend started with a group-readable private key")
        let name = URL(fileURLWithPath: keyFile).lastPathComponent
        #expect(result.stderr.contains(name), "the refusal must name \(name):\n\(result)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.apiSocket))

        // Fixed as the message says, it starts again.
        #expect(chmod(keyFile, 0o600) == 0)
        let fixed = try await Tokend.start(sandbox)
        #expect(await fixed.stop() == .exited(0))
    }

    @Test("A second tokend on a socket another one serves stops before it opens its store, naming the socket")
    func socketAlreadyServed() async throws {
        let sandbox = try Sandbox("served")
        defer { sandbox.remove() }
        let first = try await Tokend.start(sandbox)
        let otherStore = sandbox.file("other.db")
        let second = try await run(
            try Binaries.tokend(),
            [],
            environment: sandbox.environment(["TOKEND_STORE": "sqlite:\(otherStore)"]),
            in: sandbox.path,
            timeout: .seconds(30)
        )
        #expect(second.status != .exited(0), "\(second)")
        #expect(second.stderr.contains("another tokend is serving \(sandbox.apiSocket)"), "\(second)")
        // Stopped before the store: it would otherwise have opened (and migrated) it first.
        #expect(!FileManager.default.fileExists(atPath: otherStore), "the second tokend created its store")
        let token = try await first.issue(sub: "still-served")
        #expect(try await first.isActive(token.accessToken), "the first tokend serves on")
        #expect(await first.stop() == .exited(0))
    }
}
