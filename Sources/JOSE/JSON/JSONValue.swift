/// A JSON value that keeps object members in their original order and numbers in their
/// original text, so a token's header and claims can be shown exactly as they were signed.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var numberValue: JSONNumber? {
        if case .number(let n) = self { return n }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The JSON type name used in error messages ("string", "number", …).
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public subscript(key: String) -> JSONValue? { objectValue?[key] }
}

/// A JSON number, held as its literal text (RFC 8259 grammar, already validated).
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    public let text: String

    /// Wraps already-validated number text. Use the integer or double initialisers otherwise.
    init(validatedText: String) { self.text = validatedText }

    public init(_ value: Int64) { self.text = String(value) }
    public init(_ value: Int) { self.text = String(value) }

    /// A finite double, printed in the shortest form that round-trips.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        if value == value.rounded(), abs(value) < 9.0e15 {
            self.text = String(Int64(value))
        } else {
            self.text = "\(value)"
        }
    }

    public var doubleValue: Double {
        var text = text
        return text.withUTF8 { JSONNumber.doubleValue(ofText: UnsafeRawBufferPointer($0)) }
    }

    /// The value of number text (RFC 8259 grammar) as a Double; what `doubleValue` returns,
    /// shared with the verifier's scanner so both read NumericDates identically.
    @inline(__always)
    static func doubleValue(ofText text: UnsafeRawBufferPointer) -> Double {
        // Fast path: a plain integer of at most 15 digits is exact in a Double.
        if !text.isEmpty, text.count <= 15 {
            var value: Int64 = 0
            var plain = true
            for i in 0..<text.count {
                let digit = text[i] &- UInt8(ascii: "0")
                guard digit < 10 else {
                    plain = false
                    break
                }
                value = value &* 10 &+ Int64(digit)
            }
            if plain { return Double(value) }
        }
        return parsedDouble(text)
    }

    @inline(never)
    private static func parsedDouble(_ text: UnsafeRawBufferPointer) -> Double {
        Double(String(decoding: text, as: UTF8.self)) ?? .nan
    }

    /// The exact integer value, when the literal is an integer that fits in Int64.
    public var int64Value: Int64? { Int64(text) }

    public var description: String { text }
}

/// An ordered JSON object. Member names are unique: the parser refuses duplicates.
public struct JSONObject: Sendable, Equatable, Sequence {
    public private(set) var members: [(key: String, value: JSONValue)]

    public init() { members = [] }

    public init(_ members: [(key: String, value: JSONValue)]) {
        self.members = []
        for (key, value) in members { self[key] = value }
    }

    public subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            if let index = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[index].value = newValue } else { members.remove(at: index) }
            } else if let newValue {
                members.append((key, newValue))
            }
        }
    }

    /// Appends without the uniqueness scan; the parser checks uniqueness itself.
    mutating func appendUnchecked(_ key: String, _ value: JSONValue) { members.append((key, value)) }

    public var keys: [String] { members.map(\.key) }
    public var count: Int { members.count }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> { members.makeIterator() }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.elementsEqual(rhs.members) { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .number(JSONNumber(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}
