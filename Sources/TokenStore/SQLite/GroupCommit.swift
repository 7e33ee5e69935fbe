import GRDB

/// One mutation waiting for the writer: the queue of `SQLiteTokenStore.write` (group commit).
///
/// `@unchecked Sendable`: created by the caller and handed to the writer through the store's
/// `writeQueue` mutex (which orders the hand-over); from then on only the writer's dispatch
/// queue reads or clears `apply` and calls `finish`, once.
final class PendingWrite: @unchecked Sendable {
    /// Names the mutation in errors ("revoking an access token").
    let operation: String
    /// Runs the mutation on the writer connection, inside its own savepoint. Cleared before
    /// `finish`, so the caller's closures are released before its `await` returns
    /// (`updateRefreshToken` lends its non-escaping `decide` for the duration).
    private var apply: ((Database) throws -> Void)?
    private let finish: @Sendable (Result<Void, any Error>) -> Void

    init(
        operation: String,
        apply: @escaping (Database) throws -> Void,
        finish: @escaping @Sendable (Result<Void, any Error>) -> Void
    ) {
        self.operation = operation
        self.apply = apply
        self.finish = finish
    }

    /// Applies the mutation (at most once; a second call does nothing).
    func run(_ db: Database) throws {
        guard let apply else { return }
        try apply(db)
    }

    /// Resumes the caller: after the commit that holds the mutation, or with why it failed.
    func complete(_ result: Result<Void, any Error>) {
        apply = nil
        finish(result)
    }
}

/// Mutations waiting for the next transaction, in arrival order, reads waiting for the writer
/// connection, and whether a turn is scheduled or running on the writer (then a new arrival
/// waits for it instead of scheduling another).
struct WriteQueue: Sendable {
    var pending: [PendingWrite] = []
    /// Reads waiting for the writer connection (`SQLiteTokenStore.readOnWriter`), served
    /// before the next batch, outside its transaction.
    var reads: [PendingWrite] = []
    var draining = false
    /// Batches taken from the queue so far (each one transaction), for tests.
    var batches = 0
}

/// Where a mutation's result waits between the writer and its caller.
///
/// `@unchecked Sendable`: written once on the writer queue before the caller's continuation
/// is resumed, and read by the caller only after it resumed (the continuation orders them).
final class WriteResult<T>: @unchecked Sendable {
    var value: T?
}
