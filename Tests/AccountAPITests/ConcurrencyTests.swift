import JOSE
import Testing
import TokenTestSupport

/// Sign-ups racing for one email or one username: one wins, the others get 409 in the
/// dialect's shape (never a 5xx, never two users).
@Suite("Concurrent sign-ups", .timeLimit(.minutes(2)))
struct ConcurrencyTests {
    @Test("one email or one username, six sign-ups at once: one 200, five 409")
    func races() async throws {
        try await withDaemon("races") { daemon in
            for (kind, bodies) in [
                (
                    "email",
                    (0..<6).map {
                        jsonText([
                            "username": .string("racer\($0)"), "email": "race@example.com", "password": "race-password",
                        ])
                    }
                ),
                (
                    "username",
                    (0..<6).map {
                        jsonText([
                            "username": .string($0 % 2 == 0 ? "Racer" : "racer"),
                            "email": .string("r\($0)@example.com"), "password": "race-password",
                        ])
                    }
                ),
            ] {
                let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                    for body in bodies { group.addTask { try await daemon.api("POST", "/user", json: body) } }
                    var all: [Reply] = []
                    for try await reply in group { all.append(reply) }
                    return all
                }
                #expect(replies.filter { $0.status == 200 }.count == 1, "\(kind): \(replies.map(\.status))")
                for reply in replies where reply.status != 200 { expectError(reply, 409, .message, "\(kind) race") }
            }
            let users = try await daemon.admin("GET", "/admin/users")
            #expect(users.json?["users"]?.arrayValue?.count == 2, "exactly two users exist")
        }
    }
}
