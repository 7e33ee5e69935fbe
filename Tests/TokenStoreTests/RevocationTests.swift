import Testing
import TokenStore
import TokenTestSupport

@Suite("Revocations: access tokens, subjects, keys and the start-up snapshot")
struct RevocationTests {
    let now = StoreFixtures.now

    @Test("a revoked access token comes back in the snapshot with its exp", arguments: StoreKind.allCases)
    func accessRoundTrip(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.revokeAccessToken(
                jti: "jti-a",
                subject: "user-1",
                expiresAt: now + 600,
                at: now,
                reason: "client revoked"
            )
            let snapshot = try await store.loadRevocations(now: now)
            #expect(snapshot.revokedAccessTokens == ["jti-a": now + 600])
            let events = try await store.allEvents()
            #expect(events.map(\.kind) == ["revoke_access"])
            #expect(events.first?.subject == "user-1")
            #expect(events.first?.at == now)
            #expect(events.first?.detail == "jti=jti-a exp=1700000600 reason=client revoked")
        }
    }

    @Test("revoking an access token twice is one revocation and one event", arguments: StoreKind.allCases)
    func accessIdempotent(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.revokeAccessToken(jti: "jti-a", subject: nil, expiresAt: now + 600, at: now, reason: "r")
            try await store.revokeAccessToken(
                jti: "jti-a",
                subject: nil,
                expiresAt: now + 600,
                at: now + 1,
                reason: "r"
            )
            try await store.revokeAccessToken(
                jti: "jti-a",
                subject: nil,
                expiresAt: now + 300,
                at: now + 2,
                reason: "r"
            )
            #expect(try await store.loadRevocations(now: now).revokedAccessTokens == ["jti-a": now + 600])
            #expect(try await store.allEvents().count == 1)

            // A later exp extends the revocation, and that change is logged.
            try await store.revokeAccessToken(
                jti: "jti-a",
                subject: nil,
                expiresAt: now + 900,
                at: now + 3,
                reason: "r"
            )
            #expect(try await store.loadRevocations(now: now).revokedAccessTokens == ["jti-a": now + 900])
            #expect(try await store.allEvents().count == 2)
        }
    }

    @Test("the snapshot leaves out access revocations whose token has expired", arguments: StoreKind.allCases)
    func snapshotExcludesExpiredAccess(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.revokeAccessToken(jti: "past", subject: nil, expiresAt: now - 1, at: now - 100, reason: "r")
            try await store.revokeAccessToken(jti: "edge", subject: nil, expiresAt: now, at: now - 100, reason: "r")
            try await store.revokeAccessToken(jti: "live", subject: nil, expiresAt: now + 1, at: now - 100, reason: "r")
            #expect(try await store.loadRevocations(now: now).revokedAccessTokens == ["live": now + 1])
            // With a leeway, the caller passes an earlier now and gets the recent ones back.
            let lenient = try await store.loadRevocations(now: now - 60)
            #expect(Set(lenient.revokedAccessTokens.keys) == ["past", "edge", "live"])
        }
    }

    @Test("a subject cutoff keeps the later value", arguments: StoreKind.allCases)
    func subjectCutoffKeepsLater(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.setSubjectCutoff(subject: "user-1", notBefore: now, reason: "logout everywhere")
            try await store.setSubjectCutoff(subject: "user-1", notBefore: now - 500, reason: "stale request")
            try await store.setSubjectCutoff(subject: "user-2", notBefore: now - 10, reason: "deactivated")
            #expect(try await store.loadRevocations(now: now).subjectCutoffs == ["user-1": now, "user-2": now - 10])

            try await store.setSubjectCutoff(subject: "user-1", notBefore: now + 100, reason: "again")
            #expect(try await store.loadRevocations(now: now).subjectCutoffs["user-1"] == now + 100)

            let events = try await store.allEvents()
            #expect(events.map(\.kind) == ["subject_cutoff", "subject_cutoff", "subject_cutoff"])
            #expect(events.map(\.subject) == ["user-1", "user-2", "user-1"])
            #expect(events.map(\.at) == [now, now - 10, now + 100])
        }
    }

    @Test("subject cutoffs stay in the snapshot however old", arguments: StoreKind.allCases)
    func subjectCutoffsAlwaysLoaded(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.setSubjectCutoff(subject: "user-1", notBefore: now - 400 * 86_400, reason: "old")
            #expect(try await store.loadRevocations(now: now).subjectCutoffs == ["user-1": now - 400 * 86_400])
            _ = try await store.compact(now: now)
            #expect(try await store.loadRevocations(now: now).subjectCutoffs == ["user-1": now - 400 * 86_400])
        }
    }

    @Test("a revoked key is recorded once and always loaded", arguments: StoreKind.allCases)
    func revokedKeys(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.revokeKey(kid: "kid-1", at: now, reason: "compromised")
            try await store.revokeKey(kid: "kid-1", at: now + 5, reason: "compromised again")
            try await store.revokeKey(kid: "kid-2", at: now + 6, reason: "test")
            #expect(try await store.loadRevocations(now: now + 1_000_000).revokedKeys == ["kid-1", "kid-2"])
            let events = try await store.allEvents()
            #expect(events.map(\.detail) == ["kid=kid-1 reason=compromised", "kid=kid-2 reason=test"])
            #expect(events.allSatisfy { $0.subject == nil && $0.kind == "revoke_key" })
        }
    }

    @Test("the snapshot holds revoked families until everything they issued has expired", arguments: StoreKind.allCases)
    func revokedFamiliesInSnapshot(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            // Ends at now + 100, but its newest access token lives until now + 200.
            let late = StoreFixtures.family(
                id: "late",
                createdAt: now - 1000,
                lifetime: 1100,
                lastAccessExpiresAt: now + 200
            )
            let over = StoreFixtures.family(
                id: "over",
                createdAt: now - 1000,
                lifetime: 500,
                lastAccessExpiresAt: now - 400
            )
            let live = StoreFixtures.family(id: "live", createdAt: now - 1000)
            try await store.createRefreshFamily(late, firstToken: StoreFixtures.activeToken("late", familyID: "late"))
            try await store.createRefreshFamily(over, firstToken: StoreFixtures.activeToken("over", familyID: "over"))
            try await store.createRefreshFamily(live, firstToken: StoreFixtures.activeToken("live", familyID: "live"))
            for id in ["late", "over"] {
                try await store.revokeRefreshFamily(id: id, at: now - 10, reason: "logout")
            }
            #expect(try await store.loadRevocations(now: now).revokedFamilies == ["late": now + 200])
            #expect(try await store.loadRevocations(now: now + 200).revokedFamilies == [:])
        }
    }

    @Test("the snapshot's cursor is the last event's sequence", arguments: StoreKind.allCases)
    func snapshotCursor(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.loadRevocations(now: now).cursor == 0)
            try await store.revokeKey(kid: "k", at: now, reason: "r")
            try await store.appendEvent(kind: "key_rotated", subject: nil, detail: "next=k2", at: now)
            let snapshot = try await store.loadRevocations(now: now)
            #expect(snapshot.cursor == (try await store.allEvents()).last?.sequence)
            #expect(try await store.events(after: snapshot.cursor, limit: 10).isEmpty)
        }
    }
}
