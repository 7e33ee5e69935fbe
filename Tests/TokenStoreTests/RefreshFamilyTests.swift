import CodedErrors
import Testing
import TokenStore
import TokenTestSupport

@Suite("Refresh families: creation, reading, ending")
struct RefreshFamilyTests {
    let now = StoreFixtures.now

    @Test("a created family and its first token read back as written", arguments: StoreKind.allCases)
    func roundTrip(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let family = StoreFixtures.family()
            let token = StoreFixtures.activeToken("rt-0")
            try await store.createRefreshFamily(family, firstToken: token)
            #expect(try await store.refreshFamily(id: family.id) == family)
            #expect(try await store.peek(token.hash) == Seen(token: token, family: family))
            let events = try await store.allEvents()
            #expect(events.count == 1)
            #expect(events.first?.kind == "family_created")
            #expect(events.first?.subject == "user-1")
            #expect(events.first?.at == family.createdAt)
            #expect(events.first?.detail == "family=fam-1 client=client-1 dialect=native")
        }
    }

    @Test("every optional field survives storage", arguments: StoreKind.allCases)
    func optionalFields(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            var family = StoreFixtures.family(lastAccessJTI: nil)
            family.lastAccessExpiresAt = nil
            family.revokedAt = now + 0.25
            family.revokedReason = "created revoked"
            let token = RefreshTokenRecord(
                hash: StoreFixtures.hash("rt-0"),
                familyID: family.id,
                state: .spent,
                createdAt: now + 0.5,
                spentAt: now + 1.5,
                successorHash: StoreFixtures.hash("rt-1"),
                successorSealed: [0, 1, 2, 255]
            )
            try await store.createRefreshFamily(family, firstToken: token)
            #expect(try await store.refreshFamily(id: family.id) == family)
            #expect(try await store.peek(token.hash).token == token)
        }
    }

    @Test("an unknown family or token reads as nil", arguments: StoreKind.allCases)
    func unknown(kind: StoreKind) async throws {
        try await withStore(kind) { store throws in
            #expect(try await store.refreshFamily(id: "nope") == nil)
            #expect(try await store.peek(StoreFixtures.hash("nope")) == Seen(token: nil, family: nil))
            #expect(try await store.allEvents().isEmpty)
        }
    }

    @Test("a duplicate family id or token hash is a conflict", arguments: StoreKind.allCases)
    func duplicates(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.createRefreshFamily(StoreFixtures.family(), firstToken: StoreFixtures.activeToken("rt-0"))
            await #expect(throws: TokenStoreError.conflict("")) {
                try await store.createRefreshFamily(
                    StoreFixtures.family(subject: "other"),
                    firstToken: StoreFixtures.activeToken("rt-other")
                )
            }
            await #expect(throws: TokenStoreError.conflict("")) {
                try await store.createRefreshFamily(
                    StoreFixtures.family(id: "fam-2"),
                    firstToken: StoreFixtures.activeToken("rt-0", familyID: "fam-2")
                )
            }
            #expect(try await store.refreshFamily(id: "fam-2") == nil)
            #expect(try await store.refreshFamily(id: "fam-1")?.subject == "user-1")
            #expect(try await store.allEvents().count == 1)
        }
    }

    @Test("a token of another family, or a hash that is not SHA-256, is refused", arguments: StoreKind.allCases)
    func validation(kind: StoreKind) async throws {
        try await withStore(kind) { store throws in
            await #expect(throws: TokenStoreError.conflict("")) {
                try await store.createRefreshFamily(
                    StoreFixtures.family(),
                    firstToken: StoreFixtures.activeToken("rt-0", familyID: "fam-9")
                )
            }
            let plaintextLike = RefreshTokenRecord(
                hash: Array("not-a-hash-but-a-token".utf8),
                familyID: "fam-1",
                state: .active,
                createdAt: now
            )
            let error = await #expect(throws: TokenStoreError.self) {
                try await store.createRefreshFamily(StoreFixtures.family(), firstToken: plaintextLike)
            }
            #expect(error?.code == .conflict)
            #expect(error?.description.contains("not-a-hash") == false)
            #expect(try await store.refreshFamily(id: "fam-1") == nil)
        }
    }

    @Test("revoking a family ends it once; unknown ids change nothing", arguments: StoreKind.allCases)
    func revokeFamily(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.createRefreshFamily(StoreFixtures.family(), firstToken: StoreFixtures.activeToken("rt-0"))
            try await store.revokeRefreshFamily(id: "fam-1", at: now + 10, reason: "logout")
            try await store.revokeRefreshFamily(id: "fam-1", at: now + 20, reason: "logout again")
            try await store.revokeRefreshFamily(id: "nope", at: now + 30, reason: "unknown")
            let family = try #require(try await store.refreshFamily(id: "fam-1"))
            #expect(family.revokedAt == now + 10)
            #expect(family.revokedReason == "logout")
            let events = try await store.allEvents()
            #expect(events.map(\.kind) == ["family_created", "family_revoked"])
            #expect(events.last?.detail == "family=fam-1 reason=logout")
            #expect(events.last?.subject == "user-1")
            #expect(try await store.loadRevocations(now: now).revokedFamilies == ["fam-1": now + 2_592_000])
        }
    }
}
