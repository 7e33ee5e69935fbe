import Foundation
import JOSE
import Testing
import TokenTestSupport

/// Last sign-in times are written behind, about a second after the sign-in; a clean stop
/// (SIGTERM) writes the ones still pending before the store closes.
@Suite("Last sign-in times survive a clean stop")
struct SignInTimeTests {
    @Test("A sign-in right before SIGTERM: exit 0, and after a restart the user's lastLogin is set")
    func cleanStopWritesPendingSignIn() async throws {
        let sandbox = try Sandbox("signin-stop")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox)
        let created = try await http(
            daemon.adminSocket,
            "POST",
            "/admin/users",
            body: .json(#"{"username":"dana","email":"dana@example.com","password":"dana-password"}"#)
        )
        let id = try #require(created.string("id"), "POST /admin/users answered \(created.status): \(created.text)")
        #expect(created.json?["lastLogin"] == .null, "a new user has not signed in")

        let signIn = try await http(
            daemon.apiSocket,
            "POST",
            "/user/auth",
            body: .json(#"{"username":"dana","password":"dana-password"}"#)
        )
        #expect(signIn.status == 200, "\(signIn.status) \(signIn.text.redactingSecrets)")
        // The very next thing: the time is still pending, not yet written by the timer.
        #expect(await daemon.stop() == .exited(0))

        let restarted = try await Tokend.start(sandbox)
        let shown = try await http(restarted.adminSocket, "GET", "/admin/users/\(id)")
        #expect(await restarted.stop() == .exited(0))
        #expect(shown.status == 200, "\(shown.status) \(shown.text)")
        #expect(shown.string("lastLogin") != nil, "the sign-in time was lost on a clean stop: \(shown.text)")
    }
}
