/// A strict reader of the logfmt lines LogfmtLogHandler writes, used to prove that what goes in
/// comes back out unchanged and that no value can add keys or lines.
enum LogfmtParser {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The key/value pairs of one line, in order.
    static func parse(_ line: String) throws -> [(key: String, value: String)] {
        guard !line.contains("\n"), !line.contains("\r") else { throw Failure(description: "line break in line") }
        var pairs: [(key: String, value: String)] = []
        var scalars = Substring(line).unicodeScalars[...]
        while !scalars.isEmpty {
            var key = ""
            while let scalar = scalars.first, scalar != "=" {
                guard scalar != " ", scalar != "\"" else { throw Failure(description: "bad key at \(String(scalars))") }
                key.unicodeScalars.append(scalar)
                scalars.removeFirst()
            }
            guard scalars.first == "=", !key.isEmpty else { throw Failure(description: "missing = after \(key)") }
            scalars.removeFirst()
            var value = ""
            if scalars.first == "\"" {
                scalars.removeFirst()
                var closed = false
                while let scalar = scalars.popFirst() {
                    if scalar == "\"" {
                        closed = true
                        break
                    }
                    if scalar == "\\" {
                        guard let escaped = scalars.popFirst() else { throw Failure(description: "dangling escape") }
                        switch escaped {
                        case "\\": value.unicodeScalars.append("\\")
                        case "\"": value.unicodeScalars.append("\"")
                        case "n": value.unicodeScalars.append("\n")
                        case "r": value.unicodeScalars.append("\r")
                        case "t": value.unicodeScalars.append("\t")
                        case "u":
                            let hex = String(String.UnicodeScalarView(scalars.prefix(4)))
                            guard hex.count == 4, let code = UInt32(hex, radix: 16), let decoded = Unicode.Scalar(code)
                            else { throw Failure(description: "bad \\u escape") }
                            scalars.removeFirst(4)
                            value.unicodeScalars.append(decoded)
                        default: throw Failure(description: "unknown escape \\\(escaped)")
                        }
                    } else {
                        value.unicodeScalars.append(scalar)
                    }
                }
                guard closed else { throw Failure(description: "unterminated quote") }
            } else {
                while let scalar = scalars.first, scalar != " " {
                    guard scalar != "\"", scalar != "=" else { throw Failure(description: "bare value with \(scalar)") }
                    value.unicodeScalars.append(scalar)
                    scalars.removeFirst()
                }
            }
            pairs.append((key, value))
            if let next = scalars.first {
                guard next == " " else { throw Failure(description: "no space after value of \(key)") }
                scalars.removeFirst()
            }
        }
        return pairs
    }
}
