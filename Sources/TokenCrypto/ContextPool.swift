import Synchronization

/// OpenSSL contexts initialised once and reused across calls, so the hot path skips
/// OpenSSL's per-init algorithm fetch and allocation. A context is used by one thread at a
/// time: taken out of the pool under the lock, given back after use. The pool frees what it
/// holds when it goes away, and what it cannot keep.
final class ContextPool<Contexts>: Sendable {
    /// Contexts on their way through the pool.
    private struct Handle: @unchecked Sendable {
        // Safe: a handle is either in the pool (touched only under the mutex) or held by the
        // single caller that took it; OpenSSL contexts may move between threads as long as
        // one thread uses them at a time.
        let contexts: Contexts
    }

    private let handles = Mutex<[Handle]>([])
    private let free: @Sendable (Contexts) -> Void
    private static var limit: Int { 64 }

    /// A pool whose contexts `free` releases.
    init(free: @escaping @Sendable (Contexts) -> Void) {
        self.free = free
    }

    deinit { drain() }

    /// A pooled context, or nil when the pool is empty (the caller makes one).
    func take() -> Contexts? {
        handles.withLock { $0.popLast() }?.contexts
    }

    /// Returns `contexts` for reuse, or frees them when the pool is full.
    func give(_ contexts: Contexts) {
        let handle = Handle(contexts: contexts)
        let kept = handles.withLock { items -> Bool in
            guard items.count < ContextPool.limit else { return false }
            items.append(handle)
            return true
        }
        if !kept { free(contexts) }
    }

    /// Frees every pooled context.
    func drain() {
        let all = handles.withLock { items -> [Handle] in
            defer { items = [] }
            return items
        }
        for handle in all { free(handle.contexts) }
    }
}
