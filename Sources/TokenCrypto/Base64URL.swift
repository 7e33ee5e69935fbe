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

    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8
    )

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

    /// The number of bytes `encodedLength` characters of unpadded base64url decode to, or
    /// nil for an impossible length (4n+1).
    @inlinable
    public static func decodedLength(ofEncodedLength encodedLength: Int) -> Int? {
        let rest = encodedLength % 4
        if rest == 1 || encodedLength < 0 { return nil }
        return encodedLength / 4 * 3 + (rest == 0 ? 0 : rest - 1)
    }

    /// Decodes canonical base64url from raw ASCII bytes into `output`, which must hold at
    /// least `decodedLength(ofEncodedLength: input.count)` bytes. Returns the number of bytes
    /// written, or nil when `input` is not canonical base64url (the same inputs `decode`
    /// refuses; it says why). No allocation: for hot paths that decode into a buffer they own.
    public static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        let count = input.count
        guard let outLength = decodedLength(ofEncodedLength: count), output.count >= outLength else { return nil }
        if count == 0 { return 0 }
        return shiftedReverse.withUnsafeBufferPointer { tables -> Int? in
            let src = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let dst = output.baseAddress!
            let t = tables.baseAddress!
            // Each character's 6 bits pre-shifted into place, one table per position in a
            // quantum; a character outside the alphabet sets bit 24 in every table, so OR-ing
            // all lookups and testing that bit once at the end keeps the loop free of branches.
            var invalid: UInt32 = 0
            var i = 0
            var o = 0
            // Two quanta at a time, 6 bytes written as one 8-byte store while all 8 land in
            // `output` (the next store overwrites the 2 extra).
            // The 8 characters come in one load; the lookups are what the loop waits on.
            // The 8-byte stores land in `output` while o + 8 ≤ output.count, o = 6 × step.
            let steps = output.count >= 8 ? min(count / 8, (output.count - 8) / 6 + 1) : 0
            for _ in 0..<steps {
                let x = UInt64(littleEndian: UnsafeRawPointer(src + i).loadUnaligned(as: UInt64.self))
                let v =
                    t[Int(x & 0xFF)] | t[256 + Int(x >> 8 & 0xFF)] | t[512 + Int(x >> 16 & 0xFF)]
                    | t[768 + Int(x >> 24 & 0xFF)]
                let w =
                    t[Int(x >> 32 & 0xFF)] | t[256 + Int(x >> 40 & 0xFF)] | t[512 + Int(x >> 48 & 0xFF)]
                    | t[768 + Int(x >> 56)]
                invalid |= v | w
                let pair = UInt64(v & 0xFF_FFFF) << 40 | UInt64(w & 0xFF_FFFF) << 16
                dst.storeBytes(of: pair.bigEndian, toByteOffset: o, as: UInt64.self)
                i += 8
                o += 6
            }
            // Whole quanta, writing 4 bytes at a time while the 4th still lands in `output`
            // (the next quantum overwrites it).
            while i + 4 <= count {
                let v =
                    t[Int(src[i])] | t[256 + Int(src[i + 1])] | t[512 + Int(src[i + 2])] | t[768 + Int(src[i + 3])]
                invalid |= v
                if o + 4 <= output.count {
                    dst.storeBytes(of: (v << 8).bigEndian, toByteOffset: o, as: UInt32.self)
                } else {
                    dst.storeBytes(of: UInt8(truncatingIfNeeded: v >> 16), toByteOffset: o, as: UInt8.self)
                    dst.storeBytes(of: UInt8(truncatingIfNeeded: v >> 8), toByteOffset: o + 1, as: UInt8.self)
                    dst.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: o + 2, as: UInt8.self)
                }
                i += 4
                o += 3
            }
            let rest = count - i
            if rest >= 2 {
                let a = t[Int(src[i])]
                let b = t[256 + Int(src[i + 1])]
                let c = rest == 3 ? t[512 + Int(src[i + 2])] : 0
                let v = a | b | c
                invalid |= v
                dst.storeBytes(of: UInt8(truncatingIfNeeded: v >> 16), toByteOffset: o, as: UInt8.self)
                o += 1
                if rest == 3 {
                    dst.storeBytes(of: UInt8(truncatingIfNeeded: v >> 8), toByteOffset: o, as: UInt8.self)
                    o += 1
                    if v & 0xFF != 0 { return nil }  // the last character's low 2 bits
                } else if v & 0xF000 != 0 {  // the last character's low 4 bits
                    return nil
                }
            }
            return invalid & 0x0100_0000 == 0 ? o : nil
        }
    }

    /// Four 256-entry tables: a character's value shifted left by 18, 12, 6 and 0 bits, or
    /// bit 24 for a byte outside the alphabet.
    private static let shiftedReverse: [UInt32] = {
        var table = [UInt32](repeating: 0x0100_0000, count: 1024)
        for (index, byte) in alphabet.enumerated() {
            for position in 0..<4 {
                table[position * 256 + Int(byte)] = UInt32(index) << (18 - 6 * position)
            }
        }
        return table
    }()

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
                    let a = table[Int(input[i])]
                    let b = table[Int(input[i + 1])]
                    let c = table[Int(input[i + 2])]
                    let d = table[Int(input[i + 3])]
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
                    let a = table[Int(input[i])]
                    let b = table[Int(input[i + 1])]
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
                        if c & 0x03 != 0 {
                            failure = .nonCanonical
                            return
                        }
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
