import Foundation

/// Runs blocking work (socket I/O, waiting on a process) on a thread of its own, so the
/// cooperative pool — two threads on a two-core machine, shared by every test running in
/// parallel — never blocks.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// Polls `probe` every `interval` until it returns a value, or throws after `timeout` with
/// `what` in the message. The probe's last error (if any) is part of the message.
func eventually<T: Sendable>(
    _ what: String,
    timeout: Duration = .seconds(15),
    interval: Duration = .milliseconds(50),
    _ probe: @Sendable () async throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var lastError: (any Error)?
    while true {
        do {
            if let value = try await probe() { return value }
            lastError = nil
        } catch {
            lastError = error
        }
        if clock.now >= deadline {
            throw HarnessError(
                "timed out after \(timeout) waiting for \(what)" + (lastError.map { " (last error: \($0))" } ?? "")
            )
        }
        try await Task.sleep(for: interval)
    }
}

/// Common timeouts: generous for a loaded two-core machine running tests in parallel, short
/// enough that a hang fails fast.
enum Timeouts {
    /// From spawning tokend to its sockets answering.
    static let start: Duration = .seconds(30)
    /// From SIGTERM to exit.
    static let stop: Duration = .seconds(20)
    /// One HTTP exchange.
    static let request: Double = 15
}
