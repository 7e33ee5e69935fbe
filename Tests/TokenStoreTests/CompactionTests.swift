import Synchronization
import Testing
import TokenStore
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("compact removes only what has expired")
struct CompactionTests {
    let now = StoreFixtures.now

    @Test("expired revocations and families go; live ones, cutoffs and keys stay", arguments: StoreKind.allCases)
    func removesOnlyExpired(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.revokeAccessToken(jti: "gone", subject: nil, expiresAt: now - 1, at: now - 10, reason: "r")
            try await store.revokeAccessToken(jti: "edge", subject: nil, expiresAt: now, at: now - 10, reason: "r")
            try await store.revokeAccessToken(jti: "kept", subject: nil, expiresAt: now + 1, at: now - 10, reason: "r")
            try await store.setSubjectCutoff(subject: "user-1", notBefore: now - 99_999_999, reason: "r")
            try await store.revokeKey(kid: "k", at: now - 99_999_999, reason: "r")

            // Over: refresh lifetime and newest access token both past; rotated once (two tokens).
            let over = StoreFixtures.family(
                id: "over",
                createdAt: now - 1000,
                lifetime: 500,
                lastAccessExpiresAt: now - 1
            )
            let overFirst = StoreFixtures.activeToken("over-0", familyID: "over", createdAt: now - 1000)
            try await store.createRefreshFamily(over, firstToken: overFirst)
            try await store.updateRefreshToken(hash: overFirst.hash, now: now - 900) { token, _ in
                RefreshDecision(
                    change: rotation(of: token!, to: "over-1", at: now - 900, accessJTI: "j", accessLifetime: 100),
                    outcome: ()
                )
            }
            // Refresh lifetime over, but its newest access token still lives: kept.
            let lingering = StoreFixtures.family(
                id: "lingering",
                createdAt: now - 1000,
                lifetime: 500,
                lastAccessExpiresAt: now + 100
            )
            try await store.createRefreshFamily(
                lingering,
                firstToken: StoreFixtures.activeToken("lingering", familyID: "lingering")
            )
            try await store.revokeRefreshFamily(id: "lingering", at: now - 600, reason: "logout")
            let live = StoreFixtures.family(id: "live")
            try await store.createRefreshFamily(live, firstToken: StoreFixtures.activeToken("live", familyID: "live"))

            let removed = try await store.compact(now: now)
            #expect(removed == 2 + 1 + 2)

            let snapshot = try await store.loadRevocations(now: now - 100)
            #expect(snapshot.revokedAccessTokens == ["kept": now + 1])
            #expect(snapshot.subjectCutoffs == ["user-1": now - 99_999_999])
            #expect(snapshot.revokedKeys == ["k"])
            #expect(snapshot.revokedFamilies == ["lingering": now + 100], "until its newest access token expires")
            #expect(try await store.refreshFamily(id: "over") == nil)
            #expect(try await store.peek(overFirst.hash) == Seen(token: nil, family: nil))
            #expect(try await store.peek(StoreFixtures.hash("over-1")) == Seen(token: nil, family: nil))
            #expect(try await store.refreshFamily(id: "lingering") != nil)
            #expect(try await store.peek(StoreFixtures.hash("live")).token != nil)

            let last = try #require(try await store.allEvents().last)
            #expect(last.kind == "compacted")
            #expect(last.at == now)
            #expect(last.detail == "access=2 families=1 tokens=2 events=0")

            // Nothing more to do: no rows, no event.
            let events = try await store.allEvents().count
            #expect(try await store.compact(now: now) == 0)
            #expect(try await store.allEvents().count == events)
        }
    }

    @Test("once its last access token expires, a lingering family goes too", arguments: StoreKind.allCases)
    func lingeringFamilyGoesLater(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let family = StoreFixtures.family(createdAt: now - 1000, lifetime: 500, lastAccessExpiresAt: now + 100)
            try await store.createRefreshFamily(family, firstToken: StoreFixtures.activeToken("rt-0"))
            #expect(try await store.compact(now: now) == 0)
            #expect(try await store.compact(now: now + 100) == 2)
            #expect(try await store.refreshFamily(id: family.id) == nil)
        }
    }

    @Test("a big compaction runs in batches that writes slip between, then truncates the WAL")
    func bigCompactionInBatches() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(
                path: path,
                logger: StoreFixtures.quietLogger,
                eventRetention: 3600
            )
            let expired = 45_000
            try await store.executeForTesting(
                """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < \(expired))
                INSERT INTO revoked_access_tokens (jti, subject, expires_at, revoked_at, reason)
                SELECT 'expired-' || i, NULL, \(now - 10), \(now - 100), 'test' FROM n;
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000)
                INSERT INTO events (at, kind, subject, detail) SELECT \(now - 7200), 'old', NULL, 'x' FROM n;
                """
            )
            try await store.revokeAccessToken(jti: "live", subject: nil, expiresAt: now + 60, at: now, reason: "r")

            // While compaction runs, count what is left from the writer connection, whose
            // calls queue behind compaction's transactions: with batches, some see it half done.
            let seen = Mutex<Set<Int64>>([])
            let compaction = Task { try await store.compact(now: now) }
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let left = try await store.integerForTesting("SELECT count(*) FROM revoked_access_tokens") ?? -1
                _ = seen.withLock { $0.insert(left) }
                if left == 1 { break }
                try await store.appendEvent(kind: "meanwhile", subject: nil, detail: "a write", at: now)
            }
            #expect(try await compaction.value == expired + 25_000)
            let counts = seen.withLock { $0 }
            #expect(
                counts.contains { $0 > 1 && $0 < Int64(expired) + 1 },
                "no write ran between compaction's transactions: \(counts.sorted())"
            )
            #expect(try await store.loadRevocations(now: now).revokedAccessTokens == ["live": now + 60])
            let events = try await store.events(after: 0, limit: 100_000)
            #expect(!events.contains { $0.kind == "old" })
            #expect(events.contains { $0.kind == "compacted" })

            var wal = stat()
            #expect(stat(path + "-wal", &wal) == 0)
            #expect(wal.st_size == 0, "the WAL was left at \(wal.st_size) bytes")
            try await store.close()
        }
    }
}
