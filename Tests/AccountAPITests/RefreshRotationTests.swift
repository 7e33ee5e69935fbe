import JOSE
import Testing
import TokenTestSupport

/// v1 refresh through `/api/v1/auths/refresh {refreshToken}` (DESIGN §3 rotation rules), with
/// TOKEND_REFRESH_GRACE=1s.
@Suite("v1 refresh rotation", .timeLimit(.minutes(2)))
struct RefreshRotationTests {
    @Test("rotation, replay inside the grace window, reuse after it revokes the family")
    func rotation() async throws {
        try await withDaemon("refresh", environment: ["TOKEND_REFRESH_GRACE": "1s"]) { daemon in
            let user = try await daemon.createUser("rita", "rita@example.com", "rita-password")
            let signIn = try await daemon.signedIn(.v1, username: "rita", password: "rita-password")
            let firstAccess = try #require(signIn["accessToken"]?.stringValue)
            let firstRefresh = try #require(signIn["refreshToken"]?.stringValue)

            // Rotation: a new pair, the same shape as sign-in.
            let rotated = try await daemon.v1Refresh(firstRefresh)
            expectShape(rotated, 200, like: try seedJSON(Seed.v1SignIn), allow: Seed.v1Allow)
            #expect(shape(try json(rotated), allow: Seed.v1Allow) == shape(signIn, allow: Seed.v1Allow))
            let second = try json(rotated)
            let secondAccess = try #require(second["accessToken"]?.stringValue)
            let secondRefresh = try #require(second["refreshToken"]?.stringValue)
            let rotatedBoth = secondAccess != firstAccess && secondRefresh != firstRefresh
            #expect(rotatedBoth, "refresh returns a new access token and a new refresh token")
            #expect(second["user"]?["id"]?.numberValue?.int64Value == user.numericID)
            #expect(try await daemon.isActive(secondAccess))

            // A retry of the spent token inside the grace window (right away: the window is 1 s):
            // the same pair again.
            let retried = try await daemon.v1Refresh(firstRefresh)
            #expect(retried.status == 200, "\(retried.summary)")
            let retriedBody = try json(retried)
            let samePair =
                retriedBody["accessToken"]?.stringValue == secondAccess
                && retriedBody["refreshToken"]?.stringValue == secondRefresh
            #expect(samePair, "a retry within the grace window returns the same successor pair")
            expectShape(retried, 200, like: try seedJSON(Seed.v1SignIn), allow: Seed.v1Allow)

            // The refreshed token is a v1 token: its claims and 24 h.
            let (exit, report) = try await daemon.inspect(secondAccess)
            #expect(exit == .exited(0), "jwt-inspect: \(report["verdict"]?.stringValue ?? "?")")
            #expect(report["fits_policy"]?.stringValue == "24h")
            #expect(report["lifetime_seconds"]?.numberValue?.int64Value == 86400)
            #expect(report["claims"]?["id"]?.numberValue?.int64Value == user.numericID)
            #expect(report["claims"]?["rol"]?.stringValue != nil)

            // After the grace window: reuse. Refused in the v1 shape, and the family ends.
            try await Task.sleep(for: .milliseconds(1600))
            let reused = try await daemon.v1Refresh(firstRefresh)
            expectError(reused, 401, .statusCode, "reuse of a spent refresh token")
            #expect(!(try await daemon.isActive(secondAccess)), "reuse revokes the family's access tokens")
            expectError(try await daemon.v1Refresh(secondRefresh), 401, .statusCode, "the successor after reuse")

            // Garbage and unknown refresh tokens: 401 in the v1 shape.
            expectError(try await daemon.v1Refresh("not-a-refresh-token"), 401, .statusCode, "unknown refresh token")
            // A new sign-in starts a new family that works.
            let again = try await daemon.signedIn(.v1, email: "rita@example.com", password: "rita-password")
            let newRefresh = try #require(again["refreshToken"]?.stringValue)
            expectShape(
                try await daemon.v1Refresh(newRefresh),
                200,
                like: try seedJSON(Seed.v1SignIn),
                allow: Seed.v1Allow
            )
        }
    }
}
