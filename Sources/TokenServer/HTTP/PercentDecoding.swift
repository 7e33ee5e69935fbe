/// Strict percent-decoding (RFC 3986 §2.1) for paths, query strings and form bodies.
enum PercentDecoding {
    /// Decodes `%XX` escapes and, for `application/x-www-form-urlencoded` and query strings,
    /// `+` as a space. Returns nil for a `%` not followed by two hex digits or for a result
    /// that is not valid UTF-8.
    static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes, plusAsSpace: Bool) -> String? {
        // Plain ASCII without escapes (a token, a kid): the bytes are the text.
        let plain = bytes.withContiguousStorageIfAvailable { buffer -> String? in
            guard isPlainASCII(UnsafeRawBufferPointer(buffer)) else { return nil }
            // ASCII is valid UTF-8: copied without another validating pass.
            return String(unsafeUninitializedCapacity: buffer.count) { out in
                _ = out.initialize(from: buffer)
                return buffer.count
            }
        }
        if let plain = plain ?? nil { return plain }
        var needsWork = false
        for byte in bytes where byte == UInt8(ascii: "%") || (plusAsSpace && byte == UInt8(ascii: "+")) {
            needsWork = true
            break
        }
        if !needsWork { return String(validating: bytes, as: UTF8.self) }

        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                let first = bytes.index(after: index)
                guard first != bytes.endIndex else { return nil }
                let second = bytes.index(after: first)
                guard second != bytes.endIndex, let high = hexValue(bytes[first]), let low = hexValue(bytes[second])
                else { return nil }
                out.append(high << 4 | low)
                index = bytes.index(after: second)
            } else {
                out.append(plusAsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index = bytes.index(after: index)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Whether the bytes are all ASCII with no `%` and no `+`: eight bytes at a time (a byte of
    /// a word is zero exactly when the classic `(v - 0x01…) & ~v & 0x80…` test sets its bit).
    static func isPlainASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZeroByte(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        let percent = ones &* UInt64(UInt8(ascii: "%"))
        let plus = ones &* UInt64(UInt8(ascii: "+"))
        var i = 0
        while i + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if word & highs != 0 || hasZeroByte(word ^ percent) || hasZeroByte(word ^ plus) { return false }
            i += 8
        }
        while i < bytes.count {
            let byte = bytes[i]
            if byte >= 0x80 || byte == UInt8(ascii: "%") || byte == UInt8(ascii: "+") { return false }
            i += 1
        }
        return true
    }

    /// The value of a hex digit (either case), or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Splits `a=1&b=2` into decoded pairs in order. Empty pieces (`a=1&&b=2`, a trailing
    /// `&`) are skipped; a piece without `=` has an empty value. Fails when a piece does not
    /// decode, naming the piece for the caller's message.
    static func pairs<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Result<[(name: String, value: String)], PairError> {
        if let result = bytes.withContiguousStorageIfAvailable({ pairs(buffer: $0) }) { return result }
        return Array(bytes).withUnsafeBufferPointer { pairs(buffer: $0) }
    }

    private static func pairs(buffer: UnsafeBufferPointer<UInt8>) -> Result<[(name: String, value: String)], PairError>
    {
        var result: [(name: String, value: String)] = []
        var position = 0
        var start = 0
        let count = buffer.count
        while start < count {
            var end = start
            while end < count, buffer[end] != UInt8(ascii: "&") { end += 1 }
            defer { start = end + 1 }
            if end == start { continue }
            position += 1
            let piece = buffer[start..<end]
            let name: String?
            let value: String?
            if let equals = piece.firstIndex(of: UInt8(ascii: "=")) {
                name = decode(piece[start..<equals], plusAsSpace: true)
                value = decode(piece[(equals + 1)...], plusAsSpace: true)
            } else {
                name = decode(piece, plusAsSpace: true)
                value = ""
            }
            guard let name else { return .failure(PairError(position: position, name: nil)) }
            guard let value else { return .failure(PairError(position: position, name: name)) }
            result.append((name, value))
        }
        return .success(result)
    }

    /// Which pair failed to decode: its 1-based position and, if the name decoded, the name.
    struct PairError: Error {
        var position: Int
        var name: String?

        var message: String {
            if let name {
                "the value of parameter \"\(printableName(name))\" is not valid percent-encoded UTF-8"
            } else {
                "parameter \(position) has a name that is not valid percent-encoded UTF-8"
            }
        }
    }
}

/// A parameter name shown in a message: control characters replaced, at most 64 characters.
func printableName(_ name: String) -> String {
    var out = ""
    for scalar in name.unicodeScalars.prefix(64) {
        out.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\"" ? "?" : scalar)
    }
    return name.unicodeScalars.count > 64 ? out + "…" : out
}
