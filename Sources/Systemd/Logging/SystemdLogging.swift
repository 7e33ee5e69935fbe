import Glibc
public import Logging

/// Chooses the log handler for how the daemon runs: the journal when stderr is systemd's journal
/// stream, logfmt on stderr otherwise.
public enum SystemdLogging {
    /// Bootstraps swift-log once for the process (LoggingSystem allows only one bootstrap).
    ///
    /// - Parameters:
    ///   - label: the program's identifier, sent as `SYSLOG_IDENTIFIER` to the journal (`tokend`).
    ///   - level: the lowest level that is written (`TOKEND_LOG_LEVEL`).
    ///   - metadataProvider: metadata added to every event (e.g. a request id from a task local).
    public static func bootstrap(
        label: String = "tokend",
        level: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        let journal = self.stderrIsJournal()
        LoggingSystem.bootstrap(
            { loggerLabel, provider in
                self.makeHandler(
                    label: loggerLabel,
                    level: level,
                    identifier: label,
                    metadataProvider: provider,
                    journal: journal
                )
            },
            metadataProvider: metadataProvider
        )
    }

    /// The handler for one logger: a ``JournalLogHandler`` when stderr is the journal stream, else
    /// a ``LogfmtLogHandler`` on stderr.
    public static func makeHandler(
        label: String,
        level: Logger.Level = .info,
        identifier: String = "tokend",
        metadataProvider: Logger.MetadataProvider? = nil
    ) -> any LogHandler {
        self.makeHandler(
            label: label,
            level: level,
            identifier: identifier,
            metadataProvider: metadataProvider,
            journal: self.stderrIsJournal()
        )
    }

    private static func makeHandler(
        label: String,
        level: Logger.Level,
        identifier: String,
        metadataProvider: Logger.MetadataProvider?,
        journal: Bool
    ) -> any LogHandler {
        if journal {
            return JournalLogHandler(
                label: label,
                identifier: identifier,
                logLevel: level,
                metadataProvider: metadataProvider
            )
        }
        return LogfmtLogHandler(label: label, logLevel: level, metadataProvider: metadataProvider)
    }

    /// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` ("DEV:INODE")
    /// names the device and inode of file descriptor 2.
    public static func stderrIsJournal() -> Bool {
        self.isJournalStream(SystemCall.environment("JOURNAL_STREAM"), fileDescriptor: STDERR_FILENO)
    }

    /// Whether `journalStream` (a `JOURNAL_STREAM` value, "DEV:INODE" in decimal) names the device
    /// and inode of `fileDescriptor`. False for nil, malformed values and closed descriptors.
    public static func isJournalStream(_ journalStream: String?, fileDescriptor: Int32) -> Bool {
        guard let journalStream else { return false }
        let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(fileDescriptor, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}
