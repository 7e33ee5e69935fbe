import Synchronization

/// Lines written by a LogfmtLogHandler.
final class LineCapture: Sendable {
    private let storage = Mutex<[String]>([])
    var lines: [String] { self.storage.withLock { $0 } }
    func append(_ line: String) { self.storage.withLock { $0.append(line) } }
}
