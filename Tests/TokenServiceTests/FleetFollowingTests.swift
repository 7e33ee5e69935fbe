import JOSE
import Testing
import TokenService
import TokenStore
import TokenTestSupport

/// Issue 12, one node's side: what it does with the followed events another node wrote, and
/// when it stops vouching for tokens (`TOKEND_MAX_STALENESS`).
@Suite("A node follows the fleet's event log")
struct FleetFollowingTests {
    static func harness(_ store: ScriptedFleetStore, maxStaleness: Double = 2) async throws -> Harness {
        var configuration = ServiceConfiguration.test()
        configuration.maxStaleness = maxStaleness
        return try await Harness.make(configuration, store: store)
    }

    static func revokeAccess(_ jti: String, exp: Double) -> String { "jti=\(jti) exp=\(Int64(exp)) reason=by b" }

    @Test(
        "an event behind an open transaction is applied at once, the cursor stays before it, and it is not applied again"
    )
    func cursorStaysBeforeAnOpenTransaction() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let service = harness.service
        let revoked = try await harness.issue("user-r")
        let signedOut = try await harness.issue("user-s")
        #expect(service.introspect(revoked.accessToken).activeToken != nil)
        #expect(service.introspect(signedOut.accessToken).activeToken != nil)
        let start = try #require(service.follower?.cursor)

        // Node b's revocation, committed behind a transaction still open (not final).
        let later = FollowCursor(transaction: start.transaction + 5, sequence: 9)
        store.publish(
            TokenEvent.Kind.revokeAccess,
            Self.revokeAccess(revoked.jti, exp: revoked.expiresAt),
            at: later,
            final: false
        )
        #expect(try await service.catchUp() == 1)
        #expect(service.introspect(revoked.accessToken).activeToken == nil, "the cached answer was served")
        #expect(service.follower?.cursor == start, "the cursor passed an event that is not final")

        // The open transaction commits its own event (a lower position); now both are final.
        let earlier = FollowCursor(transaction: start.transaction + 2, sequence: 12)
        store.publish(
            TokenEvent.Kind.subjectCutoff,
            subject: "user-s",
            "not_before=\(Int64(harness.clock.now)) reason=logout",
            at: earlier,
            final: true
        )
        store.publish(
            TokenEvent.Kind.revokeAccess,
            Self.revokeAccess(revoked.jti, exp: revoked.expiresAt),
            at: later,
            final: true
        )
        #expect(try await service.catchUp() == 1, "only the new event is applied")
        #expect(service.introspect(signedOut.accessToken).activeToken == nil)
        #expect(service.follower?.cursor == later)
        #expect(service.follower?.applied == 2)
        #expect(try await service.catchUp() == 0)
    }

    @Test("a node that has not caught up within the bound answers unavailable, and serves again once it has")
    func staleness() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store, maxStaleness: 2)
        let service = harness.service
        let token = try await harness.issue()
        #expect(service.introspect(token.accessToken).activeToken != nil)

        store.logUnreadable = true
        harness.clock.advance(by: 1.5)
        await #expect(throws: TokenStoreError.self) { try await service.catchUp() }
        #expect(service.introspect(token.accessToken).activeToken != nil, "within the bound memory answers")
        harness.clock.advance(by: 1)
        guard case .unavailable(let reason) = service.introspect(token.accessToken) else {
            Issue.record("a node 2.5 s behind with a 2 s bound vouched for a token")
            return
        }
        #expect(reason.contains("behind the fleet by 2 s"), "\(reason)")
        let health = await service.health()
        #expect(health.status == .unavailable)
        #expect(health.reason.contains("fleet failing (behind the fleet by 2 s"), "\(health.reason)")
        #expect(service.noteFreshness())

        store.logUnreadable = false
        try await service.catchUp()
        #expect(service.introspect(token.accessToken).activeToken != nil)
        #expect(await service.health().fleet == nil)
        #expect(!service.noteFreshness())
    }

    @Test("0 never refuses, however long the node has not caught up")
    func zeroNeverRefuses() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store, maxStaleness: 0)
        let token = try await harness.issue()
        store.logUnreadable = true
        harness.clock.advance(by: 600)
        #expect(harness.service.introspect(token.accessToken).activeToken != nil)
    }

    @Test("an event whose detail this node cannot read reloads every revocation instead of guessing")
    func unreadableDetailReloads() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let token = try await harness.issue()
        #expect(harness.service.introspect(token.accessToken).activeToken != nil)
        // Node b revoked it (in the store), and its event's detail has an unknown form.
        try await store.memory.revokeAccessToken(
            jti: token.jti,
            subject: "user-1",
            expiresAt: token.expiresAt,
            at: harness.clock.now,
            reason: "by b"
        )
        let start = try #require(harness.service.follower?.cursor)
        store.publish(
            TokenEvent.Kind.revokeAccess,
            "jti=\(token.jti) reason=by b, exp= missing",
            at: FollowCursor(transaction: start.transaction + 1, sequence: 3),
            final: true
        )
        try await harness.service.catchUp()
        #expect(harness.service.introspect(token.accessToken).activeToken == nil)
    }

    @Test(
        "a key revoked by another node between this node's keyring load and its follow cursor is applied at the first catch-up"
    )
    func keyringChangeBeforeTheCursor() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let tokens = try await harness.issue("user-k")
        #expect(harness.service.introspect(tokens.accessToken).activeToken != nil)

        // Another node, on the same keyring, revokes the key: its event is behind this node's
        // cursor (no event is published here), so only the start's own reload can find it.
        let other = try await Keyring(
            storage: harness.storage,
            configuration: harness.configuration,
            clock: harness.clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
        _ = try await other.revoke(kid: harness.currentKid)
        #expect(try await harness.service.catchUp() == 0)
        #expect(harness.service.introspect(tokens.accessToken).activeToken == nil)
    }
}
