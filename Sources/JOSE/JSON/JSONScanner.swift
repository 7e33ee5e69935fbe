#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One validating pass over a JSON object without building a `JSONValue` tree: the
/// verifier's hot path.
///
/// It accepts a document only when it is *certain* that `JSONParser` accepts the same bytes
/// and would decode the same values: the RFC 8259 grammar, UTF-8 validity (Unicode Table
/// 3-7, as `String(validating:)` checks it), the nesting limit, and unique member names in
/// every object. Whatever it is not certain about it hands back to `JSONParser` by
/// returning false, never an error of its own:
///
/// - any backslash in the document (an escaped name such as `"\u0073ub"` decodes to a name
///   that may duplicate `"sub"`; an escaped value differs from its raw bytes);
/// - any member name with a byte ≥ 0x80 (Swift compares names by canonical equivalence,
///   so two different non-ASCII byte strings can be the same name);
/// - any syntax, UTF-8, depth or duplicate problem, so the tree parser reports it with
///   its usual message and code;
/// - more than `nameCapacity` member names open at once.
///
/// With no escapes and ASCII names, a name's raw bytes are its decoded value, and two ASCII
/// names are equal exactly when their bytes are, so comparing byte ranges is exact.
struct JSONScanner {
    /// A scanned value: its kind and where its text is. For a string, `start..<end` is the
    /// content between the quotes (no escapes, valid UTF-8); for anything else, the value's
    /// whole text.
    struct Value: Sendable {
        enum Kind: UInt8, Equatable, Sendable {
            case string, number, object, array, bool, null
        }
        var kind: Kind
        /// String: every byte < 0x80. Array: every element is a string of ASCII bytes.
        var isASCII: Bool
        /// Array: every element is a string. Number: an integer without sign, fraction or exponent.
        var isSimple: Bool
        private var start32: Int32
        private var end32: Int32
        var start: Int { Int(start32) }
        var end: Int { Int(end32) }

        init(kind: Kind, start: Int, end: Int, isASCII: Bool, isSimple: Bool) {
            self.kind = kind
            self.isASCII = isASCII
            self.isSimple = isSimple
            self.start32 = Int32(truncatingIfNeeded: start)
            self.end32 = Int32(truncatingIfNeeded: end)
        }
    }

    /// A member name on the stack of open objects: where it is, and its first 8 bytes.
    struct Name {
        var start: Int32
        var count: Int32
        var head: UInt64
    }

    /// A top-level member's name as `scanObject` reports it.
    struct MemberName {
        /// The name's bytes (ASCII, no escapes).
        let bytes: UnsafeRawBufferPointer
        /// The first (up to) 8 bytes, the first byte lowest, zero-padded: with `bytes.count`,
        /// enough to recognise a short name with one comparison.
        let head: UInt64
    }

    /// 64 × 16 bytes: small enough for `withUnsafeTemporaryAllocation` to use the stack.
    static let nameCapacity = 64

    private let base: UnsafePointer<UInt8>
    private let count: Int
    private let maxDepth: Int
    private let names: UnsafeMutablePointer<Name>
    private var nameCount = 0

    private init(base: UnsafePointer<UInt8>, count: Int, maxDepth: Int, names: UnsafeMutablePointer<Name>) {
        self.base = base
        self.count = count
        self.maxDepth = maxDepth
        self.names = names
    }

    /// Scans `bytes` as one JSON object and calls `member` with each top-level member's
    /// name and value, in order. Returns true only when the whole document is certainly
    /// what `JSONParser(maxDepth:)` accepts as an object and every `member` call returned
    /// true; false means "ask `JSONParser`".
    static func scanObject(
        _ bytes: UnsafeRawBufferPointer,
        maxDepth: Int,
        member: (_ name: MemberName, _ value: Value) -> Bool
    ) -> Bool {
        withoutActuallyEscaping(member) { member in
            var visitor = ClosureVisitor(body: member)
            return scanObject(bytes, maxDepth: maxDepth, visitor: &visitor)
        }
    }

    /// `scanObject(_:maxDepth:member:)` with a visitor type, which the hot paths use so the
    /// visit is compiled into the scanning loop.
    static func scanObject<Visitor: JSONMemberVisitor>(
        _ bytes: UnsafeRawBufferPointer,
        maxDepth: Int,
        visitor: inout Visitor
    ) -> Bool {
        guard let start = bytes.baseAddress, maxDepth >= 1, bytes.count < Int(Int32.max) else { return false }
        // A backslash anywhere: escapes are the tree parser's business.
        if memchr(start, 0x5C, bytes.count) != nil { return false }
        return withUnsafeTemporaryAllocation(of: Name.self, capacity: nameCapacity) { names in
            var scanner = JSONScanner(
                base: start.assumingMemoryBound(to: UInt8.self),
                count: bytes.count,
                maxDepth: maxDepth,
                names: names.baseAddress!
            )
            return scanner.topLevelObject(&visitor)
        }
    }

    private struct ClosureVisitor: JSONMemberVisitor {
        let body: (MemberName, Value) -> Bool
        mutating func visit(_ name: MemberName, _ value: Value) -> Bool { body(name, value) }
    }

    // MARK: Structure
    //
    // Every function takes the index it starts at and returns the index after what it read
    // (nil: not certain), so the hot loops keep the index in a register.

    private mutating func topLevelObject<Visitor: JSONMemberVisitor>(_ visitor: inout Visitor) -> Bool {
        var i = skipWhitespace(0)
        guard i < count, base[i] == UInt8(ascii: "{") else { return false }
        i = skipWhitespace(i + 1)
        if i < count, base[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            var seen: UInt64 = 0
            while true {
                guard let (name, valueStart) = memberName(at: i, mark: 0, seen: &seen),
                    let value = value(at: valueStart, depth: 1)
                else { return false }
                let reported = MemberName(
                    bytes: UnsafeRawBufferPointer(start: base + Int(name.start), count: Int(name.count)),
                    head: name.head
                )
                guard visitor.visit(reported, value) else { return false }
                guard let (more, next) = nextMember(at: value.end &+ (value.kind == .string ? 1 : 0), closing: 0x7D)
                else { return false }
                i = next
                if !more { break }
            }
        }
        return skipWhitespace(i) == count
    }

    /// After a member or an element (at `i`): whether a `,` (true) or `closing` (false) came
    /// and the index after it; nil at anything else.
    @inline(__always)
    private func nextMember(at start: Int, closing: UInt8) -> (Bool, Int)? {
        let i = skipWhitespace(start)
        guard i < count else { return nil }
        let byte = base[i]
        if byte == UInt8(ascii: ",") { return (true, skipWhitespace(i + 1)) }
        return byte == closing ? (false, i + 1) : nil
    }

    /// A member name at `i` (whitespace before it already skipped), checked against the other
    /// names of the object being scanned (those pushed since `mark`; `seen` is that object's
    /// filter of name hashes), and its `:`. Returns the name and where its value starts.
    @inline(__always)
    private mutating func memberName(at i: Int, mark: Int, seen: inout UInt64) -> (Name, Int)? {
        guard i < count, base[i] == UInt8(ascii: "\"") else { return nil }
        let start = i + 1
        var ascii = true
        let end = scanString(from: start, ascii: &ascii)
        guard end >= 0, ascii else { return nil }
        let length = end - start
        var head: UInt64
        if start + 8 <= count {
            head = UInt64(littleEndian: UnsafeRawPointer(base + start).loadUnaligned(as: UInt64.self))
            if length < 8 { head &= (1 &<< (8 &* UInt64(length))) &- 1 }
        } else {
            head = 0
            for k in 0..<min(length, 8) { head |= UInt64(base[start + k]) << (8 * UInt64(k)) }
        }
        // A 64-bit filter of the names so far: only a name whose bit is already set can be a
        // duplicate, and only then are the names compared.
        let bit: UInt64 = 1 &<< ((head &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(length)) >> 58)
        if seen & bit != 0 {
            var k = mark
            while k < nameCount {
                let other = names[k]
                if Int(other.count) == length, other.head == head,
                    length <= 8 || memcmp(base + Int(other.start) + 8, base + start + 8, length - 8) == 0
                {
                    return nil  // a duplicate: JSONParser names it
                }
                k += 1
            }
        }
        seen |= bit
        guard nameCount < JSONScanner.nameCapacity else { return nil }
        let entry = Name(
            start: Int32(truncatingIfNeeded: start),
            count: Int32(truncatingIfNeeded: length),
            head: head
        )
        names[nameCount] = entry
        nameCount += 1
        let colon = skipWhitespace(end + 1)
        guard colon < count, base[colon] == UInt8(ascii: ":") else { return nil }
        return (entry, skipWhitespace(colon + 1))
    }

    /// One value of any kind at `i` inside a container at `depth` (the top-level object is
    /// at 1, as in `JSONParser`). A string's `end` is its closing quote; any other value's
    /// `end` is the index after it.
    @inline(__always)
    private mutating func value(at i: Int, depth: Int) -> Value? {
        guard i < count else { return nil }
        switch base[i] {
        case UInt8(ascii: "\""):
            var ascii = true
            let end = scanString(from: i + 1, ascii: &ascii)
            guard end >= 0 else { return nil }
            return Value(kind: .string, start: i + 1, end: end, isASCII: ascii, isSimple: false)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return number(at: i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            return container(at: i, depth: depth + 1)
        case UInt8(ascii: "t"):
            guard literal(at: i, 0x74_72_75_65, length: 4) else { return nil }
            return Value(kind: .bool, start: i, end: i + 4, isASCII: true, isSimple: false)
        case UInt8(ascii: "f"):
            guard literal(at: i, 0x66_61_6C_73_65, length: 5) else { return nil }
            return Value(kind: .bool, start: i, end: i + 5, isASCII: true, isSimple: false)
        case UInt8(ascii: "n"):
            guard literal(at: i, 0x6E_75_6C_6C, length: 4) else { return nil }
            return Value(kind: .null, start: i, end: i + 4, isASCII: true, isSimple: false)
        default:
            return nil
        }
    }

    /// An object or array at `start` (its opening bracket), at `depth`. For an array, whether
    /// every element is a string (`isSimple`) of ASCII bytes (`isASCII`).
    private mutating func container(at start: Int, depth: Int) -> Value? {
        guard depth <= maxDepth else { return nil }
        let isObject = base[start] == UInt8(ascii: "{")
        let closing = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        var i = skipWhitespace(start + 1)
        if i < count, base[i] == closing {
            return Value(
                kind: isObject ? .object : .array,
                start: start,
                end: i + 1,
                isASCII: !isObject,
                isSimple: !isObject
            )
        }
        let mark = nameCount
        defer { nameCount = mark }
        var seen: UInt64 = 0
        var allStrings = true
        var allASCII = true
        while true {
            var valueStart = i
            if isObject {
                guard let (_, after) = memberName(at: i, mark: mark, seen: &seen) else { return nil }
                valueStart = after
            }
            guard let item = value(at: valueStart, depth: depth) else { return nil }
            if item.kind != .string { allStrings = false }
            if !item.isASCII { allASCII = false }
            guard let (more, next) = nextMember(at: item.end &+ (item.kind == .string ? 1 : 0), closing: closing)
            else { return nil }
            i = next
            if !more { break }
        }
        if isObject { return Value(kind: .object, start: start, end: i, isASCII: false, isSimple: false) }
        return Value(kind: .array, start: start, end: i, isASCII: allStrings && allASCII, isSimple: allStrings)
    }

    // MARK: Tokens

    /// The index of the first byte at or after `i` that is not JSON whitespace.
    @inline(__always)
    private func skipWhitespace(_ start: Int) -> Int {
        var i = start
        while i < count {
            let byte = base[i]
            // Most bytes are above the space; test that first.
            if byte > 0x20 || (byte != 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D) { return i }
            i += 1
        }
        return i
    }

    /// `true`, `false` or `null` at `i`, given as its bytes packed big-endian.
    @inline(__always)
    private func literal(at i: Int, _ packed: UInt64, length: Int) -> Bool {
        guard i + length <= count else { return false }
        var value: UInt64 = 0
        for k in 0..<length { value = value << 8 | UInt64(base[i + k]) }
        return value == packed
    }

    /// A number at `start` in RFC 8259's grammar, exactly as `JSONParser` reads it.
    @inline(__always)
    private func number(at start: Int) -> Value? {
        var i = start
        var simple = true
        if base[i] == UInt8(ascii: "-") {
            simple = false
            i += 1
        }
        guard i < count else { return nil }
        if base[i] == UInt8(ascii: "0") {
            i += 1
        } else if isDigit(base[i]) {
            while i < count, isDigit(base[i]) { i += 1 }
        } else {
            return nil
        }
        if i < count, base[i] == UInt8(ascii: ".") {
            simple = false
            i += 1
            guard i < count, isDigit(base[i]) else { return nil }
            while i < count, isDigit(base[i]) { i += 1 }
        }
        if i < count, base[i] == UInt8(ascii: "e") || base[i] == UInt8(ascii: "E") {
            simple = false
            i += 1
            if i < count, base[i] == UInt8(ascii: "+") || base[i] == UInt8(ascii: "-") { i += 1 }
            guard i < count, isDigit(base[i]) else { return nil }
            while i < count, isDigit(base[i]) { i += 1 }
        }
        return Value(kind: .number, start: start, end: i, isASCII: true, isSimple: simple)
    }

    @inline(__always) private func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    /// The content of a string starting at `start` (after its opening quote), in a document
    /// without backslashes: returns the index of the closing quote, or -1 when a control
    /// character, invalid UTF-8 or the end comes first. Clears `ascii` at a byte ≥ 0x80.
    @inline(__always)
    private func scanString(from start: Int, ascii: inout Bool) -> Int {
        var i = start
        while true {
            if i + 8 <= count {
                // Eight bytes at a time: skip them unless one is a quote, a control character
                // or ≥ 0x80; then go straight to the first such byte (the lowest flag is exact:
                // the subtractions only borrow upwards from a flagged byte).
                let word = UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
                let quote = word ^ 0x2222_2222_2222_2222
                let special =
                    (((quote &- 0x0101_0101_0101_0101) & ~quote)  // a 0x22 byte
                        | (word &- 0x2020_2020_2020_2020)  // a byte < 0x20 (or ≥ 0xA0)
                        | word)  // a byte ≥ 0x80
                    & 0x8080_8080_8080_8080
                if special == 0 {
                    i += 8
                    continue
                }
                i += special.trailingZeroBitCount >> 3
            } else if i >= count {
                return -1  // unterminated
            }
            let byte = base[i]
            if byte == UInt8(ascii: "\"") { return i }
            if byte < 0x20 { return -1 }
            if byte < 0x80 {
                i += 1
                continue
            }
            ascii = false
            guard let next = JSONScanner.endOfUTF8Sequence(base, at: i, count: count) else { return -1 }
            i = next
        }
    }

    /// The index after the well-formed UTF-8 sequence starting at `i` (whose lead byte is
    /// ≥ 0x80), or nil when it is not well-formed (Unicode Table 3-7: no overlong forms,
    /// no surrogates, nothing above U+10FFFF, no truncation).
    @inline(__always)
    static func endOfUTF8Sequence(_ base: UnsafePointer<UInt8>, at i: Int, count: Int) -> Int? {
        let lead = base[i]
        @inline(__always) func continuation(_ j: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            j < count && base[j] >= low && base[j] <= high
        }
        switch lead {
        case 0xC2...0xDF:
            return continuation(i + 1) ? i + 2 : nil
        case 0xE0:
            return continuation(i + 1, 0xA0) && continuation(i + 2) ? i + 3 : nil
        case 0xE1...0xEC, 0xEE...0xEF:
            return continuation(i + 1) && continuation(i + 2) ? i + 3 : nil
        case 0xED:
            return continuation(i + 1, 0x80, 0x9F) && continuation(i + 2) ? i + 3 : nil
        case 0xF0:
            return continuation(i + 1, 0x90) && continuation(i + 2) && continuation(i + 3) ? i + 4 : nil
        case 0xF1...0xF3:
            return continuation(i + 1) && continuation(i + 2) && continuation(i + 3) ? i + 4 : nil
        case 0xF4:
            return continuation(i + 1, 0x80, 0x8F) && continuation(i + 2) && continuation(i + 3) ? i + 4 : nil
        default:
            return nil
        }
    }
}

/// What `JSONScanner.scanObject` tells about each top-level member; returning false stops
/// the scan and makes it report "not certain".
protocol JSONMemberVisitor {
    mutating func visit(_ name: JSONScanner.MemberName, _ value: JSONScanner.Value) -> Bool
}
