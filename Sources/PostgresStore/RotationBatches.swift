import Synchronization
import TokenStore

/// Group commit for one-step rotations: the rotations that arrive while one batch is in
/// PostgreSQL wait, and go together as the next batch — one statement, one round trip, one
/// commit (one WAL flush) for all of them, as the SQLite store batches its writes.
///
/// No thread or task of its own: the first caller of an idle batcher leads a batch (itself
/// and whoever is waiting), hands the lead to the next waiter if any arrived meanwhile, and
/// returns. One rotation alone goes at once, as a batch of one. A batch holds each token and
/// each family at most once; a second rotation of the same token waits for the next batch
/// (where it no longer applies, and its caller decides on the rows).
final class RotationBatches: Sendable {
    /// Most rotations one statement carries.
    static let maximumBatch = 64

    typealias Run = @Sendable ([ConditionalRotation]) async throws -> Set<[UInt8]>

    private enum Turn: Sendable {
        case done(Result<Bool, any Error>)
        case lead
    }

    private struct Waiter: Sendable {
        let rotation: ConditionalRotation
        let continuation: CheckedContinuation<Turn, Never>
    }

    private struct State: Sendable {
        var waiting: [Waiter] = []
        var leading = false
    }

    private let state = Mutex(State())

    /// Whether `rotation` was applied (see `TokenStore.rotateIfCurrent`). `run` applies a
    /// batch, when this caller leads one, and answers the hashes of the tokens it rotated.
    func rotate(_ rotation: ConditionalRotation, run: @escaping Run) async throws -> Bool {
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let lead = state.withLock { state -> Bool in
                if state.leading {
                    state.waiting.append(Waiter(rotation: rotation, continuation: continuation))
                    return false
                }
                state.leading = true
                return true
            }
            if lead { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .done(let result):
            return try result.get()
        case .lead:
            return try await lead(rotation, run).get()
        }
    }

    /// Runs one batch of `own` and the rotations waiting, answers them, and passes the lead on.
    private func lead(_ own: ConditionalRotation, _ run: @escaping Run) async -> Result<Bool, any Error> {
        let others = state.withLock { state -> [Waiter] in
            var tokens: Set<[UInt8]> = [own.hash]
            var families: Set<String> = [own.familyID]
            var taken: [Waiter] = []
            var left: [Waiter] = []
            for waiter in state.waiting {
                if taken.count + 1 < Self.maximumBatch, tokens.insert(waiter.rotation.hash).inserted {
                    if families.insert(waiter.rotation.familyID).inserted {
                        taken.append(waiter)
                        continue
                    }
                    tokens.remove(waiter.rotation.hash)
                }
                left.append(waiter)
            }
            state.waiting = left
            return taken
        }
        // In a task of its own: the leader's request being cancelled (its client gone, its
        // deadline passed) must not cancel the others' rotations.
        let batch = [own] + others.map(\.rotation)
        let outcome = await Task(executorPreference: StoreTaskExecutor.preferred) { try await run(batch) }.result
        for waiter in others {
            waiter.continuation.resume(returning: .done(outcome.map { $0.contains(waiter.rotation.hash) }))
        }
        let next = state.withLock { state -> Waiter? in
            guard !state.waiting.isEmpty else {
                state.leading = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        return outcome.map { $0.contains(own.hash) }
    }
}
