/// A JWT NumericDate (RFC 7519 §2): seconds since the epoch, UTC, within years 1970–9999.
public struct NumericDate: Sendable, Comparable, Hashable, CustomStringConvertible {
    public let seconds: Double

    /// 9999-12-31T23:59:59Z.
    public static let maximum: Double = 253_402_300_799

    public init?(seconds: Double) {
        guard seconds.isFinite, seconds >= 0, seconds <= NumericDate.maximum else { return nil }
        self.seconds = seconds
    }

    public init(integer: Int64) {
        self.seconds = Double(min(max(integer, 0), Int64(NumericDate.maximum)))
    }

    public static func < (lhs: NumericDate, rhs: NumericDate) -> Bool { lhs.seconds < rhs.seconds }

    /// UTC ISO 8601, e.g. `2019-03-13T15:56:49Z` (fractions kept to the millisecond).
    public var iso8601: String {
        let whole = Int64(seconds.rounded(.down))
        let days = whole >= 0 ? whole / 86_400 : (whole - 86_399) / 86_400
        let rest = whole - days * 86_400
        let (y, m, d) = NumericDate.civil(fromDays: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var text = "\(String(repeating: "0", count: max(0, 4 - String(y).count)))\(y)-\(two(m))-\(two(d))"
        text += "T\(two(rest / 3600)):\(two(rest % 3600 / 60)):\(two(rest % 60))"
        let fraction = seconds - Double(whole)
        if fraction > 0 {
            let millis = Int((fraction * 1000).rounded())
            if millis > 0, millis < 1000 {
                text += "." + String(repeating: "0", count: 3 - String(millis).count) + String(millis)
            }
        }
        return text + "Z"
    }

    public var description: String { iso8601 }

    /// Howard Hinnant's days → (year, month, day), proleptic Gregorian.
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    /// (year, month, day) → days since 1970-01-01.
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Parses `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00+02:00`, `2024-05-01`, or epoch
    /// seconds (`1700000000`, `@1700000000`).
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces
        let digits = trimmed.hasPrefix("@") ? String(trimmed.dropFirst()) : trimmed
        if let value = Double(digits), digits.allSatisfy({ $0.isNumber || $0 == "." }) {
            self.init(seconds: value)
            return
        }
        let chars = Array(trimmed.utf8)
        func number(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= chars.count else { return nil }
            var v: Int64 = 0
            for c in chars[from..<(from + count)] {
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            return v
        }
        guard chars.count >= 10, let year = number(0, 4), chars[4] == 45, let month = number(5, 2), chars[7] == 45,
            let day = number(8, 2), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var seconds = NumericDate.days(fromCivil: year, month, day) * 86_400
        var index = 10
        if index < chars.count {
            guard chars[index] == UInt8(ascii: "T") || chars[index] == UInt8(ascii: " "),
                let h = number(index + 1, 2), chars.count > index + 3, chars[index + 3] == 58,
                let mi = number(index + 4, 2), h < 24, mi < 60
            else { return nil }
            seconds += h * 3600 + mi * 60
            index += 6
            if index < chars.count, chars[index] == 58 {
                guard let s = number(index + 1, 2), s < 61 else { return nil }
                seconds += s
                index += 3
            }
            if index < chars.count, chars[index] == UInt8(ascii: ".") {
                index += 1
                while index < chars.count, chars[index] >= 48, chars[index] <= 57 { index += 1 }
            }
            if index < chars.count {
                if chars[index] == UInt8(ascii: "Z") {
                    index += 1
                } else if chars[index] == UInt8(ascii: "+") || chars[index] == UInt8(ascii: "-") {
                    let sign: Int64 = chars[index] == UInt8(ascii: "+") ? 1 : -1
                    guard let oh = number(index + 1, 2) else { return nil }
                    var offsetMinutes = oh * 60
                    var next = index + 3
                    if next < chars.count, chars[next] == 58 { next += 1 }
                    if let om = number(next, 2) {
                        offsetMinutes += om
                        next += 2
                    }
                    seconds -= sign * offsetMinutes * 60
                    index = next
                }
            }
            guard index == chars.count else { return nil }
        }
        self.init(seconds: Double(seconds))
    }
}

extension String {
    var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[start...end])
    }
}

/// Human durations: "30d", "1h", "23h 59m", "2d 3h".
public enum DurationText {
    /// The most significant two units of `seconds` (absolute value), e.g. "23h 59m", "3d 4h", "42s".
    public static func describe(_ seconds: Double) -> String {
        let total = Int64(abs(seconds).rounded(.down))
        let units: [(String, Int64)] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)]
        guard let first = units.firstIndex(where: { total >= $0.1 }) else { return "0s" }
        let (name, size) = units[first]
        var text = "\(total / size)\(name)"
        if first + 1 < units.count {
            let (nextName, nextSize) = units[first + 1]
            let next = total % size / nextSize
            if next > 0 { text += " \(next)\(nextName)" }
        }
        return text
    }

    /// A friendlier span for relative times: "23h 59m" under two days, then "N days",
    /// then "N years".
    public static func span(_ seconds: Double) -> String {
        let value = abs(seconds)
        if value < 2 * 86_400 { return describe(value) }
        if value < 730 * 86_400 { return "\(Int(value / 86_400)) days" }
        return "\(Int(value / 31_556_952)) years"
    }

    /// "in 23h 59m" / "3 days ago" for a moment relative to `now`.
    public static func relative(_ moment: Double, now: Double) -> String {
        let delta = moment - now
        if abs(delta) < 1 { return "now" }
        return delta > 0 ? "in \(span(delta))" : "\(span(delta)) ago"
    }

    /// Parses a duration like `90s`, `15m`, `1h`, `24h`, `30d`, `2w`, `1h30m`, or bare seconds.
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingSpaces.lowercased()
        guard !trimmed.isEmpty else { return nil }
        if let plain = Int64(trimmed) { return plain >= 0 ? plain : nil }
        var total: Int64 = 0
        var number: Int64? = nil
        for c in trimmed {
            if let digit = c.wholeNumberValue, c.isASCII {
                let (m, o1) = (number ?? 0).multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(digit))
                guard !o1, !o2 else { return nil }
                number = a
                continue
            }
            let size: Int64
            switch c {
            case "s": size = 1
            case "m": size = 60
            case "h": size = 3_600
            case "d": size = 86_400
            case "w": size = 604_800
            default: return nil
            }
            guard let n = number else { return nil }
            let (product, o1) = n.multipliedReportingOverflow(by: size)
            let (sum, o2) = total.addingReportingOverflow(product)
            guard !o1, !o2 else { return nil }
            total = sum
            number = nil
        }
        guard number == nil else { return nil }
        return total
    }
}
