import Testing
import TokenStore
import TokenTestSupport

@Suite("updateRefreshToken: read, decide and change in one transaction")
struct RefreshRotationTests {
    let now = StoreFixtures.now

    /// What one use of a refresh token came to.
    enum Use: Sendable, Equatable {
        case rotated
        case sawSpent
        case unknown
    }

    /// TokenService's rule, reduced: rotate the active token, report anything else.
    static func rotateIfActive(
        _ token: RefreshTokenRecord?,
        _ family: RefreshFamily?,
        next: String,
        at now: Double,
        jti: String
    ) -> RefreshDecision<Use> {
        guard let token, family != nil else { return RefreshDecision(change: .none, outcome: .unknown) }
        guard token.state == .active else { return RefreshDecision(change: .none, outcome: .sawSpent) }
        return RefreshDecision(change: rotation(of: token, to: next, at: now, accessJTI: jti), outcome: .rotated)
    }

    @Test("a rotation spends the token, stores its successor and notes the access token", arguments: StoreKind.allCases)
    func rotate(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            let use = try await store.updateRefreshToken(hash: first.hash, now: now + 5) { token, family in
                Self.rotateIfActive(token, family, next: "rt-1", at: now + 5, jti: "jti-1")
            }
            #expect(use == .rotated)
            try await expectRotated(store, from: first, to: "rt-1", at: now + 5, jti: "jti-1")
        }
    }

    @Test(
        "a rotation to a shorter-lived access token never lowers the family's coverage",
        arguments: StoreKind.allCases
    )
    func coverageNeverShrinks(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            _ = try await store.updateRefreshToken(hash: first.hash, now: now + 5) { token, family in
                Self.rotateIfActive(token, family, next: "rt-1", at: now + 5, jti: "jti-1")
            }
            // The access policy shrank (or the clock stepped back): the next access token ends
            // before the one issued first, which stays valid until now + 3605.
            _ = try await store.updateRefreshToken(hash: StoreFixtures.hash("rt-1"), now: now + 10) { token, _ in
                var change: RefreshDecision<Int>.Change = rotation(
                    of: token!,
                    to: "rt-2",
                    at: now + 10,
                    accessJTI: "jti-2"
                )
                if case .rotate(let spent, let successor, let jti, _) = change {
                    change = .rotate(spent: spent, successor: successor, accessJTI: jti, accessExpiresAt: now + 310)
                }
                return RefreshDecision(change: change, outcome: 0)
            }
            let family = try await store.peek(StoreFixtures.hash("rt-2")).family
            #expect(family?.lastAccessJTI == "jti-2")
            #expect(family?.lastAccessExpiresAt == now + 3605, "the first access token's end still counts")
        }
    }

    @Test("of 32 concurrent uses of one token exactly one rotates, 31 see it spent", arguments: StoreKind.allCases)
    func concurrentUsesRotateOnce(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            let now = now
            let uses = try await withThrowingTaskGroup(of: Use.self) { group in
                for attempt in 0..<32 {
                    group.addTask {
                        try await store.updateRefreshToken(hash: first.hash, now: now + 1) { token, family in
                            Self.rotateIfActive(
                                token,
                                family,
                                next: "rt-1-\(attempt)",
                                at: now + 1,
                                jti: "jti-\(attempt)"
                            )
                        }
                    }
                }
                var uses: [Use] = []
                for try await use in group { uses.append(use) }
                return uses
            }
            #expect(uses.filter { $0 == .rotated }.count == 1)
            #expect(uses.filter { $0 == .sawSpent }.count == 31)

            // One successor exists, and it is the one the spent token names.
            let spent = try #require(try await store.peek(first.hash).token)
            let successorHash = try #require(spent.successorHash)
            #expect(try await store.peek(successorHash).token?.state == .active)
            let rotations = try await store.allEvents().filter { $0.kind == "refresh_rotated" }
            #expect(rotations.count == 1)
            let winner = try #require(rotations.first?.detail.split(separator: "=").last.map(String.init))
            #expect(try await store.refreshFamily(id: "fam-1")?.lastAccessJTI == winner)
        }
    }

    @Test("a decision ending the family records its own event", arguments: StoreKind.allCases)
    func revokeFamilyWithEvent(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            _ = try await store.updateRefreshToken(hash: first.hash, now: now + 1) { token, family in
                Self.rotateIfActive(token, family, next: "rt-1", at: now + 1, jti: "jti-1")
            }
            // Reuse of the spent token: the whole family ends.
            let reused = try await store.updateRefreshToken(hash: first.hash, now: now + 60) { token, family in
                RefreshDecision(
                    change: .revokeFamily(id: token!.familyID, reason: "refresh token reuse"),
                    outcome: true,
                    event: (kind: "refresh_reuse", subject: family?.subject, detail: "family=fam-1 reuse")
                )
            }
            #expect(reused)
            let family = try #require(try await store.refreshFamily(id: "fam-1"))
            #expect(family.revokedAt == now + 60)
            #expect(family.revokedReason == "refresh token reuse")
            let last = try #require(try await store.allEvents().last)
            #expect(last.kind == "refresh_reuse")
            #expect(last.detail == "family=fam-1 reuse")
            #expect(last.subject == "user-1")
            #expect(try await store.allEvents().count == 3)

            // The newest token now sees its family ended.
            #expect(try await store.peek(StoreFixtures.hash("rt-1")).family?.revokedAt == now + 60)
        }
    }

    @Test("a decision ending the family without an event logs family_revoked once", arguments: StoreKind.allCases)
    func revokeFamilyDefaultEvent(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            for _ in 0..<2 {
                try await store.updateRefreshToken(hash: first.hash, now: now + 7) { _, _ in
                    RefreshDecision(change: .revokeFamily(id: "fam-1", reason: "lifetime over"), outcome: ())
                }
            }
            let events = try await store.allEvents()
            #expect(events.map(\.kind) == ["family_created", "family_revoked"])
            #expect(events.last?.detail == "family=fam-1 reason=lifetime over")
            #expect(try await store.refreshFamily(id: "fam-1")?.revokedAt == now + 7)
        }
    }

    @Test("a decision without a change may still log an event", arguments: StoreKind.allCases)
    func eventWithoutChange(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let outcome = try await store.updateRefreshToken(hash: StoreFixtures.hash("unknown"), now: now) {
                token,
                family in
                RefreshDecision(
                    change: .none,
                    outcome: token == nil && family == nil,
                    event: (kind: "refresh_unknown", subject: nil, detail: "unknown refresh token")
                )
            }
            #expect(outcome)
            #expect(try await store.allEvents().map(\.kind) == ["refresh_unknown"])
        }
    }

    struct DecisionFailed: Error, Equatable {}

    @Test("an error thrown by decide comes back unchanged and nothing is written", arguments: StoreKind.allCases)
    func decideThrows(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let first = StoreFixtures.activeToken("rt-0")
            try await store.createRefreshFamily(StoreFixtures.family(), firstToken: first)
            await #expect(throws: DecisionFailed()) {
                try await store.updateRefreshToken(hash: first.hash, now: now) { _, _ -> RefreshDecision<Int> in
                    throw DecisionFailed()
                }
            }
            #expect(try await store.peek(first.hash).token == first)
            #expect(try await store.allEvents().count == 1)
        }
    }

    @Test("a rotation to an existing token is a conflict and changes nothing", arguments: StoreKind.allCases)
    func rotationConflictRollsBack(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let first = StoreFixtures.activeToken("rt-0")
            try await store.createRefreshFamily(StoreFixtures.family(), firstToken: first)
            try await store.createRefreshFamily(
                StoreFixtures.family(id: "fam-2"),
                firstToken: StoreFixtures.activeToken("taken", familyID: "fam-2")
            )
            await #expect(throws: TokenStoreError.conflict("")) {
                try await store.updateRefreshToken(hash: first.hash, now: now + 1) { token, _ in
                    RefreshDecision(
                        change: rotation(of: token!, to: "taken", at: now + 1, accessJTI: "jti-x"),
                        outcome: 0,
                        event: (kind: "refresh_rotated", subject: "user-1", detail: "should not be logged")
                    )
                }
            }
            // The spent-marking that ran before the conflict was rolled back with it.
            #expect(try await store.peek(first.hash).token == first)
            #expect(try await store.refreshFamily(id: "fam-1")?.lastAccessJTI == "jti-0")
            #expect(try await store.peek(StoreFixtures.hash("taken")).token?.familyID == "fam-2")
            #expect(try await store.allEvents().map(\.kind) == ["family_created", "family_created"])
        }
    }

    @Test("a rotation of a token that is not stored, or across families, is a conflict", arguments: StoreKind.allCases)
    func rotationValidation(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let first = StoreFixtures.activeToken("rt-0")
            try await store.createRefreshFamily(StoreFixtures.family(), firstToken: first)
            let ghost = StoreFixtures.activeToken("ghost")
            await #expect(throws: TokenStoreError.conflict("")) {
                try await store.updateRefreshToken(hash: first.hash, now: now) { _, _ in
                    RefreshDecision(change: rotation(of: ghost, to: "rt-1", at: now, accessJTI: "j"), outcome: 0)
                }
            }
            await #expect(throws: TokenStoreError.conflict("")) {
                try await store.updateRefreshToken(hash: first.hash, now: now) { token, _ in
                    var change: RefreshDecision<Int>.Change = rotation(of: token!, to: "rt-1", at: now, accessJTI: "j")
                    if case .rotate(let spent, var successor, let jti, let exp) = change {
                        successor.familyID = "fam-other"
                        change = .rotate(spent: spent, successor: successor, accessJTI: jti, accessExpiresAt: exp)
                    }
                    return RefreshDecision(change: change, outcome: 0)
                }
            }
            #expect(try await store.peek(first.hash).token == first)
            #expect(try await store.peek(StoreFixtures.hash("rt-1")).token == nil)
            #expect(try await store.allEvents().count == 1)
        }
    }

    @Test("decide sees the token's own family", arguments: StoreKind.allCases)
    func decideSeesFamily(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.createRefreshFamily(
                StoreFixtures.family(id: "a", subject: "alice"),
                firstToken: StoreFixtures.activeToken("a", familyID: "a")
            )
            try await store.createRefreshFamily(
                StoreFixtures.family(id: "b", subject: "bob"),
                firstToken: StoreFixtures.activeToken("b", familyID: "b")
            )
            #expect(try await store.peek(StoreFixtures.hash("a")).family?.subject == "alice")
            #expect(try await store.peek(StoreFixtures.hash("b")).family?.subject == "bob")
        }
    }

    @Test(
        "refreshToken(hash:) reads the committed token and its family, and nil for an unknown hash",
        arguments: StoreKind.allCases
    )
    func readWithoutWriting(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            let stored = try await store.refreshToken(hash: first.hash)
            #expect(stored.token == first)
            #expect(stored.family == StoreFixtures.family())
            _ = try await store.updateRefreshToken(hash: first.hash, now: now + 5) { token, family in
                Self.rotateIfActive(token, family, next: "rt-1", at: now + 5, jti: "jti-1")
            }
            #expect(try await store.refreshToken(hash: first.hash).token?.state == .spent)
            #expect(try await store.refreshToken(hash: first.hash).family?.lastAccessJTI == "jti-1")
            #expect(
                try await store.refreshToken(hash: StoreFixtures.hash("unknown"))
                    == StoredRefreshToken(token: nil, family: nil)
            )
            #expect(try await store.allEvents().count == 2, "reading appends nothing")
        }
    }
}
