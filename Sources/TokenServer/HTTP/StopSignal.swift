import Synchronization

/// A one-shot signal: the first `fire` wins and releases every waiter.
final class StopSignal: Sendable {
    enum Reason: Sendable, Equatable {
        case graceful
        case cancelled
    }

    private struct State {
        var reason: Reason?
        var waiters: [CheckedContinuation<Reason, Never>] = []
    }

    private let state = Mutex(State())

    func fire(_ reason: Reason) {
        let waiters = state.withLock { state -> [CheckedContinuation<Reason, Never>] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    func wait() async -> Reason {
        await withCheckedContinuation { (continuation: CheckedContinuation<Reason, Never>) in
            let reason = state.withLock { state -> Reason? in
                if let reason = state.reason { return reason }
                state.waiters.append(continuation)
                return nil
            }
            if let reason { continuation.resume(returning: reason) }
        }
    }
}
