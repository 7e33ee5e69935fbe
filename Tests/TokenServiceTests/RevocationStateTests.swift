import JOSE
import Testing
import TokenCrypto
import TokenService
import TokenStore

/// The in-memory revocation state keeps what can still verify and forgets the rest (issue 10,
/// finding 10): revoked jtis until their token's exp, ended families until everything they
/// issued has expired.
@Suite("Revocation state in memory")
struct RevocationStateTests {
    @Test(
        "jtis of every shape are revoked exactly: tokend's own, foreign, and look-alikes of tokend's",
        arguments: [
            // tokend's shape, and the same 22 characters but for the last one, whose unused
            // bits are set (a non-canonical spelling of almost the same bits).
            ["AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB"],
            ["a-b_c0123456789xyzABCw", "a-b_c0123456789xyzABCx"],
            // Foreign shapes: a UUID, 21 and 23 characters, padding, a non-ASCII one.
            ["4f1e2d3c-0000-4000-8000-00000000abcd", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA"],
            ["AAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAÄ", ""],
        ]
    )
    func shapes(jtis: [String]) {
        for (index, jti) in jtis.enumerated() {
            let state = RevocationState()
            state.revokeAccessToken(jti: jti, expiresAt: 2_000)
            #expect(state.isAccessTokenRevoked(jti: jti), "\(jti)")
            for other in jtis where other != jti {
                #expect(!state.isAccessTokenRevoked(jti: other), "revoking \(jti) revoked \(other) (\(index))")
            }
        }
    }

    @Test("many random jtis: each revoked one is found, none other is; compaction drops exactly the expired")
    func manyJTIs() {
        let state = RevocationState()
        let revoked = (0..<20_000).map { _ in Base64URL.encode(SecureRandom.bytes(16)) }
        for (index, jti) in revoked.enumerated() {
            state.revokeAccessToken(jti: jti, expiresAt: index.isMultiple(of: 2) ? 1_000 : 2_000.5)
        }
        state.revokeAccessToken(jti: "foreign-expired", expiresAt: 1_000)
        state.revokeAccessToken(jti: "foreign-live", expiresAt: 3_000)
        #expect(revoked.allSatisfy(state.isAccessTokenRevoked))
        let strangers = (0..<20_000).map { _ in Base64URL.encode(SecureRandom.bytes(16)) }
        #expect(!strangers.contains(where: state.isAccessTokenRevoked))
        #expect(state.counts.jtis == 20_002)

        #expect(state.compact(now: 1_000) == 10_001)
        #expect(state.counts.jtis == 10_001)
        for (index, jti) in revoked.enumerated() {
            #expect(state.isAccessTokenRevoked(jti: jti) == !index.isMultiple(of: 2))
        }
        #expect(state.isAccessTokenRevoked(jti: "foreign-live"))
        #expect(!state.isAccessTokenRevoked(jti: "foreign-expired"))
        // An exp of 2000.5 still counts at 2000.5, never a second early.
        #expect(state.compact(now: 2_000.4) == 0)
        #expect(state.compact(now: 2_001) == 10_000)
        #expect(state.counts.jtis == 1)
    }

    @Test("a second revocation of a jti keeps the later expiry")
    func laterExpiryStays() {
        let state = RevocationState()
        let jti = Base64URL.encode(SecureRandom.bytes(16))
        state.revokeAccessToken(jti: jti, expiresAt: 2_000)
        state.revokeAccessToken(jti: jti, expiresAt: 1_000)
        #expect(state.counts.jtis == 1)
        #expect(state.compact(now: 1_500) == 0)
        #expect(state.isAccessTokenRevoked(jti: jti))
    }

    @Test("an ended family stays until everything it issued has expired, then leaves memory")
    func familiesAreTrimmed() async throws {
        let harness = try await Harness.make()
        let session = try await harness.issue("carol", refresh: true)
        try await harness.service.revoke(token: try session.requiredRefreshToken(), hint: nil)
        #expect(harness.service.introspect(session.accessToken).inactiveReason == .revoked)
        #expect(harness.service.revocations.counts.families == 1)

        // Its access token has expired, but its refresh tokens would still be inside the
        // family's lifetime (30 days): the family stays, as in the store.
        harness.clock.advance(by: 2 * 3600)
        _ = try await harness.service.compact()
        #expect(harness.service.revocations.counts.families == 1)

        harness.clock.advance(by: 31 * 86400)
        _ = try await harness.service.compact()
        #expect(harness.service.revocations.counts.families == 0, "an ended family outlived all its tokens")
        // And a restart does not bring it back.
        #expect(try await harness.restarted().service.revocations.counts.families == 0)
    }
}
