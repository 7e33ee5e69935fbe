import CodedErrors
import JOSE
import Testing
import TokenCrypto
import TokenService
import TokenStore
import TokenTestSupport

/// The refresh grant (RFC 6749 §6) with DESIGN §3's rules, over the in-memory store: rotation,
/// replay inside the grace window, family revocation on reuse, one winner among concurrent uses.
@Suite("Refresh")
struct RefreshTests {
    /// A harness and a fresh sign-in with a refresh token.
    static func signedIn(
        _ configuration: ServiceConfiguration = .test(),
        scope: [String] = ["read", "write"]
    ) async throws -> (Harness, IssuedTokens, String) {
        let harness = try await Harness.make(configuration)
        let issued = try await harness.issue(scope: scope, refresh: true)
        return (harness, issued, try issued.requiredRefreshToken())
    }

    @Test("refreshing gives a new access and refresh token in the same family; the old refresh token is spent")
    func rotates() async throws {
        let (harness, issued, refresh) = try await Self.signedIn()
        // 32 random bytes after 6 of the issue time (the in-memory store keys in issue order).
        #expect(refresh.utf8.count == 51)
        #expect(try Base64URL.decode(refresh).count == 38)
        harness.clock.advance(by: 60)
        let next = try #require(await harness.service.refresh(token: refresh).tokens)
        let successor = try next.requiredRefreshToken()
        #expect(successor != refresh)
        #expect(next.accessToken != issued.accessToken)
        #expect(next.jti != issued.jti)
        #expect(next.familyID == issued.familyID)
        #expect(next.scope == "read write")
        #expect(next.expiresIn == 3600)
        let token = try #require(harness.service.introspect(next.accessToken).activeToken)
        #expect(token.familyID == issued.familyID)
        #expect(token.subject == "user-1")
        #expect(token.clientID == "client-1")
        #expect(token.iat == StoreFixtures.now + 60)

        // The successor rotates in turn.
        harness.clock.advance(by: 60)
        let third = try #require(await harness.service.refresh(token: successor).tokens)
        #expect(third.refreshToken != successor)
        // The first one is spent: outside the grace window it is reuse, not a new pair.
        #expect(await harness.service.refresh(token: refresh).oauthError?.code == .invalidGrant)
    }

    @Test("a retry of the just-spent token inside the grace window returns the same pair")
    func replayInsideGrace() async throws {
        let (harness, _, refresh) = try await Self.signedIn()
        let first = try #require(await harness.service.refresh(token: refresh).tokens)
        harness.clock.advance(by: 9)
        let retry = try #require(await harness.service.refresh(token: refresh).tokens)
        #expect(retry.accessToken == first.accessToken)
        #expect(retry.refreshToken == first.refreshToken)
        #expect(retry.jti == first.jti)
        #expect(retry.expiresIn == first.expiresIn - 9)
        // No fork: the pair is still good and the family alive.
        #expect(harness.service.introspect(first.accessToken).isActive)
        #expect(await harness.service.refresh(token: try first.requiredRefreshToken()).tokens != nil)
    }

    @Test("after the grace window a spent token is reuse: the family is revoked, its newest tokens refused")
    func reuseAfterGrace() async throws {
        let (harness, issued, refresh) = try await Self.signedIn()
        let newest = try #require(await harness.service.refresh(token: refresh).tokens)
        let newestRefresh = try newest.requiredRefreshToken()
        #expect(harness.service.introspect(newest.accessToken).isActive)

        harness.clock.advance(by: 11)
        let reuse = try #require(await harness.service.refresh(token: refresh).oauthError)
        #expect(reuse.code == .invalidGrant)
        #expect(reuse.reason.contains("reuse"))

        #expect(harness.service.introspect(newest.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(issued.accessToken).inactiveReason == .revoked)
        #expect(await harness.service.refresh(token: newestRefresh).oauthError?.code == .invalidGrant)
        // Another sign-in of the same user is untouched.
        let other = try await harness.issue(refresh: true)
        #expect(harness.service.introspect(other.accessToken).isActive)
        #expect(await harness.service.refresh(token: try other.requiredRefreshToken()).tokens != nil)
        // The store holds the revocation, with its reason.
        let family = try #require(await harness.store.refreshFamily(id: try issued.requiredFamilyID()))
        #expect(family.revokedAt != nil)
        let restarted = try await harness.restarted()
        #expect(restarted.service.introspect(newest.accessToken).inactiveReason == .revoked)
    }

    @Test("a retry of a spent token whose successor was already used is reuse, not a replay")
    func replayAfterSuccessorUsed() async throws {
        let (harness, _, refresh) = try await Self.signedIn()
        let second = try #require(await harness.service.refresh(token: refresh).tokens)
        harness.clock.advance(by: 2)
        let third = try #require(await harness.service.refresh(token: try second.requiredRefreshToken()).tokens)
        harness.clock.advance(by: 2)
        // The first token again, inside its grace window but after its successor was spent:
        // whoever holds it did not lose the response, so it is a stolen copy.
        let stale = await harness.service.refresh(token: refresh)
        let stolen = try stale.tokens?.requiredRefreshToken()
        let chained = await harness.service.refresh(token: stolen ?? "")
        #expect(stale.oauthError?.code == .invalidGrant, "\(stale)")
        #expect(!harness.service.introspect(third.accessToken).isActive)
        // Worse: the replayed (spent) successor replays in turn, handing over the live pair.
        #expect(
            chained.tokens?.refreshToken != third.refreshToken,
            "the stale token's holder got the live refresh token"
        )
    }

    @Test("of 32 concurrent refreshes of one token, all get the same single successor")
    func concurrentRefreshes() async throws {
        let (harness, _, refresh) = try await Self.signedIn()
        let service = harness.service
        let results = await withTaskGroup(of: Result<IssuedTokens, OAuthError>.self) { group in
            for _ in 0..<32 { group.addTask { await service.refresh(token: refresh) } }
            var results: [Result<IssuedTokens, OAuthError>] = []
            for await result in group { results.append(result) }
            return results
        }
        let successes = results.compactMap(\.tokens)
        #expect(successes.count == 32, "failures: \(results.compactMap(\.oauthError))")
        #expect(Set(successes.compactMap(\.refreshToken)).count == 1)
        #expect(Set(successes.map(\.accessToken)).count == 1)

        // The one successor works and the family lives on.
        let successor = try #require(successes.first?.refreshToken)
        harness.clock.advance(by: 11)
        let next = try #require(await harness.service.refresh(token: successor).tokens)
        #expect(harness.service.introspect(next.accessToken).isActive)
        let family = try #require(await harness.store.refreshFamily(id: try next.requiredFamilyID()))
        #expect(family.revokedAt == nil)
    }

    @Test("the scope may be narrowed; widening it is invalid_scope and spends nothing")
    func scope() async throws {
        let (harness, _, refresh) = try await Self.signedIn(scope: ["read", "write"])
        let wider = try #require(await harness.service.refresh(token: refresh, scope: ["read", "admin"]).oauthError)
        #expect(wider.code == .invalidScope)

        let narrow = try #require(await harness.service.refresh(token: refresh, scope: ["read"]).tokens)
        #expect(narrow.scope == "read")
        #expect(harness.service.introspect(narrow.accessToken).activeToken?.scope == "read")
        #expect(try Compact.claims(narrow.accessToken)["scope"]?.stringValue == "read")

        // Without a scope, the family's whole grant comes back.
        let whole = try #require(await harness.service.refresh(token: try narrow.requiredRefreshToken()).tokens)
        #expect(whole.scope == "read write")
    }

    @Test("a refresh token presented by another client is invalid_grant")
    func wrongClient() async throws {
        let (harness, _, refresh) = try await Self.signedIn()
        let error = try #require(await harness.service.refresh(token: refresh, clientID: "intruder").oauthError)
        #expect(error.code == .invalidGrant)
        #expect(await harness.service.refresh(token: refresh, clientID: "client-1").tokens != nil)
    }

    @Test(
        "unknown and malformed refresh tokens are invalid_grant",
        arguments: [
            "", "garbage", String(repeating: "A", count: 43), String(repeating: "A", count: 44),
            String(repeating: "A", count: 51), String(repeating: "A", count: 50) + "!",
            "eyJhbGciOiJFUzI1NiJ9.e30.sig",
        ]
    )
    func unknownToken(text: String) async throws {
        let (harness, _, _) = try await Self.signedIn()
        let error = try #require(await harness.service.refresh(token: text).oauthError)
        #expect(error.code == .invalidGrant)
    }

    @Test(
        "a refresh token keyed by its SHA-256 alone (issued before keys were in issue order) rotates on, to one in issue order"
    )
    func tokenFromBeforeIssueOrder() async throws {
        let store = InMemoryTokenStore(keysRefreshTokensInIssueOrder: false)
        let before = try await Harness.make(store: store)
        let legacy = try await before.issue(scope: ["read"], refresh: true).requiredRefreshToken()
        #expect(legacy.utf8.count == 43)
        // Kept under its SHA-256, as every tokend before v5 kept it.
        #expect(try await store.refreshToken(hash: SHA256.hash(Array(legacy.utf8))).token != nil)
        let after = try await Harness.make(
            store: IssueOrderedKeys(forwarded: store),
            clock: before.clock,
            storage: before.storage
        )
        after.clock.advance(by: 60)
        let next = try #require(await after.service.refresh(token: legacy).tokens)
        let successor = try next.requiredRefreshToken()
        #expect(successor.utf8.count == 51)
        // Inside the grace window the legacy token gets the same pair; the successor rotates on.
        #expect(await after.service.refresh(token: legacy).tokens?.refreshToken == successor)
        after.clock.advance(by: 60)
        let third = try #require(await after.service.refresh(token: successor).tokens)
        // Reuse of the legacy token now revokes the family, whichever kind of key it has.
        after.clock.advance(by: 60)
        #expect(await after.service.refresh(token: legacy).oauthError?.code == .invalidGrant)
        #expect(!after.service.introspect(third.accessToken).isActive)
    }

    @Test("over SQLite, refresh tokens begin with their issue time and their keys grow in issue order")
    func issueOrderOverSQLite() async throws {
        let directory = try TemporaryDirectory(prefix: "order")
        let store = try await SQLiteTokenStore.open(
            path: directory.path + "/tokend.db",
            logger: StoreFixtures.quietLogger
        )
        let harness = try await Harness.make(store: store)
        var token = try await harness.issue(scope: ["read"], refresh: true).requiredRefreshToken()
        for _ in 0..<8 {
            // The issue time in milliseconds, big-endian, is the first 8 characters.
            let time = try Base64URL.decode(token.prefix(8)).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(time == UInt64(harness.clock.now * 1000))
            harness.clock.advance(by: 1.5)
            token = try #require(await harness.service.refresh(token: token).tokens).requiredRefreshToken()
        }
        #expect(try await store.integerForTesting("SELECT count(*) FROM refresh_tokens") == 9)
        let outOfOrder = """
            SELECT count(*) FROM refresh_tokens a JOIN refresh_tokens b ON b.rowid = a.rowid + 1
            WHERE b.hash <= a.hash
            """
        #expect(try await store.integerForTesting(outOfOrder) == 0, "each key sorts after the one issued before it")
        try await store.close()
    }

    @Test("a family ends at its absolute lifetime")
    func familyExpiry() async throws {
        let (harness, _, refresh) = try await Self.signedIn(.test(refreshPolicy: .oneDay))
        harness.clock.advance(by: 86_400 - 1)
        let late = try #require(await harness.service.refresh(token: refresh).tokens)
        harness.clock.advance(by: 1)
        let error = try #require(await harness.service.refresh(token: try late.requiredRefreshToken()).oauthError)
        #expect(error.code == .invalidGrant)
        #expect(error.reason.contains("expired"))
    }

    @Test("logout ends refresh too; a sign-in after the logout refreshes")
    func logoutEndsRefresh() async throws {
        let (harness, _, refresh) = try await Self.signedIn()
        harness.clock.advance(by: 0.25)
        try await harness.service.logout(subject: "user-1")
        let error = try #require(await harness.service.refresh(token: refresh).oauthError)
        #expect(error.code == .invalidGrant)

        harness.clock.advance(by: 0.25)
        let again = try await harness.issue(refresh: true)
        let next = try #require(await harness.service.refresh(token: try again.requiredRefreshToken()).tokens)
        #expect(harness.service.introspect(next.accessToken).isActive)
    }

    @Test("revoking a refresh token ends its family and the family's access tokens")
    func revokeRefreshToken() async throws {
        let (harness, issued, refresh) = try await Self.signedIn()
        let second = try #require(await harness.service.refresh(token: refresh).tokens)
        let other = try await harness.issue(refresh: true)

        try await harness.service.revoke(token: try second.requiredRefreshToken(), hint: "refresh_token")
        #expect(harness.service.introspect(issued.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(second.accessToken).inactiveReason == .revoked)
        #expect(
            await harness.service.refresh(token: try second.requiredRefreshToken()).oauthError?.code == .invalidGrant
        )
        // Revoking twice is fine (RFC 7009), and other families are untouched.
        try await harness.service.revoke(token: try second.requiredRefreshToken(), hint: nil)
        #expect(harness.service.introspect(other.accessToken).isActive)
        #expect(await harness.service.refresh(token: try other.requiredRefreshToken()).tokens != nil)
    }

    @Test("with the store down, refresh answers temporarily_unavailable and introspection still answers")
    func storeDown() async throws {
        let store = OutageStore()
        let harness = try await Harness.make(store: store)
        let issued = try await harness.issue(refresh: true)
        store.failing = true
        let error = try #require(await harness.service.refresh(token: try issued.requiredRefreshToken()).oauthError)
        #expect(error.code == .temporarilyUnavailable)
        #expect(harness.service.introspect(issued.accessToken).isActive)
        let issue = await #expect(throws: ServiceError.self) { try await harness.issue(refresh: true) }
        #expect(issue?.code == .unavailable)

        store.failing = false
        #expect(await harness.service.health().healthy)
        #expect(await harness.service.refresh(token: try issued.requiredRefreshToken()).tokens != nil)
    }
}

/// The store of an upgraded tokend over what an older one wrote: refresh tokens it issues are
/// keyed in issue order.
private struct IssueOrderedKeys: ForwardingTokenStore {
    let forwarded: any TokenStore
    var keysRefreshTokensInIssueOrder: Bool { true }
}
