import Glibc

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

    // MARK: Forms and query strings

    /// One `name=value` piece of a form body or query string: its 1-based position among the
    /// non-empty pieces and the ranges of its name and value, still encoded.
    struct Piece {
        var position: Int
        var name: Range<Int>
        var value: Range<Int>
    }

    /// The pieces of `a=1&b=2`, in order, in one pass over the raw bytes: empty pieces
    /// (`a=1&&b=2`, a trailing `&`) are skipped; a piece without `=` has an empty value.
    /// Nothing is decoded here: ``text(_:_:)`` decodes a range when it is read.
    static func forEachPiece(_ bytes: UnsafeRawBufferPointer, _ body: (Piece) -> Void) {
        guard let base = bytes.baseAddress else { return }
        func offset(of byte: UInt8, from start: Int, to end: Int) -> Int {
            guard start < end, let hit = memchr(base + start, Int32(byte), end - start) else { return end }
            return base.distance(to: UnsafeRawPointer(hit))
        }
        var position = 0
        var start = 0
        while start < bytes.count {
            let end = offset(of: UInt8(ascii: "&"), from: start, to: bytes.count)
            defer { start = end + 1 }
            if end == start { continue }
            position += 1
            let equals = offset(of: UInt8(ascii: "="), from: start, to: end)
            body(Piece(position: position, name: start..<equals, value: min(equals + 1, end)..<end))
        }
    }

    /// The decoded text of a form or query range (`+` is a space), or nil when it is not valid
    /// percent-encoded UTF-8. A range without `%` or `+` is its own text.
    static func text(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        decode(UnsafeRawBufferPointer(rebasing: bytes[range]), plusAsSpace: true)
    }

    /// Whether a range decodes, without keeping its text when it is plain ASCII.
    private static func decodes(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        isPlainASCII(UnsafeRawBufferPointer(rebasing: bytes[range])) || text(bytes, range) != nil
    }

    /// Splits a query string `a=1&b=2` into decoded pairs in order (names may repeat or be
    /// empty). Fails at the first piece that does not decode, naming it for the message.
    static func pairs<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Result<[(name: String, value: String)], PairError> {
        if let result = bytes.withContiguousStorageIfAvailable({ pairs(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { pairs($0) }
    }

    private static func pairs(_ bytes: UnsafeRawBufferPointer) -> Result<[(name: String, value: String)], PairError> {
        var result: [(name: String, value: String)] = []
        var failure: PairError?
        forEachPiece(bytes) { piece in
            guard failure == nil else { return }
            guard let name = text(bytes, piece.name) else {
                failure = PairError(position: piece.position, name: nil)
                return
            }
            guard let value = text(bytes, piece.value) else {
                failure = PairError(position: piece.position, name: name)
                return
            }
            result.append((name, value))
        }
        if let failure { return .failure(failure) }
        return .success(result)
    }

    /// Reads an `application/x-www-form-urlencoded` body by RFC 6749 §3.1's rules, in one
    /// pass: every piece must decode, no name may be empty, no name may come twice. `kept`
    /// receives the decoded name and value of each field whose name `keep` accepts; the
    /// values of other fields are checked but not built. The error is the first piece that
    /// does not decode, else the first name that breaks a rule.
    static func readForm(
        _ bytes: UnsafeRawBufferPointer,
        keep: (String) -> Bool,
        kept: (String, String) -> Void
    ) -> FormError? {
        var undecodable: PairError?
        var broken: FormError?
        // The names so far, to refuse a repeated one: a few in place, then in a set (linear
        // in the number of fields whatever the body holds).
        let inline = 8
        return withUnsafeTemporaryAllocation(of: String.self, capacity: inline) { names in
            var count = 0
            var many: Set<String> = []
            defer { names.baseAddress?.deinitialize(count: min(count, inline)) }
            func isRepeated(_ name: String) -> Bool {
                if count < inline {
                    for i in 0..<count where names[i] == name { return true }
                    names.baseAddress!.advanced(by: count).initialize(to: name)
                } else {
                    if count == inline { many = Set(names[0..<inline]) }
                    if !many.insert(name).inserted { return true }
                }
                count += 1
                return false
            }
            forEachPiece(bytes) { piece in
                guard undecodable == nil else { return }
                guard let name = text(bytes, piece.name) else {
                    undecodable = PairError(position: piece.position, name: nil)
                    return
                }
                let wanted = broken == nil && keep(name)
                var value: String?
                if wanted {
                    value = text(bytes, piece.value)
                } else if decodes(bytes, piece.value) {
                    value = ""
                }
                guard let value else {
                    undecodable = PairError(position: piece.position, name: name)
                    return
                }
                guard broken == nil else { return }
                if name.isEmpty {
                    broken = .emptyName
                } else if isRepeated(name) {
                    broken = .repeated(name)
                } else if wanted {
                    kept(name, value)
                }
            }
            if let undecodable { return .undecodable(undecodable) }
            return broken
        }
    }

    /// Why a form body was refused.
    enum FormError: Error {
        /// A piece is not valid percent-encoded UTF-8.
        case undecodable(PairError)
        /// A parameter has an empty name (`=x`).
        case emptyName
        /// A parameter name comes more than once.
        case repeated(String)

        /// What was wrong, for a 400's description (never quoting a value).
        var message: String {
            switch self {
            case .undecodable(let failure): "malformed form body: \(failure.message)"
            case .emptyName: "malformed form body: a parameter has an empty name"
            case .repeated(let name): "parameter \"\(printableName(name))\" is included more than once"
            }
        }
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
