import Logging
import Synchronization

/// Collects every log record of a test's server, to check what is (and is not) logged.
final class LogCapture: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata

        /// The message and all metadata as one line of text.
        var text: String {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return ([message] + fields).joined(separator: " ")
        }
    }

    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }

    func append(_ record: Record) {
        records.withLock { $0.append(record) }
    }

    func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "tokend.test") { _ in CapturingHandler(capture: self) }
        logger.logLevel = level
        return logger
    }
}

struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        capture.append(.init(level: event.level, message: "\(event.message)", metadata: merged))
    }
}
