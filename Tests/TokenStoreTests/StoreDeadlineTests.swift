import Synchronization
import Testing

@testable import PostgresStore

/// The PostgreSQL store's deadline (issue 11 item 6): an operation answers within its limit
/// even when the work under it never ends, as a query postgres-nio loses on a connection the
/// server has just closed never does (the fleet restart test met one on every run).
@Suite("The store's operation deadline", .timeLimit(.minutes(1)))
struct StoreDeadlineTests {
    @Test("work that never ends, deaf to cancellation: DeadlineExceeded, and the caller goes on")
    func neverEndingWork() async throws {
        let started = Atomic<Bool>(false)
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline("hanging", limit: .milliseconds(200), abandonAfter: .milliseconds(200)) {
                _ -> Int in
                started.store(true, ordering: .relaxed)
                // A continuation nobody resumes: what a lost query's future is.
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
                return 1
            }
        }
        let didStart = started.load(ordering: .relaxed)
        #expect(didStart)
    }

    @Test("work that ends in time gives its result; work that throws gives its error")
    func workInTime() async throws {
        let value = try await withDeadline("quick", limit: .seconds(30)) { _ in 42 }
        #expect(value == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await withDeadline("refused", limit: .seconds(30)) { _ -> Int in throw Refused() }
        }
    }

    @Test("a cancelled caller gets CancellationError at once, not the deadline's error")
    func cancelledCaller() async throws {
        let task = Task {
            try await withDeadline("cancelled", limit: .seconds(30), abandonAfter: .milliseconds(100)) { _ -> Int in
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }
}
