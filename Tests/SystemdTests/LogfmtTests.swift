import Logging
import Testing

@testable import Systemd

@Suite("logfmt on stderr: one line per event, never split or forged")
struct LogfmtTests {
    @Test("a line reads ts, level, msg, logger, then metadata sorted by key")
    func layout() {
        let line = Logfmt.line(
            timestamp: "2026-11-23T09:00:00.123Z",
            level: .info,
            message: "listening",
            label: "tokend.server",
            metadata: ["socket": "/run/tokend/tokend.sock", "fd": "3", "mode": "socket activation"]
        )
        #expect(
            line
                == #"ts=2026-11-23T09:00:00.123Z level=info msg="listening" logger=tokend.server fd=3 mode="socket activation" socket=/run/tokend/tokend.sock"#
        )
    }

    static let hostile: [String] = [
        "multi\nline",
        "forged\nts=2026-11-23T09:00:00.000Z level=critical msg=\"root login\"",
        "carriage\rreturn",
        "quote \" inside",
        "\"",
        "ends with backslash \\",
        "\\\" backslash then quote",
        "key=value",
        "level=critical",
        "tab\there",
        "nul\u{0}byte",
        "bell\u{7}escape\u{1B}[31mred",
        "del\u{7F}",
        "next line\u{85}",
        "line\u{2028}separator\u{2029}",
        "bidi \u{202E}desrever\u{202C} text",
        "",
        " ",
        "emoji 🔑 and ü",
        "plain",
    ]

    @Test("hostile messages and values come back exactly and add no keys", arguments: hostile)
    func injection(text: String) throws {
        let line = Logfmt.line(
            timestamp: "2026-11-23T09:00:00.123Z",
            level: .notice,
            message: text,
            label: "tokend",
            metadata: ["value": .string(text)]
        )
        #expect(!line.contains("\n") && !line.contains("\r"))
        #expect(!line.unicodeScalars.contains { Logfmt.needsEscape($0) }, "no raw control characters")
        let pairs = try LogfmtParser.parse(line)
        #expect(pairs.map(\.key) == ["ts", "level", "msg", "logger", "value"])
        #expect(pairs[1].value == "notice")
        #expect(pairs[2].value == text)
        #expect(pairs[4].value == text)
    }

    @Test("keys are restricted to a safe alphabet and cannot shadow the line's own keys")
    func keys() throws {
        #expect(Logfmt.key("request.id") == "request.id")
        #expect(Logfmt.key("peer uid=0\nlevel") == "peer_uid_0_level")
        #expect(Logfmt.key("") == "_")
        #expect(Logfmt.key("level") == "meta.level")
        #expect(Logfmt.key("msg") == "meta.msg")
        let line = Logfmt.line(
            timestamp: "t",
            level: .info,
            message: "m",
            label: "",
            metadata: ["level": "critical", "a b": "c"]
        )
        let pairs = try LogfmtParser.parse(line)
        #expect(pairs.map(\.key) == ["ts", "level", "msg", "a_b", "meta.level"])
        #expect(pairs[1].value == "info")
    }

    @Test("values are bare when plain, quoted otherwise")
    func quoting() {
        #expect(Logfmt.value("abc-123/x:y") == "abc-123/x:y")
        #expect(Logfmt.value("") == #""""#)
        #expect(Logfmt.value("a b") == #""a b""#)
        #expect(Logfmt.value("a=b") == #""a=b""#)
        #expect(Logfmt.value("a\"b") == #""a\"b""#)
        #expect(Logfmt.value("a\\b") == #""a\\b""#)
        #expect(Logfmt.value("a\nb") == #""a\nb""#)
        #expect(Logfmt.value("a\u{1B}b") == #""a\u001bb""#)
        #expect(Logfmt.value("a\u{202E}b") == #""a\u202eb""#)
    }

    @Test(
        "timestamps are UTC ISO 8601 with milliseconds",
        arguments: [
            (1_795_424_400, 123, "2026-11-23T09:00:00.123Z"),
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (1_709_251_199, 999, "2024-02-29T23:59:59.999Z"),
            (951_868_800, 7, "2000-03-01T00:00:00.007Z"),
            (-1, 0, "1969-12-31T23:59:59.000Z"),
            (4_107_587_696, 50, "2100-03-01T12:34:56.050Z"),
        ]
    )
    func timestamps(seconds: Int, milliseconds: Int, expected: String) {
        #expect(Logfmt.timestamp(secondsSinceEpoch: seconds, milliseconds: milliseconds) == expected)
    }

    @Test("the handler writes one parseable line per event with the current time")
    func handlerLine() throws {
        let lines = LineCapture()
        let logger = Logger(label: "tokend.test") { label in
            LogfmtLogHandler(label: label, logLevel: .info, output: .custom { lines.append($0) })
        }
        logger.info("token revoked", metadata: ["jti": "abc", "reason": "logout everywhere"])
        let line = try #require(lines.lines.first)
        #expect(lines.lines.count == 1)
        let pairs = try LogfmtParser.parse(line)
        #expect(pairs.map(\.key) == ["ts", "level", "msg", "logger", "jti", "reason"])
        #expect(pairs[0].value.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil)
        #expect(pairs[2].value == "token revoked")
        #expect(pairs[3].value == "tokend.test")
        #expect(pairs[5].value == "logout everywhere")
    }

    @Test("the handler honours its log level", arguments: Logger.Level.allCases)
    func levels(threshold: Logger.Level) throws {
        let lines = LineCapture()
        var logger = Logger(label: "t") { label in
            LogfmtLogHandler(label: label, output: .custom { lines.append($0) })
        }
        logger.logLevel = threshold
        for level in Logger.Level.allCases {
            logger.log(level: level, "at \(level)")
        }
        let logged = try lines.lines.map { try LogfmtParser.parse($0)[1].value }
        #expect(logged == Logger.Level.allCases.filter { $0 >= threshold }.map(\.rawValue))

        // Called directly, below its level, the handler still writes nothing.
        let handler = LogfmtLogHandler(label: "t", logLevel: .error, output: .custom { lines.append($0) })
        let before = lines.lines.count
        handler.log(
            event: LogEvent(
                level: .warning,
                message: "x",
                metadata: nil,
                source: nil,
                file: #fileID,
                function: #function,
                line: #line
            )
        )
        #expect(lines.lines.count == before)
    }

    @Test("metadata: handler, provider and call site merge with the call site winning; errors add fields")
    func metadata() throws {
        struct Refused: Error, CustomStringConvertible { var description: String { "store down" } }
        let lines = LineCapture()
        let provider = Logger.MetadataProvider { ["request": "r-1", "shared": "provider"] }
        var logger = Logger(label: "t") { label in
            LogfmtLogHandler(label: label, metadataProvider: provider, output: .custom { lines.append($0) })
        }
        logger[metadataKey: "component"] = "keyring"
        logger[metadataKey: "shared"] = "handler"
        #expect(logger[metadataKey: "component"] == "keyring")
        logger.warning("rotation refused", metadata: ["kid": "k2", "nested": ["a": "1"]])
        logger.error("store", error: Refused())
        let first = Dictionary(uniqueKeysWithValues: try LogfmtParser.parse(lines.lines[0]).map { ($0.key, $0.value) })
        #expect(first["component"] == "keyring")
        #expect(first["request"] == "r-1")
        #expect(first["shared"] == "provider")
        #expect(first["kid"] == "k2")
        #expect(first["nested"] == #"["a": "1"]"#)
        let second = Dictionary(uniqueKeysWithValues: try LogfmtParser.parse(lines.lines[1]).map { ($0.key, $0.value) })
        #expect(second["error.message"] == "store down")
        #expect(second["error.type"]?.hasSuffix("Refused") == true)
    }
}
