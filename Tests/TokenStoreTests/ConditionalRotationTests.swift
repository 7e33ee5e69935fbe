import Testing
import TokenStore
import TokenTestSupport

/// `rotateIfCurrent`: the one-step rotation of an active token of an open family. The stores
/// that have it (PostgreSQL, SQLite) must leave what `updateRefreshToken` leaves for the same rotation,
/// and change nothing whenever the decision would not be a rotation; the others answer false.
@Suite("rotateIfCurrent: one step for the common rotation, nothing otherwise")
struct ConditionalRotationTests {
    let now = StoreFixtures.now

    static func rotation(
        of plaintext: String = "rt-0",
        to next: String,
        at now: Double,
        jti: String,
        subjectCutoff: Double? = nil
    ) -> ConditionalRotation {
        ConditionalRotation(
            hash: StoreFixtures.hash(plaintext),
            familyID: "fam-1",
            subject: "user-1",
            subjectCutoff: subjectCutoff,
            successor: StoreFixtures.activeToken(next, createdAt: now),
            successorSealed: Array("sealed successor of \(next)".utf8),
            accessJTI: jti,
            accessExpiresAt: now + 3600,
            now: now
        )
    }

    /// Whether `kind` rotates in one step; the others must answer false and change nothing.
    static func hasOneStep(_ kind: StoreKind) -> Bool { kind != .memory }

    @Test("an active token of an open family rotates, as updateRefreshToken would", arguments: StoreKind.allCases)
    func rotatesLikeTheTransaction(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            let rotated = try await store.rotateIfCurrent(Self.rotation(to: "rt-1", at: now + 5, jti: "jti-1"))
            #expect(rotated == Self.hasOneStep(kind))
            guard rotated else {
                #expect(try await store.peek(first.hash).token == first, "answering false changes nothing")
                #expect(try await store.allEvents().map(\.kind) == ["family_created"])
                return
            }
            try await expectRotated(store, from: first, to: "rt-1", at: now + 5, jti: "jti-1")
        }
    }

    @Test("PostgreSQL: a rotation sent again after its first call committed answers as the first, writing nothing")
    func repeatedCallAnswersAsTheFirst() async throws {
        // What the store does when a connection is lost before the CALL's answer came: it sends
        // the same batch again, which must neither fail nor rotate twice.
        try await withFamily(.postgres) { store, first in
            let rotation = Self.rotation(to: "rt-1", at: now + 5, jti: "jti-1")
            #expect(try await store.rotateIfCurrent(rotation))
            #expect(try await store.rotateIfCurrent(rotation), "the same successor: this rotation, committed")
            try await expectRotated(store, from: first, to: "rt-1", at: now + 5, jti: "jti-1")
            let other = Self.rotation(to: "rt-2", at: now + 6, jti: "jti-2")
            #expect(try await store.rotateIfCurrent(other) == false, "another successor: the token is not current")
            try await expectRotated(store, from: first, to: "rt-1", at: now + 5, jti: "jti-1")
        }
    }

    @Test(
        "one-step rotations after rotations decided in a transaction still note their access token",
        arguments: StoreKind.allCases
    )
    func mixedPathsNoteEveryAccessToken(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            // The transaction's path and the one-step path share statements on the SQLite
            // writer: each must bind its own values to them, whichever ran last.
            var presented = first
            for step in 1...3 {
                let decided: Bool = try await store.updateRefreshToken(hash: presented.hash, now: now + Double(step)) {
                    token,
                    _ in
                    RefreshDecision(
                        change: TokenStoreTests.rotation(
                            of: token!,
                            to: "rt-\(step)",
                            at: now + Double(step),
                            accessJTI: "jti-d\(step)"
                        ),
                        outcome: true
                    )
                }
                #expect(decided)
                #expect(try await store.refreshFamily(id: "fam-1")?.lastAccessJTI == "jti-d\(step)")
                guard Self.hasOneStep(kind) else { return }
                var oneStep = Self.rotation(
                    of: "rt-\(step)",
                    to: "rt-\(step)x",
                    at: now + Double(step) + 0.5,
                    jti: "jti-s\(step)"
                )
                oneStep.accessExpiresAt = now + 7200 + Double(step)
                #expect(try await store.rotateIfCurrent(oneStep))
                let family = try await store.refreshFamily(id: "fam-1")
                #expect(family?.lastAccessJTI == "jti-s\(step)", "step \(step)")
                #expect(family?.lastAccessExpiresAt == now + 7200 + Double(step), "step \(step)")
                presented = try #require(try await store.peek(StoreFixtures.hash("rt-\(step)x")).token)
            }
        }
    }

    @Test(
        "text and blobs are stored as given: non-ASCII, empty, absent",
        arguments: [StoreKind.sqlite, .postgres]
    )
    func valuesRoundTrip(kind: StoreKind) async throws {
        let jti = "jti-é-🔑"
        try await withFamily(kind) { store, first in
            var rotation = Self.rotation(to: "rt-1", at: now + 5, jti: jti)
            rotation.successorSealed = []
            #expect(try await store.rotateIfCurrent(rotation))
            let spent = try await store.peek(first.hash)
            #expect(spent.token?.successorSealed == [], "an empty blob, not NULL")
            #expect(spent.family?.lastAccessJTI == jti)
            let successor = try #require(try await store.peek(StoreFixtures.hash("rt-1")).token)
            #expect(successor.spentAt == nil && successor.successorHash == nil && successor.successorSealed == nil)
            let event = try #require(try await store.allEvents().last)
            #expect(event.detail == "family=fam-1 access_jti=\(jti)")
            #expect(event.subject == "user-1")
        }
    }

    @Test(
        "a spent token, an ended, expired or signed-out family, or another family: false, nothing changed",
        arguments: StoreKind.allCases
    )
    func refusesWhatIsNotARotation(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            #expect(
                try await store.rotateIfCurrent(Self.rotation(to: "rt-1", at: now + 5, jti: "jti-1"))
                    == Self.hasOneStep(kind)
            )
            let before = try await store.allEvents().count

            // The token is spent now (without a one-step rotation it is still active, and every
            // answer is false anyway).
            #expect(try await !store.rotateIfCurrent(Self.rotation(to: "rt-x", at: now + 6, jti: "jti-x")))
            let successor = Self.hasOneStep(kind) ? "rt-1" : "rt-0"
            // Signed out at or after the family's creation.
            #expect(
                try await !store.rotateIfCurrent(
                    Self.rotation(of: successor, to: "rt-2", at: now + 7, jti: "jti-2", subjectCutoff: now)
                )
            )
            // Past the family's end.
            #expect(
                try await !store.rotateIfCurrent(
                    Self.rotation(of: successor, to: "rt-3", at: now + 2_592_000, jti: "jti-3")
                )
            )
            // Named with another family.
            var elsewhere = Self.rotation(of: successor, to: "rt-4", at: now + 8, jti: "jti-4")
            elsewhere.familyID = "fam-2"
            elsewhere.successor.familyID = "fam-2"
            #expect(try await !store.rotateIfCurrent(elsewhere))
            // Ended.
            try await store.revokeRefreshFamily(id: "fam-1", at: now + 9, reason: "logout")
            #expect(
                try await !store.rotateIfCurrent(Self.rotation(of: successor, to: "rt-5", at: now + 10, jti: "jti-5"))
            )
            // Unknown.
            #expect(
                try await !store.rotateIfCurrent(Self.rotation(of: "nobody", to: "rt-6", at: now + 10, jti: "jti-6"))
            )

            for next in ["rt-x", "rt-2", "rt-3", "rt-4", "rt-5", "rt-6"] {
                #expect(try await store.peek(StoreFixtures.hash(next)).token == nil, "no successor \(next)")
            }
            #expect(try await store.peek(StoreFixtures.hash(successor)).token?.state == .active)
            let events = try await store.allEvents()
            #expect(events.count == before + 1, "only the family's end was recorded")
            #expect(events.last?.kind == "family_revoked")
        }
    }

    @Test("of 16 concurrent one-step rotations of one token at most one applies", arguments: StoreKind.allCases)
    func concurrentRotateOnce(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            let now = now
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for attempt in 0..<16 {
                    group.addTask {
                        try await store.rotateIfCurrent(
                            Self.rotation(to: "rt-1-\(attempt)", at: now + 1, jti: "jti-\(attempt)")
                        )
                    }
                }
                var results: [Bool] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(results.filter { $0 }.count == (Self.hasOneStep(kind) ? 1 : 0))
            let rotations = try await store.allEvents().filter { $0.kind == "refresh_rotated" }
            #expect(rotations.count == results.filter { $0 }.count)
            if let winner = rotations.first {
                let spent = try #require(try await store.peek(first.hash).token)
                let successorHash = try #require(spent.successorHash)
                #expect(try await store.peek(successorHash).token?.state == .active)
                #expect(
                    winner.detail.hasSuffix(try #require(try await store.refreshFamily(id: "fam-1")?.lastAccessJTI))
                )
            }
        }
    }

    @Test(
        "48 concurrent rotations of 24 families, every other one ended: each open family rotates once",
        arguments: StoreKind.allCases
    )
    func concurrentFamiliesRotateTogether(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            for index in 0..<24 {
                try await store.createRefreshFamily(
                    StoreFixtures.family(id: "fam-\(index)"),
                    firstToken: StoreFixtures.activeToken("rt-\(index)", familyID: "fam-\(index)")
                )
                if index % 2 == 1 {
                    try await store.revokeRefreshFamily(id: "fam-\(index)", at: now + 1, reason: "logout")
                }
            }
            let now = now
            // Two uses of each token: at most one of each pair may apply.
            let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for use in 0..<48 {
                    let index = use % 24
                    group.addTask {
                        var rotation = Self.rotation(
                            of: "rt-\(index)",
                            to: "rt-\(index)-next-\(use)",
                            at: now + 2,
                            jti: "jti-\(use)"
                        )
                        rotation.familyID = "fam-\(index)"
                        rotation.successor.familyID = "fam-\(index)"
                        return (index, try await store.rotateIfCurrent(rotation))
                    }
                }
                var results: [Int: Int] = [:]
                for try await (index, rotated) in group where rotated { results[index, default: 0] += 1 }
                return results
            }
            guard Self.hasOneStep(kind) else {
                #expect(results.isEmpty)
                return
            }
            #expect(results == Dictionary(uniqueKeysWithValues: stride(from: 0, to: 24, by: 2).map { ($0, 1) }))
            for index in 0..<24 {
                let token = try #require(try await store.peek(StoreFixtures.hash("rt-\(index)")).token)
                #expect(token.state == (index % 2 == 0 ? .spent : .active), "token of fam-\(index)")
                if let next = token.successorHash {
                    #expect(try await store.peek(next).token?.familyID == "fam-\(index)")
                    let family = try await store.refreshFamily(id: "fam-\(index)")
                    #expect(
                        family?.lastAccessJTI.map {
                            token.successorSealed
                                == Array("sealed successor of rt-\(index)-next-\($0.dropFirst(4))".utf8)
                        } == true
                    )
                }
            }
            #expect(try await store.allEvents().filter { $0.kind == "refresh_rotated" }.count == 12)
        }
    }

    @Test(
        "a successor that exists already fails the whole step: the presented token stays active",
        arguments: [StoreKind.sqlite, .postgres]
    )
    func duplicateSuccessorWritesNothing(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            try await store.createRefreshFamily(
                StoreFixtures.family(id: "fam-2"),
                firstToken: StoreFixtures.activeToken("taken", familyID: "fam-2")
            )
            await #expect(throws: (any Error).self) {
                try await store.rotateIfCurrent(Self.rotation(to: "taken", at: now + 5, jti: "jti-1"))
            }
            #expect(try await store.peek(first.hash).token == first)
            #expect(try await store.refreshFamily(id: "fam-1")?.lastAccessJTI == "jti-0")
            #expect(try await store.allEvents().map(\.kind) == ["family_created", "family_created"])
        }
    }

    @Test(
        "a sign-out ends the subject's older families in the store: a node that has not followed it yet cannot rotate",
        arguments: StoreKind.allCases
    )
    func signOutEndsFamiliesInTheStore(kind: StoreKind) async throws {
        try await withFamily(kind) { store, first in
            let later = StoreFixtures.family(id: "fam-2", createdAt: now + 20)
            try await store.createRefreshFamily(later, firstToken: StoreFixtures.activeToken("rt-a", familyID: "fam-2"))
            try await store.setSubjectCutoff(subject: "user-1", notBefore: now + 10, reason: "logout")

            let ended = try #require(try await store.refreshFamily(id: "fam-1"))
            #expect(ended.revokedAt == now + 10)
            #expect(ended.revokedReason == "logout")
            #expect(try await store.refreshFamily(id: "fam-2")?.revokedAt == nil, "signed in again after the cutoff")

            // A node whose memory lacks the cutoff (subjectCutoff nil) asks anyway.
            #expect(try await !store.rotateIfCurrent(Self.rotation(to: "rt-1", at: now + 30, jti: "jti-1")))
            let decided = try await store.peek(first.hash)
            #expect(decided.family?.revokedAt == now + 10, "decide sees the family ended")
            #expect(decided.token?.state == .active)
            #expect(try await store.allEvents().map(\.kind) == ["family_created", "family_created", "subject_cutoff"])
        }
    }
}
