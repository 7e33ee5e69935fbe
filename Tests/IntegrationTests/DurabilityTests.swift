import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// "Durable before acknowledged" (DESIGN §3, issue 3 item 5): kill -9 right after tokend
/// acknowledged a revocation or a refresh rotation, restart on the same store and keys, and the
/// acknowledged change still holds.
@Suite("Revocation and refresh rotation survive kill -9")
struct DurabilityTests {
    @Test(
        "An active token, revoked: exactly {\"active\":false}; kill -9 right after the 200; still inactive after restart"
    )
    func revocationSurvivesKill() async throws {
        let sandbox = try Sandbox("kill-revoke")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox)
        defer { daemon.send(SIGKILL) }
        let tokens = try await daemon.issue(sub: "mallory-victim", scope: "read")
        let keep = try await daemon.issue(sub: "bystander")

        let before = try await daemon.introspect(tokens.accessToken)
        #expect(before.status == 200)
        #expect(before.json?["active"]?.boolValue == true)
        #expect(before.json?["sub"]?.stringValue == "mallory-victim")
        #expect(before.json?["scope"]?.stringValue == "read")

        let revoked = try await daemon.revoke(tokens.accessToken)
        #expect(revoked.status == 200)
        try await daemon.kill9()  // the very next thing after the acknowledgement

        let restarted = try await Tokend.start(sandbox)
        defer { restarted.send(SIGKILL) }
        let after = try await restarted.introspect(tokens.accessToken)
        #expect(after.status == 200)
        #expect(
            after.body == Array(#"{"active":false}"#.utf8),
            "RFC 7662 inactive answer must be exactly {\"active\":false}"
        )
        #expect(after.header("Content-Type")?.hasPrefix("application/json") == true)
        #expect(try await restarted.isActive(keep.accessToken), "an unrelated token must survive the restart")
        let verify = try await http(
            restarted.apiSocket,
            "GET",
            "/v1/verify",
            headers: [("Authorization", "Bearer \(tokens.accessToken)")]
        )
        #expect(verify.status == 401)
        #expect(await restarted.stop() == .exited(0))
    }

    @Test(
        "A refresh rotation acknowledged then kill -9: after restart the successor works and the spent token is refused"
    )
    func refreshRotationSurvivesKill() async throws {
        let sandbox = try Sandbox("kill-refresh")
        defer { sandbox.remove() }
        // No grace window: any second use of a spent refresh token is reuse.
        let environment = ["TOKEND_REFRESH_GRACE": "0s"]
        let daemon = try await Tokend.start(sandbox, environment: environment)
        defer { daemon.send(SIGKILL) }
        let original = try await daemon.issue(sub: "erin", refresh: true)
        let spent = try #require(original.refreshToken)

        let rotation = try await daemon.refresh(spent)
        #expect(rotation.status == 200)
        let successor = try #require(TokenResponse(rotation))
        let successorRefresh = try #require(successor.refreshToken)
        let rotated = successorRefresh != spent
        #expect(rotated, "the successor refresh token must differ from the spent one")
        try await daemon.kill9()

        let restarted = try await Tokend.start(sandbox, environment: environment)
        defer { restarted.send(SIGKILL) }
        #expect(try await restarted.isActive(successor.accessToken), "the acknowledged successor access token was lost")
        let next = try await restarted.refresh(successorRefresh)
        #expect(next.status == 200, "the acknowledged successor refresh token was lost: \(next.text.redactingSecrets)")
        #expect(TokenResponse(next)?.refreshToken != nil)

        let reuse = try await restarted.refresh(spent)
        #expect(reuse.status == 400)
        #expect(reuse.string("error") == "invalid_grant", "\(reuse.text.redactingSecrets)")
        #expect(await restarted.stop() == .exited(0))
    }
}
