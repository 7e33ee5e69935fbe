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

    /// Another node's keyring over the same stored keyring.
    static func anotherNodesKeyring(_ harness: Harness) async throws -> Keyring {
        try await Keyring(
            storage: harness.storage,
            configuration: harness.configuration,
            clock: harness.clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
    }

    @Test(
        "an event committed while an older transaction runs is applied once and counts as applied; the older one's event is read when it commits"
    )
    func openTransactionHoldsBackOnlyItself() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let service = harness.service
        let revoked = try await harness.issue("user-r")
        let signedOut = try await harness.issue("user-s")
        #expect(service.introspect(revoked.accessToken).activeToken != nil)
        #expect(service.introspect(signedOut.accessToken).activeToken != nil)
        let start = try #require(service.follower?.position.high)

        // A transaction took its id, wrote a sign-out and has not committed; node b's later
        // revocation has.
        let older = start.transaction + 2
        let earlier = FollowCursor(transaction: older, sequence: 12)
        let later = FollowCursor(transaction: start.transaction + 5, sequence: 9)
        store.running = [older]
        store.publish(
            TokenEvent.Kind.subjectCutoff,
            subject: "user-s",
            "not_before=\(Int64(harness.clock.now)) reason=logout",
            at: earlier
        )
        store.publish(TokenEvent.Kind.revokeAccess, Self.revokeAccess(revoked.jti, exp: revoked.expiresAt), at: later)
        #expect(try await service.catchUp() == 1)
        #expect(service.introspect(revoked.accessToken).activeToken == nil, "the cached answer was served")
        #expect(service.introspect(signedOut.accessToken).activeToken != nil, "not committed yet")
        let position = try #require(service.follower?.position)
        #expect(position.high == later)
        #expect(position.pending == [older])
        #expect(position.covers(later), "--wait for the revocation is satisfied here")
        #expect(!position.covers(earlier), "the running transaction's events are not")
        // Read again, nothing new: the revocation is not applied twice.
        #expect(try await service.catchUp() == 0)
        #expect(service.follower?.applied == 1)

        // The older transaction commits: its event, below the position, is read once.
        store.running = []
        #expect(try await service.catchUp() == 1)
        #expect(service.introspect(signedOut.accessToken).activeToken == nil)
        #expect(service.follower?.position == FollowPosition(high: later))
        #expect(service.follower?.position.covers(earlier) == true)
        #expect(service.follower?.applied == 2)
        #expect(try await service.catchUp() == 0)
    }

    @Test("read from a standby (no list of running transactions), the position stays below the snapshot's xmin")
    func standbyHoldsBackToTheHorizon() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let service = harness.service
        let revoked = try await harness.issue("user-r")
        let signedOut = try await harness.issue("user-s")
        let start = try #require(service.follower?.position.high)
        let older = start.transaction + 2
        let earlier = FollowCursor(transaction: older, sequence: 12)
        let later = FollowCursor(transaction: start.transaction + 5, sequence: 9)
        store.running = [older]
        store.recoveryHorizon = older
        store.publish(
            TokenEvent.Kind.subjectCutoff,
            subject: "user-s",
            "not_before=\(Int64(harness.clock.now)) reason=logout",
            at: earlier
        )
        store.publish(TokenEvent.Kind.revokeAccess, Self.revokeAccess(revoked.jti, exp: revoked.expiresAt), at: later)
        #expect(try await service.catchUp() == 1)
        #expect(service.introspect(revoked.accessToken).activeToken == nil, "applied at once")
        // Nothing says which transactions run: the position may not pass the horizon.
        #expect(service.follower?.position == FollowPosition(high: start))
        #expect(service.follower?.position.covers(later) == false)

        store.running = []
        store.recoveryHorizon = start.transaction + 6
        #expect(try await service.catchUp() == 2, "both read again from the position")
        #expect(service.introspect(signedOut.accessToken).activeToken == nil)
        #expect(service.follower?.position == FollowPosition(high: later))
        #expect(service.follower?.position.covers(earlier) == true)
    }

    @Test(
        "on a standby, more than a page of events above a held-back xmin is read through once, not forever",
        .timeLimit(.minutes(1))
    )
    func standbyPagesPastTheHorizon() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let service = harness.service
        let start = try #require(service.follower?.position.high)
        let tokens = [try await harness.issue("user-first"), try await harness.issue("user-last")]
        store.recoveryHorizon = start.transaction + 1
        // 501 events (a page is 500), all of transactions at or above the horizon.
        let count = 501
        for index in 0..<count {
            let jti = index == 0 ? tokens[0].jti : index == count - 1 ? tokens[1].jti : "other-\(index)"
            store.publish(
                TokenEvent.Kind.revokeAccess,
                Self.revokeAccess(jti, exp: tokens[0].expiresAt),
                at: FollowCursor(transaction: start.transaction + 2 + Int64(index), sequence: Int64(index + 1))
            )
        }
        #expect(try await service.catchUp() == count)
        for token in tokens { #expect(service.introspect(token.accessToken).activeToken == nil) }
        #expect(service.follower?.position == FollowPosition(high: start), "none of them is below the horizon")
    }

    @Test("a transaction that ends without a followed event stops being waited for; one above the position is not")
    func runningTransactionsAboveThePosition() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let service = harness.service
        let start = try #require(service.follower?.position.high)
        // Running, and above every event read: nothing to hold back.
        store.running = [start.transaction + 50]
        let token = try await harness.issue("user-a")
        let event = FollowCursor(transaction: start.transaction + 10, sequence: 1)
        store.running = [start.transaction + 3, start.transaction + 50]
        store.publish(TokenEvent.Kind.revokeAccess, Self.revokeAccess(token.jti, exp: token.expiresAt), at: event)
        #expect(try await service.catchUp() == 1)
        #expect(service.follower?.position == FollowPosition(high: event, pending: [start.transaction + 3]))
        // It rolls back (or commits nothing followed): it is no longer waited for.
        store.running = [start.transaction + 50]
        #expect(try await service.catchUp() == 0)
        #expect(service.follower?.position == FollowPosition(high: event))
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
        let start = try #require(harness.service.follower?.position.high)
        store.publish(
            TokenEvent.Kind.revokeAccess,
            "jti=\(token.jti) reason=by b, exp= missing",
            at: FollowCursor(transaction: start.transaction + 1, sequence: 3)
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
        let other = try await Self.anotherNodesKeyring(harness)
        _ = try await other.revoke(kid: harness.currentKid)
        #expect(try await harness.service.catchUp() == 0)
        #expect(harness.service.introspect(tokens.accessToken).activeToken == nil)
    }

    @Test("a key change is not counted as applied (for --wait) until the keyring is reloaded with it")
    func keyChangeWaitsForTheReload() async throws {
        let store = ScriptedFleetStore()
        let harness = try await Self.harness(store)
        let tokens = try await harness.issue("user-k")
        try await harness.service.catchUp()
        let before = try #require(harness.service.follower?.position)

        let other = try await Self.anotherNodesKeyring(harness)
        _ = try await other.revoke(kid: harness.currentKid)
        let event = FollowCursor(transaction: before.high.transaction + 1, sequence: 7)
        store.publish(TokenEvent.Kind.revokeKey, "kid=\(harness.currentKid) reason=by b", at: event)
        // The keyring cannot be read: the event is read, but the position stays before it.
        harness.storage.refuseLocks = true
        harness.storage.refuseLoads = true
        await #expect(throws: (any Error).self) { try await harness.service.catchUp() }
        #expect(harness.service.follower?.position.covers(event) == false, "a wait would trust a key still in use")

        harness.storage.refuseLocks = false
        harness.storage.refuseLoads = false
        try await harness.service.catchUp()
        #expect(harness.service.follower?.position.covers(event) == true)
        #expect(harness.service.introspect(tokens.accessToken).activeToken == nil)
    }

    @Test("--wait: every written position must be covered; with none, no ended transaction may be held back")
    func waitDecision() {
        let newest = FollowCursor(transaction: 101, sequence: 5)
        let earlier = FollowCursor(transaction: 100, sequence: 4)
        let holding = FollowPosition(high: newest, pending: [100])
        // Written positions: each one, not only the newest.
        #expect(TokenService.applied(holding, targets: [newest], runningAtStart: nil))
        #expect(!TokenService.applied(holding, targets: [earlier, newest], runningAtStart: nil))
        // Nothing written: up to the newest event, and transaction 100 only if still running.
        #expect(TokenService.applied(holding, targets: [newest], runningAtStart: [100, 130]))
        #expect(
            !TokenService.applied(holding, targets: [newest], runningAtStart: [130]),
            "100 ended: it may hold the change"
        )
        #expect(TokenService.applied(FollowPosition(high: newest), targets: [newest], runningAtStart: []))
        #expect(!TokenService.applied(FollowPosition(high: earlier), targets: [newest], runningAtStart: []))
    }
}
