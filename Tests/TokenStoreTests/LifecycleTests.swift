import CodedErrors
import Testing
import TokenStore
import TokenTestSupport

@Suite("Health, outages and closing")
struct LifecycleTests {
    let now = StoreFixtures.now

    @Test("a fresh store is healthy", arguments: StoreKind.allCases)
    func healthy(kind: StoreKind) async throws {
        try await withStore(kind) { store in #expect(await store.health() == StoreHealth()) }
    }

    @Test("after close every call throws unavailable", arguments: StoreKind.allCases)
    func closed(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.close()
            try await expectEveryCallUnavailable(store)
            try await store.close()  // closing twice is harmless
        }
    }

    @Test("FailingTokenStore throws unavailable from every call")
    func failingStore() async throws {
        let store = FailingTokenStore(reason: "disk gone")
        try await expectEveryCallUnavailable(store)
        #expect(await store.health() == StoreHealth(reads: "disk gone", writes: "disk gone"))
    }

    @Test("an in-memory outage is unavailable until it ends")
    func inMemoryOutage() async throws {
        let store = InMemoryTokenStore()
        await store.setUnavailable("simulated outage")
        try await expectEveryCallUnavailable(store)
        await store.setUnavailable(nil)
        #expect(await store.health() == StoreHealth())
        try await store.revokeKey(kid: "k", at: now, reason: "r")
    }

    private func expectEveryCallUnavailable(_ store: any TokenStore) async throws {
        let unavailable = TokenStoreError.unavailable("")
        let family = StoreFixtures.family()
        let health = await store.health()
        #expect(health.reads != nil && health.writes != nil, "\(health)")
        await #expect(throws: unavailable) { _ = try await store.loadRevocations(now: now) }
        await #expect(throws: unavailable) {
            try await store.revokeAccessToken(jti: "j", subject: nil, expiresAt: now, at: now, reason: "r")
        }
        await #expect(throws: unavailable) {
            try await store.setSubjectCutoff(subject: "s", notBefore: now, reason: "r")
        }
        await #expect(throws: unavailable) { try await store.revokeKey(kid: "k", at: now, reason: "r") }
        await #expect(throws: unavailable) {
            try await store.createRefreshFamily(family, firstToken: StoreFixtures.activeToken("rt-0"))
        }
        await #expect(throws: unavailable) { _ = try await store.peek(StoreFixtures.hash("rt-0")) }
        await #expect(throws: unavailable) { try await store.revokeRefreshFamily(id: "f", at: now, reason: "r") }
        await #expect(throws: unavailable) { _ = try await store.refreshFamily(id: "f") }
        await #expect(throws: unavailable) { _ = try await store.events(after: 0, limit: 10) }
        await #expect(throws: unavailable) {
            try await store.appendEvent(kind: "k", subject: nil, detail: "d", at: now)
        }
        await #expect(throws: unavailable) { _ = try await store.compact(now: now) }
    }
}
