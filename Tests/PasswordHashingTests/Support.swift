import CodedErrors
import Glibc
import Synchronization
import TokenCrypto

@testable import PasswordHashing

/// Parameters far below OWASP, for tests that need many quick hashes.
let fastParameters = PasswordHashingParameters.unsafeTestingParameters(memoryKiB: 256, iterations: 1)

/// Holds a worker thread inside a job until the test opens it.
final class Gate: Sendable {
    private let entered = Atomic<Bool>(false)
    private let opened = Atomic<Bool>(false)

    /// Runs on the worker: marks it busy and spins until `open()`.
    func hold() {
        entered.store(true, ordering: .releasing)
        while !opened.load(ordering: .acquiring) { usleep(1000) }
    }

    func open() { opened.store(true, ordering: .releasing) }

    func waitUntilEntered() async throws {
        while !entered.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(1)) }
    }
}

extension PasswordHasher {
    /// Blocks the (single) worker until `gate` opens; returns once the worker holds it.
    func occupyWorker(with gate: Gate) async throws -> Task<Void, any Error> {
        let task = Task { try await self.perform { gate.hold() } }
        try await gate.waitUntilEntered()
        return task
    }

    func waitUntilQueued(_ count: Int) async throws {
        while queuedJobCount < count { try await Task.sleep(for: .milliseconds(1)) }
    }
}

func isCode(_ code: PasswordHashingError.Code) -> @Sendable (any Error) -> Bool {
    { ($0 as? PasswordHashingError)?.code == code }
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Ordinary-priority threads spinning until stopped: a host whose CPUs something else keeps busy.
final class BusyThreads: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let threads: Mutex<[pthread_t]>

    init(count: Int) {
        threads = Mutex([])
        for _ in 0..<count {
            if let thread = BackgroundThread.spawn(detached: false, { [self] in self.spin() }) {
                threads.withLock { $0.append(thread) }
            }
        }
    }

    private func spin() {
        var counter = 0
        while !stopped.load(ordering: .relaxed) { counter &+= 1 }
        _ = counter
    }

    /// Stops and joins the threads; later calls do nothing.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        let joined = threads.withLock { threads -> [pthread_t] in
            defer { threads = [] }
            return threads
        }
        joined.forEach(BackgroundThread.join)
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
