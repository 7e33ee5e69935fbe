import Foundation
import JOSE
import Testing
import TokenTestSupport

/// Issue 4, item 3: hashing runs on a bounded pool off the event loop; when its queue is full
/// the answer is 503 with Retry-After (in the dialect's shape), and other routes stay fast.
@Suite("Hashing pool overload", .timeLimit(.minutes(2)))
struct OverloadTests {
    @Test("a full hashing queue answers 503 with Retry-After in each dialect; introspection stays fast")
    func fullQueue() async throws {
        try await withDaemon("overload", environment: ["TOKEND_HASH_WORKERS": "1", "TOKEND_HASH_QUEUE": "1"]) {
            daemon in
            try await daemon.createUser("olive", "olive@example.com", "olive-password")
            let token = try #require(
                Dialect.classic.accessToken(
                    try await daemon.signedIn(.classic, email: "olive@example.com", password: "olive-password")
                )
            )
            for dialect in Dialect.allCases {
                let burst = 12
                let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                    for _ in 0..<burst {
                        group.addTask {
                            try await daemon.signIn(dialect, email: "olive@example.com", password: "wrong-password")
                        }
                    }
                    // Introspection while the pool is saturated.
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(5))
                        return try await daemon.api("POST", "/oauth2/introspect", body: .form([("token", token)]))
                    }
                    var all: [Reply] = []
                    for try await reply in group { all.append(reply) }
                    return all
                }
                let introspection = try #require(replies.first { $0.json?["active"] != nil })
                #expect(introspection.json?["active"] == .bool(true))
                #expect(
                    introspection.elapsed < .seconds(1),
                    "\(dialect): introspection took \(introspection.elapsed) during saturation"
                )
                let signIns = replies.filter { $0.json?["active"] == nil }
                let overloaded = signIns.filter { $0.status == 503 }
                #expect(
                    !overloaded.isEmpty,
                    "\(dialect): \(burst) sign-ins at once with 1 worker and a queue of 1: some get 503"
                )
                #expect(signIns.allSatisfy { [401, 503].contains($0.status) }, "\(dialect): \(signIns.map(\.status))")
                for reply in overloaded {
                    expectError(reply, 503, dialect.errorShape, "\(dialect): overloaded")
                    #expect(
                        reply.header("Retry-After").flatMap { Int($0) }.map { $0 >= 1 } == true,
                        "\(dialect): Retry-After"
                    )
                }
            }
            // Once the burst is over, sign-in works again.
            _ = try await daemon.signedIn(.v1, email: "olive@example.com", password: "olive-password")
        }
    }
}
