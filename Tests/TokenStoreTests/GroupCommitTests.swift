import CodedErrors
import Synchronization
import Testing
import TokenStore
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Group commit in `SQLiteTokenStore.write`: writes queued while a transaction commits go
/// into the next one together, each in its own savepoint, acknowledged by one commit.
///
/// Each test holds the writer with a write that waits (`WriterGate`), queues its writes in a
/// known order behind it, then lets go: the queued writes are then one batch.
@Suite("SQLiteTokenStore: concurrent writes share one commit")
struct GroupCommitTests {
    let now = StoreFixtures.now

    /// What one use of a refresh token came to.
    enum Use: Sendable, Equatable {
        case rotated
        case sawSpent
        case unknown
    }

    /// An error of the caller's own, thrown by `decide`.
    struct Refusal: Error, Equatable {}

    /// Rotates `plaintext`'s token to `next` when it is active.
    static func use(
        _ store: SQLiteTokenStore,
        _ plaintext: String,
        next: String,
        at now: Double
    ) async throws -> Use {
        try await store.updateRefreshToken(hash: StoreFixtures.hash(plaintext), now: now) { token, family in
            guard let token, family != nil else { return RefreshDecision(change: .none, outcome: .unknown) }
            guard token.state == .active else { return RefreshDecision(change: .none, outcome: .sawSpent) }
            return RefreshDecision(
                change: rotation(of: token, to: next, at: now, accessJTI: "jti-\(next)"),
                outcome: .rotated
            )
        }
    }

    /// Families fam-0 … fam-(count-1), each with its active token rt-<i>-0.
    static func families(_ count: Int, in store: SQLiteTokenStore) async throws {
        for i in 0..<count {
            try await store.createRefreshFamily(
                StoreFixtures.family(id: "fam-\(i)", subject: "user-\(i)"),
                firstToken: StoreFixtures.activeToken("rt-\(i)-0", familyID: "fam-\(i)")
            )
        }
    }

    @Test("writes queued behind a busy writer commit together, at most 64 to a transaction")
    func queuedWritesShareTransactions() async throws {
        try await withSQLiteStore { store, _ in
            try await Self.families(100, in: store)
            let now = now
            let uses = try await behindGate(store) { start in
                for i in 0..<100 {
                    await start { try await Self.use(store, "rt-\(i)-0", next: "rt-\(i)-1", at: now + 1) }
                }
            } checkingBatches: { batches in
                #expect(batches == 2, "100 queued writes: a batch of 64, then one of 36")
            }
            #expect(uses == Array(repeating: .rotated, count: 100))
            for i in 0..<100 {
                #expect(try await store.peek(StoreFixtures.hash("rt-\(i)-1")).token?.state == .active)
            }
            #expect(try await store.allEvents().filter { $0.kind == "refresh_rotated" }.count == 100)
        }
    }

    @Test("of 8 uses of one token in one batch the first rotates and each later one sees it spent")
    func usesOfOneTokenInOneBatch() async throws {
        try await withSQLiteStore { store, _ in
            try await Self.families(1, in: store)
            let now = now
            let uses = try await behindGate(store) { start in
                for attempt in 0..<8 {
                    await start { try await Self.use(store, "rt-0-0", next: "rt-0-next-\(attempt)", at: now + 1) }
                }
            } checkingBatches: { batches in
                #expect(batches == 1)
            }
            #expect(uses == [.rotated] + Array(repeating: .sawSpent, count: 7), "in arrival order")
            let spent = try #require(try await store.peek(StoreFixtures.hash("rt-0-0")).token)
            #expect(spent.successorHash == StoreFixtures.hash("rt-0-next-0"))
            for attempt in 1..<8 {
                #expect(try await store.peek(StoreFixtures.hash("rt-0-next-\(attempt)")).token == nil)
            }
            #expect(try await store.allEvents().filter { $0.kind == "refresh_rotated" }.count == 1)
        }
    }

    @Test("a decide that throws in a batch fails alone: the writes before and after it commit")
    func throwingDecideFailsAlone() async throws {
        try await withSQLiteStore { store, _ in
            try await Self.families(3, in: store)
            let now = now
            let outcomes = try await outcomesBehindGate(store) { start in
                await start { try await Self.use(store, "rt-0-0", next: "rt-0-1", at: now + 1) }
                await start {
                    try await store.updateRefreshToken(hash: StoreFixtures.hash("rt-1-0"), now: now + 1) {
                        _,
                        _ -> RefreshDecision<Use> in throw Refusal()
                    }
                }
                await start { try await Self.use(store, "rt-2-0", next: "rt-2-1", at: now + 1) }
            } checkingBatches: { batches in
                #expect(batches == 1)
            }
            #expect(outcomes[0] == .success(.rotated))
            #expect(outcomes[1] == .failure("Refusal()"), "the caller's error comes back unchanged")
            #expect(outcomes[2] == .success(.rotated))
            #expect(try await store.peek(StoreFixtures.hash("rt-1-0")).token?.state == .active)
            #expect(try await store.peek(StoreFixtures.hash("rt-2-1")).token?.state == .active)
            let rotated = try await store.allEvents().filter { $0.kind == "refresh_rotated" }.map(\.subject)
            #expect(rotated == ["user-0", "user-2"])
        }
    }

    @Test("a conflict in a batch rolls back only its own changes; its neighbours commit")
    func conflictFailsAlone() async throws {
        try await withSQLiteStore { store, _ in
            try await Self.families(3, in: store)
            let now = now
            let outcomes = try await outcomesBehindGate(store) { start in
                await start { try await Self.use(store, "rt-0-0", next: "rt-0-1", at: now + 1) }
                // A successor that exists already (family 2's token): spends rt-1-0, then
                // finds the successor and throws .conflict.
                await start { try await Self.use(store, "rt-1-0", next: "rt-2-0", at: now + 1) }
                await start { try await Self.use(store, "rt-2-0", next: "rt-2-1", at: now + 1) }
            } checkingBatches: { batches in
                #expect(batches == 1)
            }
            #expect(outcomes[0] == .success(.rotated))
            #expect(outcomes[1] == .failure("conflict"))
            #expect(outcomes[2] == .success(.rotated))
            let untouched = try #require(try await store.peek(StoreFixtures.hash("rt-1-0")).token)
            #expect(untouched.state == .active, "the spend before the conflict was rolled back")
            #expect(untouched.successorHash == nil)
            #expect(try await store.peek(StoreFixtures.hash("rt-2-1")).token?.state == .active)
            #expect(try await store.refreshFamily(id: "fam-1")?.lastAccessJTI == "jti-0")
            #expect(try await store.allEvents().filter { $0.kind == "refresh_rotated" }.count == 2)
        }
    }

    @Test("every acknowledged write of a concurrent load is in the database after reopening")
    func acknowledgedWritesSurviveReopening() async throws {
        try await withSQLiteStore { store, path in
            try await Self.families(32, in: store)
            let now = now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<32 {
                    group.addTask {
                        let use = try await Self.use(store, "rt-\(i)-0", next: "rt-\(i)-1", at: now + 1)
                        #expect(use == .rotated)
                    }
                    group.addTask {
                        try await store.revokeAccessToken(
                            jti: "revoked-\(i)",
                            subject: "user-\(i)",
                            expiresAt: now + 3600,
                            at: now + 1,
                            reason: "test"
                        )
                    }
                }
                try await group.waitForAll()
            }
            try await store.close()

            let reopened = try await SQLiteTokenStore.open(path: path, logger: StoreFixtures.quietLogger)
            let revocations = try await reopened.loadRevocations(now: now)
            #expect(Set(revocations.revokedAccessTokens.keys) == Set((0..<32).map { "revoked-\($0)" }))
            for i in 0..<32 {
                #expect(try await reopened.peek(StoreFixtures.hash("rt-\(i)-0")).token?.state == .spent)
                #expect(try await reopened.peek(StoreFixtures.hash("rt-\(i)-1")).token?.state == .active)
            }
            try await reopened.close()
        }
    }

    @Test("when a batch's commit is not in the file tokend opens next, every write of the batch fails")
    func failedBatchFailsEveryWrite() async throws {
        try await withSQLiteStore { store, path in
            try await Self.families(2, in: store)
            let now = now
            let outcomes = try await outcomesBehindGate(store) { start in
                // The first write of the batch replaces the database file while the batch runs.
                await start {
                    try await store.updateRefreshToken(hash: StoreFixtures.hash("rt-0-0"), now: now + 1) { _, _ in
                        _ = rename(path, path + ".moved")
                        close(open(path, O_CREAT | O_WRONLY, 0o600))
                        return RefreshDecision(change: .none, outcome: Use.unknown)
                    }
                }
                await start { try await Self.use(store, "rt-1-0", next: "rt-1-1", at: now + 1) }
                await start {
                    try await store.revokeAccessToken(
                        jti: "j",
                        subject: nil,
                        expiresAt: now + 60,
                        at: now,
                        reason: "test"
                    )
                    return .unknown
                }
            } checkingBatches: { batches in
                #expect(batches == 1)
            }
            #expect(outcomes == Array(repeating: .failure("unavailable"), count: 3))
        }
    }

    // MARK: - Support

    /// What a queued write came to: its outcome, or its error (a `TokenStoreError`'s code,
    /// else the error's description).
    enum Outcome: Sendable, Equatable {
        case success(Use)
        case failure(String)
    }

    /// Holds the writer with a write that waits, runs `queue` (whose `start` calls each begin
    /// one write and return once it is queued, so the queue holds them in call order), lets the
    /// writer go, and returns every write's outcome in that order. `checkingBatches` gets how
    /// many transactions the queued writes took.
    func outcomesBehindGate(
        _ store: SQLiteTokenStore,
        queue: (_ start: (@escaping @Sendable () async throws -> Use) async -> Void) async throws -> Void,
        checkingBatches: (Int) -> Void
    ) async throws -> [Outcome] {
        let gate = WriterGate()
        let holder = Task {
            try await store.updateRefreshToken(hash: StoreFixtures.hash("gate"), now: StoreFixtures.now) { _, _ in
                gate.entered.store(true, ordering: .sequentiallyConsistent)
                while !gate.released.load(ordering: .sequentiallyConsistent) { usleep(200) }
                return RefreshDecision(change: .none, outcome: 0)
            }
        }
        try await waitUntil("the gate holds the writer") { gate.entered.load(ordering: .sequentiallyConsistent) }
        let batchesBefore = store.batchesForTesting
        var tasks: [Task<Outcome, Never>] = []
        do {
            try await queue { body in
                let queued = store.pendingWritesForTesting
                tasks.append(
                    Task {
                        do {
                            return .success(try await body())
                        } catch let error as TokenStoreError {
                            return .failure("\(error.code)")
                        } catch {
                            return .failure("\(error)")
                        }
                    }
                )
                try? await waitUntil("write \(tasks.count) is queued") { store.pendingWritesForTesting > queued }
            }
        } catch {
            gate.released.store(true, ordering: .sequentiallyConsistent)
            throw error
        }
        gate.released.store(true, ordering: .sequentiallyConsistent)
        _ = try await holder.value
        var results: [Outcome] = []
        for task in tasks { results.append(await task.value) }
        checkingBatches(store.batchesForTesting - batchesBefore)
        return results
    }

    /// `outcomesBehindGate` for writes that must all succeed: what they returned.
    func behindGate(
        _ store: SQLiteTokenStore,
        queue: (_ start: (@escaping @Sendable () async throws -> Use) async -> Void) async throws -> Void,
        checkingBatches: (Int) -> Void
    ) async throws -> [Use] {
        let outcomes = try await outcomesBehindGate(store, queue: queue, checkingBatches: checkingBatches)
        return try outcomes.map { outcome in
            guard case .success(let use) = outcome else { throw WriteFailed(outcome: outcome) }
            return use
        }
    }

    struct WriteFailed: Error {
        var outcome: Outcome
    }

    /// Polls `condition` every millisecond for up to 10 s.
    func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<10_000 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(1))
        }
        Issue.record("timed out waiting until \(what)")
        throw WriteFailed(outcome: .failure("timeout"))
    }

    /// A fresh SQLite store in a temporary directory, closed afterwards when still open.
    func withSQLiteStore(_ body: (SQLiteTokenStore, String) async throws -> Void) async throws {
        try await withTemporaryDirectory(prefix: "tokend-group-commit") { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: StoreFixtures.quietLogger)
            do {
                try await body(store, path)
            } catch {
                try? await store.close()
                throw error
            }
            try? await store.close()
        }
    }
}

/// Holds the writer: the gate's write waits in its `decide` until `released`.
final class WriterGate: Sendable {
    let entered = Atomic<Bool>(false)
    let released = Atomic<Bool>(false)
}
