import ServiceLifecycle
import Synchronization
import TokenStore

/// The users' last sign-in times, written behind: a sign-in records its time here and answers
/// at once; the times are written together, one transaction per `interval`, instead of one
/// durable write (an fsync) per sign-in, which on one core cost introspection twice its p99
/// while sign-ins ran (BENCHMARKS.md).
///
/// Reads through this store see the recorded times at once. What can be lost is only the time
/// of sign-ins in the last `interval` before a crash (not a clean stop: run as a `Service`, it
/// flushes on graceful shutdown); every other change goes straight to the store, durable
/// before it returns.
final class SignInTimes: UserStore, Service {
    private let store: any UserStore
    private let interval: Duration
    private let onError: @Sendable (any Error) -> Void

    private struct State {
        var pending: [String: Double] = [:]
        var flushScheduled = false
        /// The newest write; each waits for the one before, so a flush returns only once
        /// every time recorded before it is in the store (a clean stop cannot close the store
        /// under a write the timer started).
        var lastWrite: Task<Void, Never>?
    }

    private let state = Mutex(State())

    init(store: any UserStore, interval: Duration = .seconds(1), onError: @escaping @Sendable (any Error) -> Void) {
        self.store = store
        self.interval = interval
        self.onError = onError
    }

    /// Records a sign-in; written within `interval`.
    func record(publicID: String, at time: Double) {
        let schedule = state.withLock { state in
            state.pending[publicID] = max(time, state.pending[publicID] ?? time)
            defer { state.flushScheduled = true }
            return !state.flushScheduled
        }
        guard schedule else { return }
        let interval = self.interval
        Task { [self] in
            try? await Task.sleep(for: interval)
            await flush()
        }
    }

    /// Waits for graceful shutdown (or cancellation), then writes what is pending.
    func run() async throws {
        try? await gracefulShutdown()
        await flush()
    }

    /// Writes every recorded time now, in one transaction, after any write already running.
    func flush() async {
        let store = self.store
        let onError = self.onError
        let write = state.withLock { state -> Task<Void, Never> in
            let pending = state.pending
            state.pending = [:]
            state.flushScheduled = false
            let previous = state.lastWrite
            let write = Task {
                await previous?.value
                guard !pending.isEmpty else { return }
                do {
                    try await store.updateUsers(
                        pending.map { ($0.key, UserChange(lastLoginAt: $0.value, changedAt: $0.value)) }
                    )
                } catch {
                    onError(error)
                }
            }
            state.lastWrite = write
            return write
        }
        await write.value
    }

    private func overlay(_ user: UserRecord?) -> UserRecord? {
        guard var user else { return nil }
        if let time = state.withLock({ $0.pending[user.publicID] }), time > (user.lastLoginAt ?? 0) {
            user.lastLoginAt = time
        }
        return user
    }

    // MARK: UserStore

    func createUser(_ user: NewUser) async throws -> UserRecord { try await store.createUser(user) }
    func user(publicID: String) async throws -> UserRecord? { overlay(try await store.user(publicID: publicID)) }
    func user(numericID: Int64) async throws -> UserRecord? { overlay(try await store.user(numericID: numericID)) }
    func user(email: String) async throws -> UserRecord? { overlay(try await store.user(email: email)) }
    func user(username: String) async throws -> UserRecord? { overlay(try await store.user(username: username)) }

    func users(matching query: UserQuery) async throws -> [UserRecord] {
        try await store.users(matching: query).compactMap { overlay($0) }
    }

    func updateUser(publicID: String, _ change: UserChange) async throws -> UserRecord? {
        overlay(try await store.updateUser(publicID: publicID, change))
    }

    func updateUsers(_ changes: [(publicID: String, change: UserChange)]) async throws {
        try await store.updateUsers(changes)
    }
}
