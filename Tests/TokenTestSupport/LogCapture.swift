public import Logging
import Synchronization

/// Keeps every log record of the code under test, to check what is (and is not) logged.
public final class LogCapture: Sendable {
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        /// The logger's metadata with the event's merged over it.
        public var metadata: Logger.Metadata

        /// The message and all metadata as one line of text.
        public var text: String {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return ([message] + fields).joined(separator: " ")
        }
    }

    private let records = Mutex<[Record]>([])

    public init() {}

    /// Every record so far, oldest first.
    public var all: [Record] { records.withLock { $0 } }
    public var warnings: [Record] { all.filter { $0.level == .warning } }

    /// A logger whose records (at `level` and above) are kept here.
    public func logger(label: String = "tokend.test", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    private func append(_ record: Record) { records.withLock { $0.append(record) } }

    private struct Handler: LogHandler {
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
            capture.append(Record(level: event.level, message: "\(event.message)", metadata: merged))
        }
    }
}
