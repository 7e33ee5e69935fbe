/// Base64url without padding, exactly as RFC 7515 §2 and Appendix C define it.
///
/// Decoding is strict: only `A–Z a–z 0–9 - _`, no `=` padding, no whitespace, no
/// impossible length (4n+1), and the unused low bits of the last character must be zero,
/// so every byte string has exactly one accepted encoding.
public enum Base64URL {
    /// Why a string is not canonical base64url.
    public enum DecodingError: Error, Equatable, Sendable, CustomStringConvertible {
        case invalidCharacter(offset: Int)
        case invalidLength
        case nonCanonical

        public var description: String {
            switch self {
            case .invalidCharacter(let offset):
                "character at offset \(offset) is not in the base64url alphabet (A-Z a-z 0-9 - _, no padding)"
            case .invalidLength: "length is not possible for base64url"
            case .nonCanonical: "unused trailing bits are not zero (non-canonical base64url)"
            }
        }
    }

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0xFF marks a byte outside the alphabet.
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Encodes bytes as base64url without padding.
    public static func encode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        let input = Array(bytes)
        let outLength = (input.count * 4 + 2) / 3
        return String(unsafeUninitializedCapacity: outLength) { out in
            alphabet.withUnsafeBufferPointer { table in
                var o = 0
                var i = 0
                while i + 3 <= input.count {
                    let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                    out[o] = table[Int(v >> 18 & 63)]
                    out[o + 1] = table[Int(v >> 12 & 63)]
                    out[o + 2] = table[Int(v >> 6 & 63)]
                    out[o + 3] = table[Int(v & 63)]
                    i += 3
                    o += 4
                }
                let rest = input.count - i
                if rest == 1 {
                    let v = UInt32(input[i]) << 16
                    out[o] = table[Int(v >> 18 & 63)]
                    out[o + 1] = table[Int(v >> 12 & 63)]
                    o += 2
                } else if rest == 2 {
                    let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                    out[o] = table[Int(v >> 18 & 63)]
                    out[o + 1] = table[Int(v >> 12 & 63)]
                    out[o + 2] = table[Int(v >> 6 & 63)]
                    o += 3
                }
                return o
            }
        }
    }

    /// Decodes canonical base64url text.
    public static func decode(_ text: some StringProtocol) throws -> [UInt8] {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { try decode($0) }
    }

    /// Decodes canonical base64url from raw ASCII bytes.
    public static func decode(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        let count = input.count
        if count % 4 == 1 { throw DecodingError.invalidLength }
        let outLength = count / 4 * 3 + (count % 4 == 0 ? 0 : count % 4 - 1)
        var failure: DecodingError?
        let result = [UInt8](unsafeUninitializedCapacity: outLength) { out, written in
            reverse.withUnsafeBufferPointer { table in
                var i = 0
                var o = 0
                while i + 4 <= count {
                    let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                    let c = table[Int(input[i + 2])], d = table[Int(input[i + 3])]
                    if (a | b | c | d) & 0xC0 != 0 {
                        failure = .invalidCharacter(offset: i + [a, b, c, d].firstIndex(of: 0xFF)!)
                        return
                    }
                    let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    out[o] = UInt8(truncatingIfNeeded: v >> 16)
                    out[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                    out[o + 2] = UInt8(truncatingIfNeeded: v)
                    i += 4
                    o += 3
                }
                let rest = count - i
                if rest >= 2 {
                    let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                    let c = rest == 3 ? table[Int(input[i + 2])] : 0
                    if (a | b | c) & 0xC0 != 0 {
                        failure = .invalidCharacter(offset: i + [a, b, c].firstIndex(of: 0xFF)!)
                        return
                    }
                    let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6
                    out[o] = UInt8(truncatingIfNeeded: v >> 16)
                    o += 1
                    if rest == 3 {
                        out[o] = UInt8(truncatingIfNeeded: v >> 8)
                        o += 1
                        if c & 0x03 != 0 { failure = .nonCanonical; return }
                    } else if b & 0x0F != 0 {
                        failure = .nonCanonical
                        return
                    }
                }
                written = o
            }
        }
        if let failure { throw failure }
        return result
    }
}
