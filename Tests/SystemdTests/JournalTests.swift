import Foundation
import Glibc
import Logging
import Testing
import TokenTestSupport

@testable import Systemd

@Suite("journal logging: structured fields, safe names, chosen by JOURNAL_STREAM")
struct JournalTests {
    @Test(
        "metadata keys become valid journal field names",
        arguments: [
            ("request.id", "REQUEST_ID"),
            ("jti", "JTI"),
            ("peer-uid", "PEER_UID"),
            ("Already_UPPER9", "ALREADY_UPPER9"),
            ("_hidden", "TOKEND__HIDDEN"),
            ("__CURSOR", "TOKEND___CURSOR"),
            ("2fa", "TOKEND_2FA"),
            ("", "TOKEND_"),
            ("ünïcode key=1\n", "TOKEND__N_CODE_KEY_1_"),
            ("message", "TOKEND_MESSAGE"),
            ("priority", "TOKEND_PRIORITY"),
            ("syslog.identifier", "TOKEND_SYSLOG_IDENTIFIER"),
            ("code_file", "TOKEND_CODE_FILE"),
            ("error.message", "ERROR_MESSAGE"),
        ]
    )
    func fieldNames(key: String, expected: String) {
        #expect(JournalLogHandler.fieldName(key) == expected)
    }

    @Test("every field name obeys journald's rules: [A-Z][A-Z0-9_]*, at most 64 characters")
    func fieldNameRules() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("aZ09_.-= \n\"ü🔑\u{0}")
        var keys = [String(repeating: "k", count: 200), String(repeating: "_", count: 70)]
        for _ in 0..<500 {
            keys.append(
                String(
                    (0..<Int.random(in: 0...80, using: &generator)).map { _ in
                        alphabet.randomElement(using: &generator)!
                    }
                )
            )
        }
        for key in keys {
            let name = JournalLogHandler.fieldName(key)
            #expect(name.wholeMatch(of: /[A-Z][A-Z0-9_]{0,63}/) != nil, "\(key.debugDescription) → \(name)")
            #expect(!JournalLogHandler.reservedFieldNames.contains(name))
        }
    }

    @Test(
        "swift-log levels map to syslog priorities",
        arguments: [
            (Logger.Level.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
        ]
    )
    func priorities(level: Logger.Level, priority: Int) {
        #expect(JournalLogHandler.priority(level) == priority)
    }

    @Test("an entry carries MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_* and the metadata")
    func fields() {
        var handler = JournalLogHandler(
            label: "tokend.keys",
            logLevel: .debug,
            metadataProvider: Logger.MetadataProvider { ["request.id": "r-9"] }
        )
        handler[metadataKey: "component"] = "keyring"
        let event = LogEvent(
            level: .warning,
            message: "rotation refused\nsecond line",
            metadata: ["kid": "k2", "message": "forged"],
            source: nil,
            file: "TokenService/Keyring.swift",
            function: "rotate(force:)",
            line: 42
        )
        let metadata = EffectiveMetadata.merge(
            base: handler.metadata,
            provider: handler.metadataProvider,
            explicit: event.metadata,
            error: nil
        )
        let fields = handler.fields(event: event, metadata: metadata)
        #expect(
            fields.map(\.name) == [
                "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER_LABEL",
                "COMPONENT", "KID", "TOKEND_MESSAGE", "REQUEST_ID",
            ]
        )
        #expect(
            fields.map(\.value) == [
                "rotation refused\nsecond line", "4", "tokend", "TokenService/Keyring.swift", "42", "rotate(force:)",
                "tokend.keys", "keyring", "k2", "forged", "r-9",
            ]
        )
    }

    /// Journald's native protocol: `KEY=VALUE\n`, or `KEY\n<u64le length><bytes>\n` for values with newlines.
    static func parseNative(_ data: [UInt8]) -> [String: String]? {
        var fields: [String: String] = [:]
        var index = 0
        while index < data.count {
            guard let newline = data[index...].firstIndex(of: 0x0A) else { return nil }
            let line = data[index..<newline]
            if let equals = line.firstIndex(of: UInt8(ascii: "=")) {
                fields[String(decoding: line[..<equals], as: UTF8.self)] = String(
                    decoding: line[(equals + 1)...],
                    as: UTF8.self
                )
                index = newline + 1
            } else {
                guard newline + 9 <= data.count else { return nil }
                var length: UInt64 = 0
                for byte in data[(newline + 1)..<(newline + 9)].reversed() { length = length << 8 | UInt64(byte) }
                let start = newline + 9
                guard start + Int(length) < data.count else { return nil }
                fields[String(decoding: line, as: UTF8.self)] = String(
                    decoding: data[start..<(start + Int(length))],
                    as: UTF8.self
                )
                index = start + Int(length) + 1
            }
        }
        return fields
    }

    // The wire: a child process moves its thread into a private mount namespace, puts a tmpfs on
    // /run/systemd and listens on /run/systemd/journal/socket, like the reference fakejournald.py,
    // then logs through libsystemd and reads the datagram back.
    @Test(
        "sd_journal_sendv delivers the fields, multi-line values intact",
        .enabled(if: getuid() == 0, "needs root for a private mount namespace")
    )
    func wire() async {
        await #expect(processExitsWith: .success) {
            // unshare(2) is a GNU extension the Glibc module does not show; look it up.
            let rtldDefault = UnsafeMutableRawPointer(bitPattern: 0)
            guard let symbol = dlsym(rtldDefault, "unshare") else {
                exit(9)
            }
            let unshare = unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Int32).self)
            let cloneNewNS: Int32 = 0x0002_0000
            guard unshare(cloneNewNS) == 0 else { exit(10) }
            // Nothing mounted here may reach the host's namespace.
            let recursivePrivate = UInt(16384 | (1 << 18))  // MS_REC | MS_PRIVATE
            guard mount(nil, "/", nil, recursivePrivate, nil) == 0 else { exit(11) }
            guard mount("tmpfs", "/run/systemd", "tmpfs", 0, nil) == 0 else { exit(12) }
            guard mkdir("/run/systemd/journal", 0o755) == 0 else { exit(13) }
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard bindUnixSocket(fd, to: "/run/systemd/journal/socket") == 0 else { exit(14) }

            var logger = Logger(label: "tokend.wire") { JournalLogHandler(label: $0) }
            logger[metadataKey: "request.id"] = "r-1"
            logger.debug("below the level: not sent")
            logger.error("refresh token reused\nfamily revoked", metadata: ["2fa": "on", "_CURSOR": "x"])

            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 2_000) == 1 else { exit(15) }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0, let fields = JournalTests.parseNative(Array(buffer[..<count])) else { exit(16) }
            let expected = [
                "MESSAGE": "refresh token reused\nfamily revoked", "PRIORITY": "3", "SYSLOG_IDENTIFIER": "tokend",
                "LOGGER_LABEL": "tokend.wire", "REQUEST_ID": "r-1", "TOKEND_2FA": "on", "TOKEND__CURSOR": "x",
            ]
            for (name, value) in expected where fields[name] != value { exit(17) }
            guard fields["CODE_FILE"]?.hasSuffix("JournalTests.swift") == true, fields["CODE_LINE"] != nil,
                fields["CODE_FUNC"]?.isEmpty == false
            else { exit(18) }
            // Only the error was sent.
            guard poll(&descriptor, 1, 200) == 0 else { exit(19) }
            exit(0)
        }
    }

    @Test("JOURNAL_STREAM matches only the device and inode of the descriptor")
    func journalStream() throws {
        let path = "/tmp/tokend-journal-stream-\(getpid())"
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer {
            close(fd)
            unlink(path)
        }
        var status = stat()
        try #require(fstat(fd, &status) == 0)
        #expect(SystemdLogging.isJournalStream("\(status.st_dev):\(status.st_ino)", fileDescriptor: fd))
        #expect(!SystemdLogging.isJournalStream("\(status.st_dev):\(status.st_ino + 1)", fileDescriptor: fd))
        #expect(!SystemdLogging.isJournalStream("\(status.st_dev + 1):\(status.st_ino)", fileDescriptor: fd))
        #expect(!SystemdLogging.isJournalStream("\(status.st_dev)", fileDescriptor: fd))
        #expect(!SystemdLogging.isJournalStream("\(status.st_dev):\(status.st_ino):1", fileDescriptor: fd))
        #expect(!SystemdLogging.isJournalStream("x:y", fileDescriptor: fd))
        #expect(!SystemdLogging.isJournalStream(nil, fileDescriptor: fd))
        #expect(!SystemdLogging.isJournalStream("\(status.st_dev):\(status.st_ino)", fileDescriptor: 9_999))
    }

    @Test("makeHandler picks the journal when JOURNAL_STREAM names stderr, logfmt otherwise")
    func handlerChoice() async {
        await #expect(processExitsWith: .success) {
            unsetenv("JOURNAL_STREAM")
            guard SystemdLogging.makeHandler(label: "a") is LogfmtLogHandler else { exit(2) }
            var status = stat()
            guard fstat(STDERR_FILENO, &status) == 0 else { exit(3) }
            setenv("JOURNAL_STREAM", "\(status.st_dev):\(status.st_ino)", 1)
            let handler = SystemdLogging.makeHandler(label: "a", level: .debug)
            guard handler is JournalLogHandler, handler.logLevel == .debug else { exit(4) }
            setenv("JOURNAL_STREAM", "\(status.st_dev):\(status.st_ino + 1)", 1)
            guard SystemdLogging.makeHandler(label: "a") is LogfmtLogHandler else { exit(5) }
            exit(0)
        }
    }

    @Test("bootstrap installs the chosen handler with the level for every logger")
    func bootstrap() async {
        await #expect(processExitsWith: .success) {
            unsetenv("JOURNAL_STREAM")
            SystemdLogging.bootstrap(label: "tokend", level: .warning)
            let logger = Logger(label: "tokend.any")
            guard logger.handler is LogfmtLogHandler, logger.logLevel == .warning else { exit(2) }
            exit(0)
        }
    }
}
