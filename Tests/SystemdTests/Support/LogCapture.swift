import Logging
import Synchronization

/// A log handler that keeps every event, for asserting on warnings.
final class LogCapture: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let entries = Mutex<[Entry]>([])

    var all: [Entry] { self.entries.withLock { $0 } }
    var warnings: [Entry] { self.all.filter { $0.level == .warning } }

    func logger(label: String = "test") -> Logger {
        Logger(label: label) { _ in Handler(capture: self) }
    }

    fileprivate func append(_ entry: Entry) { self.entries.withLock { $0.append(entry) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            self.capture.append(Entry(level: event.level, message: "\(event.message)", metadata: event.metadata ?? [:]))
        }
    }
}

/// Lines written by a LogfmtLogHandler.
final class LineCapture: Sendable {
    private let storage = Mutex<[String]>([])
    var lines: [String] { self.storage.withLock { $0 } }
    func append(_ line: String) { self.storage.withLock { $0.append(line) } }
}
