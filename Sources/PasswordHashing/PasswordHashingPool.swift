internal import CArgon2
import Glibc
import Synchronization

/// Dedicated worker threads taking jobs from a bounded FIFO queue. A job that finds the queue
/// full is refused at once (`overloaded`) rather than queued, so memory stays bounded.
final class PasswordHashingPool: @unchecked Sendable {
    // Safety: `queue`, `liveWorkers`, `shuttingDown` and `drainWaiters` are read and written only
    // with `mutex` held (every access goes through `locked`). `mutex` and `condition` are
    // allocated in init, never moved, and destroyed in deinit, which runs only after every worker
    // has returned: each worker thread holds a strong reference to the pool for its lifetime.
    // `capacity` and `nextJobID` (an atomic) are safe to share as they are.
    struct Job: Sendable {
        let id: UInt64
        /// Runs the work on the worker thread and resumes the caller.
        let run: @Sendable () -> Void
        /// Resumes the caller with an error instead; called at most once, and never after `run`.
        let refuse: @Sendable (PasswordHashingError) -> Void
    }

    let capacity: Int
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var queue: [Job] = []
    private var liveWorkers = 0
    private var shuttingDown = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private let nextJobID = Atomic<UInt64>(0)

    init(capacity: Int) {
        self.capacity = capacity
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        queue.reserveCapacity(capacity)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Starts `count` detached worker threads; on failure, stops those already started.
    func start(workers count: Int) throws(PasswordHashingError) {
        for index in 0..<count {
            locked { liveWorkers += 1 }
            let started = PasswordThread.spawn(detached: true) { [self] in
                PasswordThread.setName("tokend-argon2")
                // Hashing yields to the event loops: a sign-in waits longer when the CPU is busy
                // (and, with the CPU saturated, fills the queue and is answered 503), but
                // introspection never waits behind a hash.
                PasswordThread.lowerPriority()
                self.runWorker()
            }
            if started == nil {
                locked { liveWorkers -= 1 }
                beginShutdown()
                throw .hashingFailed("could not start password hashing worker \(index + 1) of \(count)")
            }
        }
    }

    func makeJobID() -> UInt64 {
        nextJobID.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// Queues `job`, or returns why not (full, shut down); the caller then resumes itself.
    func submit(_ job: Job) -> PasswordHashingError? {
        locked { () -> PasswordHashingError? in
            if shuttingDown { return .shutDown() }
            if queue.count >= capacity { return .overloaded(capacity: capacity) }
            queue.append(job)
            pthread_cond_signal(condition)
            return nil
        }
    }

    /// Takes a still-queued job out and refuses it as cancelled; a running job finishes.
    func cancel(id: UInt64) {
        let job = locked { () -> Job? in
            guard let index = queue.firstIndex(where: { $0.id == id }) else { return nil }
            return queue.remove(at: index)
        }
        job?.refuse(.cancelled())
    }

    /// Jobs waiting for a worker.
    var queuedCount: Int { locked { queue.count } }

    /// Refuses new jobs from now on; workers finish the queued ones, then exit.
    func beginShutdown() {
        locked {
            shuttingDown = true
            pthread_cond_broadcast(condition)
        }
    }

    /// True once `beginShutdown` has run.
    var isShuttingDown: Bool { locked { shuttingDown } }

    /// Returns once every worker has exited (call `beginShutdown` first).
    func waitUntilDrained() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = locked { () -> Bool in
                if liveWorkers == 0 { return true }
                drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func runWorker() {
        while let job = nextJob() {
            job.run()
        }
        let waiters = locked { () -> [CheckedContinuation<Void, Never>] in
            liveWorkers -= 1
            guard liveWorkers == 0 else { return [] }
            defer { drainWaiters = [] }
            return drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Blocks until a job is queued; nil once shutting down with nothing left.
    private func nextJob() -> Job? {
        locked { () -> Job? in
            while queue.isEmpty && !shuttingDown {
                pthread_cond_wait(condition, mutex)
            }
            return queue.isEmpty ? nil : queue.removeFirst()
        }
    }

    private func locked<Result>(_ body: () -> Result) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}
