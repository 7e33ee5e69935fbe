public import Logging

/// logfmt rendering that cannot be split or forged: one line per event, every control character,
/// quote and backslash escaped, keys restricted to a safe alphabet.
public enum Logfmt {
    /// Keys the line itself uses; metadata with these names is rendered as `meta.<key>`.
    static let reservedKeys: Set<String> = ["ts", "level", "msg", "logger"]

    /// One log line without its trailing newline:
    /// `ts=2026-11-23T09:00:00.123Z level=info msg="…" logger=… key=value …`.
    ///
    /// Metadata is sorted by key. An empty label leaves out `logger=`.
    public static func line(
        timestamp: String,
        level: Logger.Level,
        message: String,
        label: String,
        metadata: Logger.Metadata
    ) -> String {
        var line = "ts="
        line.reserveCapacity(96 + message.utf8.count)
        line += timestamp
        line += " level="
        line += level.rawValue
        line += " msg="
        self.appendValue(message, to: &line, alwaysQuote: true)
        if !label.isEmpty {
            line += " logger="
            self.appendValue(label, to: &line)
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " "
            line += self.key(key)
            line += "="
            self.appendValue(self.text(of: value), to: &line)
        }
        return line
    }

    /// A key made safe: characters outside `[A-Za-z0-9_.:/-]` become `_`; reserved keys get `meta.`.
    public static func key(_ key: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in key.unicodeScalars {
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ".", ":", "/", "-": result.append(scalar)
            default: result.append("_")
            }
        }
        if result.isEmpty { return "_" }
        let safe = String(result)
        return self.reservedKeys.contains(safe) ? "meta." + safe : safe
    }

    /// A value as logfmt writes it: bare when it is plain, else quoted with escapes.
    public static func value(_ value: String) -> String {
        var result = ""
        self.appendValue(value, to: &result)
        return result
    }

    /// UTC ISO 8601 with milliseconds, e.g. `2026-11-23T09:00:00.123Z`.
    public static func timestamp(secondsSinceEpoch seconds: Int, milliseconds: Int) -> String {
        // Days to civil date (Howard Hinnant's algorithm), so no locale or time zone is consulted.
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)

        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3_600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(milliseconds, 3))Z"
    }

    /// The current time as ``timestamp(secondsSinceEpoch:milliseconds:)`` renders it.
    public static func now() -> String {
        let (seconds, milliseconds) = SystemCall.realtime()
        return self.timestamp(secondsSinceEpoch: seconds, milliseconds: milliseconds)
    }

    /// The text of a metadata value (nested values as swift-log renders them).
    static func text(of value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array, .dictionary: value.description
        }
    }

    /// Whether a scalar must be escaped: C0/C1 controls, DEL, line and paragraph separators, and the
    /// bidirectional controls that could make a line read differently from what it holds.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069, 0xFEFF: true
        default: false
        }
    }

    static func appendValue(_ value: String, to line: inout String, alwaysQuote: Bool = false) {
        var needsQuotes = alwaysQuote || value.isEmpty
        if !needsQuotes {
            for scalar in value.unicodeScalars {
                if scalar == " " || scalar == "\"" || scalar == "=" || scalar == "\\" || self.needsEscape(scalar) {
                    needsQuotes = true
                    break
                }
            }
        }
        guard needsQuotes else {
            line += value
            return
        }
        var escaped = String.UnicodeScalarView()
        escaped.append("\"")
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": escaped.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": escaped.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": escaped.append(contentsOf: "\\n".unicodeScalars)
            case "\r": escaped.append(contentsOf: "\\r".unicodeScalars)
            case "\t": escaped.append(contentsOf: "\\t".unicodeScalars)
            default:
                if self.needsEscape(scalar) {
                    let hex = String(scalar.value, radix: 16, uppercase: false)
                    escaped.append(
                        contentsOf: ("\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex).unicodeScalars
                    )
                } else {
                    escaped.append(scalar)
                }
            }
        }
        escaped.append("\"")
        line += String(escaped)
    }
}
