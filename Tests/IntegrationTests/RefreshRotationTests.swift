import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Refresh rotation under contention and reuse detection (DESIGN §3, RFC 9700 §4.14).
@Suite("Refresh token rotation")
struct RefreshRotationTests {
    @Test("32 concurrent refreshes of one token yield exactly one successor pair; later reuse revokes the whole family")
    func concurrentRefreshAndReuse() async throws {
        try await withTokend("refresh", environment: ["TOKEND_REFRESH_GRACE": "1s"]) { daemon in
            let start = try await daemon.issue(sub: "frank", scope: "read write", refresh: true)
            let r0 = try #require(start.refreshToken)

            let request = refreshGrantRequest(r0)
            let results = try await concurrently(Array(repeating: (daemon.apiSocket, request), count: 32))
            let (responses, failures) = repliesAndFailures(results)
            #expect(failures.isEmpty, "transport failures: \(failures.prefix(3))")
            let statuses = Dictionary(grouping: responses, by: \.status).mapValues(\.count)
            #expect(statuses == [200: 32], "every use inside the grace window gets the successor pair; got \(statuses)")
            let pairs = Set(responses.filter { $0.status == 200 }.compactMap(TokenResponse.init))
            #expect(pairs.count == 1, "\(pairs.count) different successor pairs: the family forked")
            let successor = try #require(pairs.first)
            let r1 = try #require(successor.refreshToken)
            // Compared as booleans: a failure message must not print a token.
            let rotated = r1 != r0 && successor.accessToken != start.accessToken
            #expect(rotated, "the successor pair must be new tokens")
            #expect(try await daemon.isActive(successor.accessToken))

            // The legitimate client goes on: R1 → (A2, R2), the newest of the family.
            let second = try await daemon.refresh(r1)
            #expect(second.status == 200)
            let newest = try #require(TokenResponse(second))
            let r2 = try #require(newest.refreshToken)
            #expect(try await daemon.isActive(newest.accessToken))

            // After the grace window, the old R0 shows up again: reuse. The family ends.
            try await Task.sleep(for: .milliseconds(1500))
            let reuse = try await daemon.refresh(r0)
            #expect(reuse.status == 400)
            #expect(reuse.string("error") == "invalid_grant", "\(reuse.text.redactingSecrets)")
            let newestAnswer = try await daemon.introspect(newest.accessToken)
            #expect(
                newestAnswer.text == #"{"active":false}"#,
                "the family's newest access token must be inactive after reuse"
            )
            #expect(try await daemon.isActive(successor.accessToken) == false)
            let newestRefresh = try await daemon.refresh(r2)
            #expect(newestRefresh.status == 400, "the family's newest refresh token must be refused after reuse")
            #expect(newestRefresh.string("error") == "invalid_grant")
        }
    }

    @Test("A retry of the just-spent token inside the grace window returns the same pair")
    func retryInsideGraceIsIdempotent() async throws {
        try await withTokend("grace", environment: ["TOKEND_REFRESH_GRACE": "30s"]) { daemon in
            let start = try await daemon.issue(sub: "grace", refresh: true)
            let r0 = try #require(start.refreshToken)
            let first = try await daemon.refresh(r0)
            let retry = try await daemon.refresh(r0)
            #expect(first.status == 200)
            #expect(retry.status == 200)
            let pair = try #require(TokenResponse(first))
            let samePair = TokenResponse(retry) == pair
            #expect(samePair, "a retry inside the grace window must not fork the family")
            #expect(first.header("Cache-Control")?.contains("no-store") == true)
            #expect(try await daemon.isActive(pair.accessToken))
        }
    }
}
