internal import CSystemd
import Glibc
public import Logging

/// A swift-log handler that sends structured entries to the systemd journal (`sd_journal_sendv`).
///
/// Each entry carries `MESSAGE`, `PRIORITY` (syslog level), `SYSLOG_IDENTIFIER`, `CODE_FILE`,
/// `CODE_LINE`, `CODE_FUNC`, `LOGGER_LABEL`, and every metadata key as an uppercase field
/// (see ``fieldName(_:)``). Values may hold any bytes; libsystemd frames multi-line values safely.
/// If the journal refuses an entry, the line goes to stderr in logfmt instead.
/// Honours ``logLevel``, ``metadata`` and ``metadataProvider``.
public struct JournalLogHandler: LogHandler {
    /// The logger label, sent as `LOGGER_LABEL`.
    public let label: String
    /// Sent as `SYSLOG_IDENTIFIER` (`tokend`).
    public let identifier: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(
        label: String,
        identifier: String = "tokend",
        logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.identifier = identifier
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        guard event.level >= self.logLevel else { return }
        let metadata = EffectiveMetadata.merge(
            base: self.metadata,
            provider: self.metadataProvider,
            explicit: event.metadata,
            error: event.error
        )
        let fields = self.fields(event: event, metadata: metadata)
        if Self.send(fields) < 0 {
            StandardError.write(
                line: Logfmt.line(
                    timestamp: Logfmt.now(),
                    level: event.level,
                    message: event.message.description,
                    label: self.label,
                    metadata: metadata
                )
            )
        }
    }

    /// The journal fields of one event, in the order they are sent.
    func fields(event: LogEvent, metadata: Logger.Metadata) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", event.message.description),
            ("PRIORITY", String(Self.priority(event.level))),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("CODE_FILE", event.file),
            ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function),
        ]
        if !self.label.isEmpty {
            fields.append(("LOGGER_LABEL", self.label))
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            fields.append((Self.fieldName(key), Logfmt.text(of: value)))
        }
        return fields
    }

    /// The syslog priority of a swift-log level: trace and debug 7, info 6, notice 5, warning 4,
    /// error 3, critical 2.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Fields this handler sets itself, or that journald and its readers give a meaning; metadata
    /// keys that would map onto one of them get the `TOKEND_` prefix so they cannot pose as it.
    static let reservedFieldNames: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO",
        "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
        "LOGGER_LABEL", "DOCUMENTATION", "TID", "INVOCATION_ID", "USER_INVOCATION_ID", "UNIT", "USER_UNIT",
        "OBJECT_PID", "COREDUMP_UNIT", "COREDUMP_USER_UNIT",
    ]

    /// The journal field name for a metadata key: uppercased, every character outside `[A-Z0-9_]`
    /// replaced by `_`, prefixed with `TOKEND_` when it would start with a digit or underscore (or
    /// be empty, or shadow a field in ``reservedFieldNames``), and cut to journald's 64 characters.
    ///
    /// `request.id` → `REQUEST_ID`, `_hidden` → `TOKEND__HIDDEN`, `2fa` → `TOKEND_2FA`.
    public static func fieldName(_ key: String) -> String {
        var name = ""
        name.reserveCapacity(key.utf8.count)
        for scalar in key.unicodeScalars {
            switch scalar {
            case "A"..."Z", "0"..."9", "_": name.unicodeScalars.append(scalar)
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 0x20)!)
            default: name.unicodeScalars.append("_")
            }
        }
        if name.isEmpty || name.first == "_" || name.first!.isNumber || self.reservedFieldNames.contains(name) {
            name = "TOKEND_" + name
        }
        return String(name.prefix(64))
    }

    /// Sends one entry; returns libsystemd's result (0, or a negative errno).
    static func send(_ fields: [(name: String, value: String)]) -> Int32 {
        var storage: [UInt8] = []
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(fields.count)
        for (name, value) in fields {
            let start = storage.count
            storage.append(contentsOf: name.utf8)
            storage.append(UInt8(ascii: "="))
            storage.append(contentsOf: value.utf8)
            ranges.append(start..<storage.count)
        }
        return storage.withUnsafeMutableBytes { buffer -> Int32 in
            var vectors = ranges.map { range in
                iovec(iov_base: buffer.baseAddress! + range.lowerBound, iov_len: range.count)
            }
            return vectors.withUnsafeMutableBufferPointer { vectors in
                sd_journal_sendv(vectors.baseAddress, Int32(vectors.count))
            }
        }
    }
}
