import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10, finding 8: `<current-kid>.pem` replaced by another key. On SIGHUP tokend keeps
/// signing with the key its JWKS publishes and says why it refused the file; at start it
/// refuses to run, naming the file, the kid and the file's thumbprint.
@Suite("A key file that does not match its kid")
struct KeyFileMismatchTests {
    /// kid of the given state in `keyring.json`.
    static func kid(_ state: String, in sandbox: Sandbox) throws -> String {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: sandbox.file("keys/keyring.json"))))
        let document = try KeyringDocument.parse(bytes)
        return try #require(document.keys.first { $0.state.rawValue == state }?.kid)
    }

    /// Overwrites `<current>.pem` with the next key's PEM, mode 0600.
    static func swap(_ sandbox: Sandbox) throws -> (current: String, next: String) {
        let current = try kid("current", in: sandbox)
        let next = try kid("next", in: sandbox)
        let pem = try Data(contentsOf: URL(fileURLWithPath: sandbox.file("keys/\(next).pem")))
        try pem.write(to: URL(fileURLWithPath: sandbox.file("keys/\(current).pem")))
        #expect(chmod(sandbox.file("keys/\(current).pem"), 0o600) == 0)
        return (current, next)
    }

    /// Verifies `token` against the daemon's published JWKS (signature, kid, typ).
    static func verifiesAgainstJWKS(_ daemon: Tokend, _ token: String) async throws -> Bool {
        let jwks = try await http(daemon.apiSocket, "GET", "/.well-known/jwks.json")
        let keys = try KeySet.parse(jwks: Array(jwks.text.utf8), source: "jwks")
        let verifier = JWTVerifier(keys: keys, options: ValidationOptions(leeway: 60, requiredType: "at+jwt"))
        return (try? verifier.verify(token, now: Date().timeIntervalSince1970)) != nil
    }

    @Test("SIGHUP keeps the published key, logs the mismatch and says so in STATUS=")
    func reloadRefusesMismatch() async throws {
        let sandbox = try Sandbox("keymismatch-reload")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox, notify: true)
        do {
            let before = try await daemon.issue(sub: "alice").accessToken
            #expect(try await KeyFileMismatchTests.verifiesAgainstJWKS(daemon, before))
            let (current, next) = try KeyFileMismatchTests.swap(daemon.sandbox)
            let notify = try #require(daemon.notify)
            let start = notify.messages.count
            daemon.send(SIGHUP)
            let (_, status) = try await notify.waitFor("READY=1 after the reload", after: start) {
                $0["READY"] == "1"
            }
            #expect(status["STATUS"]?.contains("key reload failed") == true, "STATUS=\(status["STATUS"] ?? "-")")
            _ = try await eventually("the refusal to be logged") {
                daemon.log.contains("reload failed") ? true : nil
            }
            #expect(
                daemon.log.contains("\(current).pem does not hold the key of kid \(current)"),
                "\(daemon.log.redactingSecrets)"
            )
            #expect(daemon.log.contains("thumbprint is \(next)"))
            #expect(!daemon.log.contains("PRIVATE KEY"))

            #expect(try await daemon.isActive(before), "a token of the published key stopped verifying")
            let after = try await daemon.issue(sub: "bob").accessToken
            #expect(after.kid == current, "new tokens must carry the published current kid")
            #expect(
                try await KeyFileMismatchTests.verifiesAgainstJWKS(daemon, after),
                "a new token does not verify against the published JWKS"
            )
            #expect(try await daemon.isActive(after))
        } catch {
            _ = await daemon.stop()
            throw error
        }
        #expect(await daemon.stop() == .exited(0))
    }

    @Test("a start with a mismatched key file exits non-zero, naming the file, the kid and its thumbprint")
    func startRefusesMismatch() async throws {
        let sandbox = try Sandbox("keymismatch-start")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox)
        #expect(await daemon.stop() == .exited(0))
        let (current, next) = try KeyFileMismatchTests.swap(sandbox)
        let result = try await Tokend.refusedStart(sandbox)
        #expect(result.stderr.contains("\(current).pem does not hold the key of kid \(current)"), "\(result)")
        #expect(result.stderr.contains("thumbprint is \(next)"), "\(result)")
        #expect(!result.stderr.contains("PRIVATE KEY"))
    }
}
