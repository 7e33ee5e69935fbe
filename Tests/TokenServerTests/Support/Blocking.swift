import Foundation

/// Runs blocking socket code on its own thread, off Swift's cooperative pool, which the
/// server's asynchronous handlers need while a test waits for their answer.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
func eventually(
    timeout: Duration = .seconds(10),
    _ condition: @Sendable () throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}

/// A fresh short directory under /tmp (Unix socket paths are limited to 107 bytes).
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/tsrv.XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { buffer in
        String(cString: mkdtemp(buffer.baseAddress!)!)
    }
    return path
}

func removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}
