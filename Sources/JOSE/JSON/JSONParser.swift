/// A strict RFC 8259 parser for token headers, claims and key sets.
///
/// Beyond the grammar it refuses what a token verifier must not guess about: duplicate
/// member names (RFC 7515 §5.2, RFC 8725 §3.1 — two parsers must never see two different
/// claims), nesting deeper than `maxDepth`, objects with more than `maxMembers` members,
/// invalid UTF-8, lone surrogates, and anything after the top-level value.
///
/// Parsing costs time linear in the input (expected, for the duplicate check): it runs on
/// event loops over bytes any client sends (DESIGN §11).
public struct JSONParser: Sendable {
    /// Why text is not acceptable JSON. The description never quotes the input.
    public struct Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        public enum Kind: Sendable, Equatable {
            case syntax
            case duplicateMember
            case tooDeep
            case tooManyMembers
            case invalidUTF8
        }
        public let kind: Kind
        public let message: String
        public let offset: Int
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// The default for `maxMembers`: far above any header, claim set, key set or request
    /// body tokend reads (a 64 KiB body holds about 10,000 one-letter members), low enough
    /// that no object is a flood of names.
    public static let defaultMaxMembers = 1000

    /// How deep objects and arrays may nest; the top-level container is depth 1.
    public var maxDepth: Int
    /// How many members one object may have; more is `Error.Kind.tooManyMembers`.
    public var maxMembers: Int

    public init(maxDepth: Int = 16, maxMembers: Int = JSONParser.defaultMaxMembers) {
        self.maxDepth = maxDepth
        self.maxMembers = maxMembers
    }

    public func parse(_ text: String) throws -> JSONValue {
        var copy = text
        return try copy.withUTF8 { try parse(UnsafeRawBufferPointer($0)) }
    }

    public func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0) }
    }

    public func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var cursor = Cursor(bytes: bytes, maxDepth: maxDepth, maxMembers: maxMembers)
        cursor.skipWhitespace()
        let value = try cursor.value(depth: 0)
        cursor.skipWhitespace()
        guard cursor.index == bytes.count else { throw cursor.error(.syntax, "unexpected data after the JSON value") }
        return value
    }
}

private struct Cursor {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    let maxMembers: Int
    var index = 0

    /// Up to this many members, an object's names are checked for duplicates by comparing
    /// with each earlier one; from then on by a set of its names, so an object of n members
    /// costs O(n) expected rather than O(n²). (String's hash is seeded per process, so a
    /// client cannot choose colliding names.)
    static let linearScanMembers = 8

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, maxMembers: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.maxMembers = maxMembers
    }

    func error(_ kind: JSONParser.Error.Kind, _ message: String) -> JSONParser.Error {
        JSONParser.Error(kind: kind, message: message, offset: index)
    }

    @inline(__always) var atEnd: Bool { index >= bytes.count }
    @inline(__always) var current: UInt8 { bytes[index] }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func expect(_ literal: StaticString, _ value: JSONValue) throws -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error(.syntax, "truncated literal") }
        for i in 0..<count where bytes[index + i] != literal.utf8Start[i] {
            throw error(.syntax, "invalid literal")
        }
        index += count
        return value
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard !atEnd else { throw error(.syntax, "unexpected end of JSON") }
        switch current {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error(.syntax, "unexpected character")
        }
    }

    mutating func object(depth: Int) throws -> JSONValue {
        guard depth <= maxDepth else { throw error(.tooDeep, "JSON nests deeper than \(maxDepth) levels") }
        index += 1
        var object = JSONObject()
        // The names so far, once the object outgrows `linearScanMembers`.
        var names: Set<String> = []
        skipWhitespace()
        if !atEnd, current == UInt8(ascii: "}") {
            index += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: "\"") else { throw error(.syntax, "expected a member name") }
            let start = index
            guard object.count < maxMembers else {
                throw error(.tooManyMembers, "JSON object has more than \(maxMembers) members (the limit)")
            }
            let key = try string()
            // String ==, i.e. canonical equivalence: "é" and "e\u0301" are one name here, as they
            // are for JSONObject's subscript, so no lookup can pick between two members. String's
            // hash agrees with its ==, so the set finds the same duplicates as the scan.
            let duplicate: Bool
            if object.count < Cursor.linearScanMembers {
                duplicate = object.members.contains(where: { $0.key == key })
            } else {
                if names.isEmpty {
                    names.reserveCapacity(2 * Cursor.linearScanMembers)
                    for member in object.members { names.insert(member.key) }
                }
                duplicate = !names.insert(key).inserted
            }
            if duplicate {
                index = start
                throw error(.duplicateMember, "duplicate member name \"\(printable(key))\"")
            }
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: ":") else { throw error(.syntax, "expected ':'") }
            index += 1
            skipWhitespace()
            object.appendUnchecked(key, try value(depth: depth))
            skipWhitespace()
            guard !atEnd else { throw error(.syntax, "unterminated object") }
            if current == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard current == UInt8(ascii: "}") else { throw error(.syntax, "expected ',' or '}'") }
            index += 1
            return .object(object)
        }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        guard depth <= maxDepth else { throw error(.tooDeep, "JSON nests deeper than \(maxDepth) levels") }
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if !atEnd, current == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth))
            skipWhitespace()
            guard !atEnd else { throw error(.syntax, "unterminated array") }
            if current == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard current == UInt8(ascii: "]") else { throw error(.syntax, "expected ',' or ']'") }
            index += 1
            return .array(items)
        }
    }

    mutating func number() throws -> JSONNumber {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard !atEnd else { throw error(.syntax, "truncated number") }
        if current == UInt8(ascii: "0") {
            index += 1
        } else if isDigit(current) {
            while !atEnd, isDigit(current) { index += 1 }
        } else {
            throw error(.syntax, "invalid number")
        }
        if !atEnd, current == UInt8(ascii: ".") {
            index += 1
            guard !atEnd, isDigit(current) else { throw error(.syntax, "invalid number: digit expected after '.'") }
            while !atEnd, isDigit(current) { index += 1 }
        }
        if !atEnd, current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if !atEnd, current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard !atEnd, isDigit(current) else { throw error(.syntax, "invalid number: digit expected in exponent") }
            while !atEnd, isDigit(current) { index += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        return JSONNumber(validatedText: text)
    }

    @inline(__always) func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    mutating func string() throws -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes.
        var high: UInt8 = 0
        while index < bytes.count {
            let byte = bytes[index]
            high |= byte
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                if high < 0x80 {
                    // All ASCII, hence valid UTF-8: skip the generic validating initialiser.
                    index += 1
                    return String(decoding: raw, as: UTF8.self)
                }
                guard let text = String(validating: raw, as: UTF8.self) else {
                    index = start
                    throw error(.invalidUTF8, "string is not valid UTF-8")
                }
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error(.syntax, "unescaped control character in string") }
            index += 1
        }
        guard index < bytes.count else { throw error(.syntax, "unterminated string") }
        // Slow path with escapes.
        var out = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while true {
            guard index < bytes.count else { throw error(.syntax, "unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                guard let text = String(validating: out, as: UTF8.self) else {
                    throw error(.invalidUTF8, "string is not valid UTF-8")
                }
                return text
            }
            if byte < 0x20 { throw error(.syntax, "unescaped control character in string") }
            if byte != UInt8(ascii: "\\") {
                out.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { throw error(.syntax, "unterminated escape") }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
                    else { throw error(.syntax, "lone surrogate in \\u escape") }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error(.syntax, "lone surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error(.syntax, "lone surrogate in \\u escape")
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default:
                throw error(.syntax, "invalid escape")
            }
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw error(.syntax, "truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error(.syntax, "invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// A member name as safe to show: at most 40 printable characters.
    func printable(_ key: String) -> String {
        let cleaned = key.unicodeScalars.map { $0.value < 0x20 || $0 == "\"" ? "?" : String($0) }.joined()
        return cleaned.count > 40 ? String(cleaned.prefix(40)) + "…" : cleaned
    }
}
