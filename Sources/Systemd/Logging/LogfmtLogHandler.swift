public import Logging

/// A swift-log handler that writes one logfmt line per event, to stderr by default.
///
/// `ts=2026-11-23T09:00:00.123Z level=info msg="listening" logger=tokend socket=/run/tokend/tokend.sock`
///
/// Values are escaped so that a message or metadata value can never start a new line or pose as
/// another key (log injection). Honours ``logLevel``, ``metadata`` and ``metadataProvider``.
public struct LogfmtLogHandler: LogHandler {
    /// Where finished lines go (without trailing newline).
    public struct Output: Sendable {
        let write: @Sendable (String) -> Void

        /// Standard error, one `write(2)` sequence per line under a process-wide lock.
        public static let standardError = Output { StandardError.write(line: $0) }

        /// Any destination, e.g. a capture in tests.
        public static func custom(_ write: @escaping @Sendable (_ line: String) -> Void) -> Output {
            Output(write: write)
        }
    }

    /// The logger label, written as `logger=`.
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: Output

    public init(
        label: String,
        logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil,
        output: Output = .standardError
    ) {
        self.label = label
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
        self.output = output
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
        self.output.write(
            Logfmt.line(
                timestamp: Logfmt.now(),
                level: event.level,
                message: event.message.description,
                label: self.label,
                metadata: metadata
            )
        )
    }
}

/// The metadata of one event, in swift-log's order of precedence: handler < provider < call site,
/// plus `error.message` and `error.type` when the event carries an error.
enum EffectiveMetadata {
    static func merge(
        base: Logger.Metadata,
        provider: Logger.MetadataProvider?,
        explicit: Logger.Metadata?,
        error: (any Error)?
    ) -> Logger.Metadata {
        var metadata = base
        if let provided = provider?.get(), !provided.isEmpty {
            metadata.merge(provided, uniquingKeysWith: { _, provided in provided })
        }
        if let explicit, !explicit.isEmpty {
            metadata.merge(explicit, uniquingKeysWith: { _, explicit in explicit })
        }
        if let error {
            metadata["error.message"] = "\(error)"
            metadata["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return metadata
    }
}
