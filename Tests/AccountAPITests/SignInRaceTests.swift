import JOSE
import Testing
import TokenTestSupport

/// Issue 10, finding 1 against the real daemon: sign-ins racing a deactivation. Whatever the
/// interleaving, no token handed to a user who is deactivated afterwards stays active, and
/// no refresh token of such a sign-in refreshes.
@Suite("Sign-ins racing a deactivation", .timeLimit(.minutes(3)))
struct SignInRaceTests {
    @Test("every token issued to a user deactivated during a burst of sign-ins is inactive afterwards")
    func burstAgainstDeactivation() async throws {
        try await withDaemon("signin-race") { daemon in
            let user = try await daemon.createUser("racer", "racer@example.com", "racer-password")
            var issued = 0
            for round in 0..<4 {
                if round > 0 {
                    let activated = try await daemon.admin("POST", "/admin/users/\(user.id)/activate")
                    #expect(activated.status == 200, "activate: \(activated.summary)")
                }
                let replies = try await withThrowingTaskGroup(of: Reply?.self) { group in
                    for n in 0..<32 {
                        group.addTask {
                            try await daemon.signIn(
                                n % 2 == 0 ? .v1 : .appmixer,
                                username: "racer",
                                password: "racer-password"
                            )
                        }
                    }
                    // The deactivation lands while sign-ins are hashing: once the first answer
                    // is back, the others are queued on the hashing pool or inside it.
                    var all: [Reply] = []
                    if let first = try await group.next(), let first { all.append(first) }
                    group.addTask {
                        let reply = try await daemon.admin("POST", "/admin/users/\(user.id)/deactivate")
                        #expect(reply.status == 200, "deactivate: \(reply.summary)")
                        return nil
                    }
                    for try await reply in group { if let reply { all.append(reply) } }
                    return all
                }
                for reply in replies {
                    #expect([200, 401, 403].contains(reply.status), "sign-in: \(reply.summary)")
                    guard reply.status == 200, let body = reply.json else { continue }
                    let dialect: Dialect = body["accessToken"] != nil ? .v1 : .appmixer
                    let token = try #require(dialect.accessToken(body))
                    issued += 1
                    #expect(
                        try await daemon.isActive(token) == false,
                        "round \(round): a token outlived the deactivation"
                    )
                    if let refresh = body["refreshToken"]?.stringValue {
                        let refreshed = try await daemon.v1Refresh(refresh)
                        #expect(refreshed.status != 200, "round \(round): a refresh outlived the deactivation")
                    }
                }
            }
            #expect(issued > 0, "some sign-ins finished before the deactivation")
        }
    }
}
