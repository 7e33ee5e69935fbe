import Glibc
import Synchronization
import TokenCrypto

/// Dedicated worker threads taking jobs from a bounded FIFO queue. A job that finds the queue
/// full is refused at once (`overloaded`) rather than queued, so memory stays bounded.
///
/// The workers run at `SCHED_IDLE`, so hashing never delays an event loop; but an idle-class
/// thread gets no CPU at all while any other process on the host keeps the CPUs busy, and a
/// sign-in would then wait for as long as the neighbour's load lasts (seen: 17 s per sign-in
/// with three busy loops on two cores). So one more thread, the rescuer, at the process's own
/// priority, watches the running jobs: a job still running `rescueAfter` after it started is
/// starved, and the rescuer runs it again itself (a job is a pure computation over its inputs,
/// and whichever run finishes first answers the caller); while a worker is starved, the rescuer
/// also takes queued jobs in order. With the CPUs to spare, no job ever runs that long, and the
/// rescuer only sleeps.
final class PasswordHashingPool: @unchecked Sendable {
    // Safety: `queue`, `running`, `liveWorkers`, `rescuerAlive`, `shuttingDown`, `drainWaiters`
    // and `rescues` are read and written only with `mutex` held (every access goes through
    // `locked`). `mutex`,
    // `condition` and `rescueCondition` are allocated in init, never moved, and destroyed in
    // deinit, which runs only after every thread has returned: each worker thread, and the
    // rescuer, holds a strong reference to the pool for its lifetime. `capacity`, `rescueAfter`
    // and `nextJobID` (an atomic) are safe to share as they are.
    struct Job: Sendable {
        let id: UInt64
        /// Runs the work on the calling thread and resumes the caller, the first time it
        /// finishes: the rescuer may run a starved job a second time, and the later run's
        /// result is dropped.
        let run: @Sendable () -> Void
        /// Resumes the caller with an error instead; called at most once, and never after `run`.
        let refuse: @Sendable (PasswordHashingError) -> Void
    }

    /// A job a thread is running, since when (CLOCK_MONOTONIC, ns), whether the rescuer runs
    /// it too, and whether the rescuer took it off the queue (`byRescuer`).
    private struct Running {
        let job: Job
        let started: UInt64
        var rescued: Bool
        let byRescuer: Bool
    }

    let capacity: Int
    /// How long a running job may go before the rescuer runs it too; nil: never.
    let rescueAfter: Duration?
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    /// Signalled when a job starts or ends, for the rescuer (on CLOCK_MONOTONIC).
    private let rescueCondition: UnsafeMutablePointer<pthread_cond_t>
    private var queue: [Job] = []
    private var running: [Running] = []
    private var liveWorkers = 0
    private var rescuerAlive = false
    private var shuttingDown = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private var rescues = 0
    private let nextJobID = Atomic<UInt64>(0)

    init(capacity: Int, rescueAfter: Duration? = nil) {
        self.capacity = capacity
        self.rescueAfter = rescueAfter
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        rescueCondition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(rescueCondition, &attributes)
        pthread_condattr_destroy(&attributes)
        queue.reserveCapacity(capacity)
    }

    deinit {
        pthread_cond_destroy(rescueCondition)
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        rescueCondition.deallocate()
        condition.deallocate()
        mutex.deallocate()
    }

    /// Starts `count` detached worker threads; on failure, stops those already started.
    func start(workers count: Int) throws(PasswordHashingError) {
        for index in 0..<count {
            locked { liveWorkers += 1 }
            let started = BackgroundThread.spawn(detached: true) { [self] in
                BackgroundThread.setName("tokend-argon2")
                // Hashing yields to the event loops: a sign-in waits longer when the CPU is busy
                // (and, with the CPU saturated, fills the queue and is answered 503), but
                // introspection never waits behind a hash.
                BackgroundThread.lowerPriority()
                self.runWorker()
            }
            if started == nil {
                locked { liveWorkers -= 1 }
                beginShutdown()
                throw .hashingFailed("could not start password hashing worker \(index + 1) of \(count)")
            }
        }
        guard rescueAfter != nil else { return }
        locked {
            liveWorkers += 1
            rescuerAlive = true
        }
        let started = BackgroundThread.spawn(detached: true) { [self] in
            // At the process's own priority: a starved hash is then ordinary work.
            BackgroundThread.setName("tokend-argon2-r")
            self.runRescuer()
        }
        if started == nil {
            locked {
                liveWorkers -= 1
                rescuerAlive = false
            }
            beginShutdown()
            throw .hashingFailed("could not start the password hashing rescuer")
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

    /// Worker and rescuer threads still running.
    var liveThreadCount: Int { locked { liveWorkers } }

    /// Jobs the rescuer has run because a worker was starved of CPU.
    var rescuedCount: Int { locked { rescues } }

    /// Refuses new jobs from now on; workers finish the queued ones, then exit.
    func beginShutdown() {
        locked {
            shuttingDown = true
            pthread_cond_broadcast(condition)
            pthread_cond_broadcast(rescueCondition)
        }
    }

    /// True once `beginShutdown` has run.
    var isShuttingDown: Bool { locked { shuttingDown } }

    /// Returns once every worker has exited (call `beginShutdown` first).
    func waitUntilDrained() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = locked { () -> Bool in
                if isDrained { return true }
                drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func runWorker() {
        while let job = nextJob() {
            job.run()
            finished(job, byRescuer: false)
        }
        exitThread()
    }

    private func exitThread(rescuer: Bool = false) {
        let waiters = locked { () -> [CheckedContinuation<Void, Never>] in
            liveWorkers -= 1
            if rescuer { rescuerAlive = false }
            guard isDrained else { return [] }
            defer { drainWaiters = [] }
            return drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Every thread has exited; or, shutting down, nothing is queued and what workers still run
    /// are jobs the rescuer has answered (a worker starved of CPU by other processes may take
    /// as long as their load lasts to finish a result nobody waits for). Call with `mutex` held.
    private var isDrained: Bool {
        if liveWorkers == 0 { return true }
        return shuttingDown && queue.isEmpty && !rescuerAlive
            && running.allSatisfy { $0.rescued && !$0.byRescuer }
    }

    /// Blocks until a job is queued; nil once shutting down with nothing left.
    private func nextJob() -> Job? {
        locked { () -> Job? in
            while queue.isEmpty && !shuttingDown {
                pthread_cond_wait(condition, mutex)
            }
            guard !queue.isEmpty else { return nil }
            let job = queue.removeFirst()
            if rescueAfter != nil {
                running.append(Running(job: job, started: Self.monotonicNow(), rescued: false, byRescuer: false))
                pthread_cond_signal(rescueCondition)
            }
            return job
        }
    }

    /// Forgets one thread's run of `job`. A worker's record stays while the worker runs the
    /// job, even once the rescuer has answered it: that worker is still starved.
    private func finished(_ job: Job, byRescuer: Bool) {
        guard rescueAfter != nil else { return }
        locked {
            if let index = running.firstIndex(where: { $0.job.id == job.id && $0.byRescuer == byRescuer }) {
                running.remove(at: index)
            }
            pthread_cond_signal(rescueCondition)
        }
    }

    private func runRescuer() {
        while let job = nextRescue() {
            job.run()
            finished(job, byRescuer: true)
        }
        exitThread(rescuer: true)
    }

    /// Blocks until a running job has gone `rescueAfter` without finishing (it is returned, to
    /// run again), or, while one has, until a job is queued (it is taken off the queue); nil
    /// once shutting down with nothing queued or running.
    private func nextRescue() -> Job? {
        let limit = Self.nanoseconds(rescueAfter ?? .zero)
        return locked { () -> Job? in
            while true {
                // Shutting down with nothing queued, and nothing running it has not rescued:
                // nothing left to do.
                if shuttingDown && queue.isEmpty && running.allSatisfy({ $0.rescued }) { return nil }
                let now = Self.monotonicNow()
                var starved = false
                var nextDeadline: UInt64?
                for index in running.indices where !running[index].byRescuer {
                    let deadline = running[index].started &+ limit
                    if deadline <= now {
                        starved = true
                        guard !running[index].rescued else { continue }
                        running[index].rescued = true
                        rescues += 1
                        // A record of the rescuer's own run, so `finished` has one to remove.
                        running.append(Running(job: running[index].job, started: now, rescued: true, byRescuer: true))
                        return running[index].job
                    }
                    if !running[index].rescued { nextDeadline = min(nextDeadline ?? deadline, deadline) }
                }
                if starved, !queue.isEmpty {
                    let job = queue.removeFirst()
                    rescues += 1
                    running.append(Running(job: job, started: now, rescued: true, byRescuer: true))
                    return job
                }
                if starved || nextDeadline != nil {
                    // A starved worker's job ends some time; look again every `limit` at most.
                    var wake = Self.timespec(at: min(nextDeadline ?? now &+ limit, now &+ limit))
                    pthread_cond_timedwait(rescueCondition, mutex, &wake)
                } else {
                    pthread_cond_wait(rescueCondition, mutex)
                }
            }
        }
    }

    private static func monotonicNow() -> UInt64 {
        var now = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    private static func timespec(at nanoseconds: UInt64) -> Glibc.timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    private static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    private func locked<Result>(_ body: () -> Result) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}
