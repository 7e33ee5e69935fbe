/// The HTTP/1.1 syntax rules tokend applies, written once (RFC 9110 §5, RFC 9112 §3-5): the
/// server's request parser and response writer and the Unix-socket client all call these, so
/// a header one side refuses is refused by every side.
///
/// - A method and a field name are a `token`: one or more `tchar`.
/// - A field value is `SP`, `HTAB`, visible ASCII and obs-text (bytes 0x80-0xFF): no other
///   control character and no DEL. Leading and trailing `SP`/`HTAB` are not part of it.
/// - A request target is visible ASCII (0x21-0x7E).
/// - Field names, media types and option words compare with ASCII letters folded to lowercase.
public enum HTTPSyntax {
    // The per-byte rules are @inlinable and their constants literals: the parser calls them for
    // every byte of a request head, where a call into this module or a global's accessor per
    // byte would be measurable.

    /// tchar (RFC 9110 §5.6.2) as a 128-bit set: bit b of (low, high) is set for byte b
    /// (tested against the definition).
    @inlinable public static var tcharLow: UInt64 { 0x03FF_6CFA_0000_0000 }
    @inlinable public static var tcharHigh: UInt64 { 0x57FF_FFFF_C7FF_FFFE }

    /// Whether `byte` is a `tchar`: `!#$%&'*+-.^_`|~`, digits or letters.
    @inlinable @inline(__always)
    public static func isTokenCharacter(_ byte: UInt8) -> Bool {
        let bit = byte < 64 ? (tcharLow >> UInt64(byte)) & 1 : byte < 128 ? (tcharHigh >> UInt64(byte - 64)) & 1 : 0
        return bit == 1
    }

    /// Whether the bytes are a `token`: not empty, every byte a `tchar`.
    @inlinable
    public static func isToken<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
        isNotEmpty(bytes, andAll: isTokenCharacter)
    }

    /// Whether the text is a `token`.
    public static func isToken(_ text: String) -> Bool { isToken(text.utf8) }

    /// Whether `byte` may stand in a field value: `SP`, `HTAB`, visible ASCII or obs-text.
    @inlinable @inline(__always)
    public static func isFieldValueCharacter(_ byte: UInt8) -> Bool {
        (byte >= 0x20 && byte != 0x7F) || byte == UInt8(ascii: "\t")
    }

    /// Whether every byte may stand in a field value (an empty value is allowed).
    @inlinable
    public static func isFieldValue<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
        for byte in bytes where !isFieldValueCharacter(byte) { return false }
        return true
    }

    /// Whether the text may be a field value.
    public static func isFieldValue(_ text: String) -> Bool { isFieldValue(text.utf8) }

    /// Whether a header field as a response or request carries it is valid: its name a token,
    /// its value field-value characters.
    public static func isValidField(name: String, value: String) -> Bool {
        isToken(name.utf8) && isFieldValue(value.utf8)
    }

    /// Whether `byte` may stand in a request target: visible ASCII.
    @inlinable @inline(__always)
    public static func isTargetCharacter(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7F }

    /// Whether the bytes are a request target's characters (not empty, visible ASCII).
    @inlinable
    public static func isTarget<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
        isNotEmpty(bytes, andAll: isTargetCharacter)
    }

    @inlinable
    static func isNotEmpty<Bytes: Sequence<UInt8>>(_ bytes: Bytes, andAll rule: (UInt8) -> Bool) -> Bool {
        var empty = true
        for byte in bytes {
            guard rule(byte) else { return false }
            empty = false
        }
        return !empty
    }

    /// Whether `byte` is optional whitespace (`SP` or `HTAB`).
    @inlinable @inline(__always)
    public static func isWhitespace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// The byte with an ASCII capital letter folded to lowercase.
    @inlinable @inline(__always)
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    /// Whether two field names (or other ASCII words) are equal with ASCII letters compared
    /// case-insensitively. Does not allocate.
    public static func equalsIgnoringCase(_ lhs: String, _ rhs: String) -> Bool {
        guard lhs.utf8.count == rhs.utf8.count else { return false }
        var lhs = lhs
        var rhs = rhs
        return lhs.withUTF8 { a in
            rhs.withUTF8 { b in
                for i in 0..<a.count where lowercased(a[i]) != lowercased(b[i]) { return false }
                return true
            }
        }
    }

    /// Whether the bytes equal the lowercase ASCII `lower`, ASCII letters compared
    /// case-insensitively.
    @inlinable
    public static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        guard bytes.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        for i in 0..<bytes.count where lowercased(bytes[i]) != l[i] { return false }
        return true
    }

    /// The text with ASCII letters lowercased; other bytes as they are.
    public static func lowercased<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        if !bytes.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        return String(decoding: bytes.map(lowercased), as: UTF8.self)
    }

    /// The text with ASCII letters lowercased.
    public static func lowercased(_ text: some StringProtocol) -> String { lowercased(text.utf8) }

    /// The bytes without leading and trailing `SP`/`HTAB`.
    public static func trimmed<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes) -> Bytes.SubSequence {
        var bytes = bytes[...]
        while let first = bytes.first, isWhitespace(first) { bytes.removeFirst() }
        while let last = bytes.last, isWhitespace(last) { bytes.removeLast() }
        return bytes
    }

    /// The text without leading and trailing `SP`/`HTAB`.
    public static func trimmed(_ text: some StringProtocol) -> String {
        String(decoding: trimmed(Substring(text).utf8), as: UTF8.self)
    }

    /// The comma-separated elements of a list-valued field (`Connection`, `Transfer-Encoding`),
    /// each trimmed and lowercased, empty elements dropped (RFC 9110 §5.6.1).
    public static func listElements(_ value: some StringProtocol) -> [String] {
        value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).compactMap {
            let element = trimmed($0)
            return element.isEmpty ? nil : lowercased(element)
        }
    }
}
