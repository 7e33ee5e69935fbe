internal import CThread
package import Glibc

/// Plain pthreads for tokend's background work: password hashing, ECDSA nonces
/// (FoundationEssentials has no Thread).
package enum BackgroundThread {
    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    /// Starts a thread running `body`; nil if pthread_create fails. A detached thread cannot be
    /// joined; otherwise join the returned handle.
    package static func spawn(detached: Bool, _ body: @escaping @Sendable () -> Void) -> pthread_t? {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread,
            nil,
            { context in
                let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
                body.run()
                return nil
            },
            context
        )
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            return nil
        }
        if detached { pthread_detach(thread) }
        return thread
    }

    package static func join(_ thread: pthread_t) {
        pthread_join(thread, nil)
    }

    /// Names the calling thread (shown by `top -H`, `ps -L`); at most 15 bytes.
    package static func setName(_ name: String) {
        tokend_thread_set_name(name)
    }

    /// Lowers the calling thread's priority to SCHED_IDLE: it runs when no other thread wants
    /// the CPU, and a thread that wakes (an event loop with a request) preempts it at once. Nice
    /// 19 is not enough: the kernel's EEVDF scheduler lets a running task finish its slice
    /// (~3 ms) before a waking one runs, which put 4 ms into introspection's p99 while sign-ins
    /// hashed (BENCHMARKS.md). Falls back to nice 19; a failure of both leaves it as it is.
    package static func lowerPriority() {
        if tokend_thread_set_idle() != 0 { _ = tokend_thread_set_nice(19) }
    }

    /// The calling thread's name.
    package static var currentName: String {
        var buffer = [CChar](repeating: 0, count: 17)
        buffer.withUnsafeMutableBufferPointer { tokend_thread_name($0.baseAddress) }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
