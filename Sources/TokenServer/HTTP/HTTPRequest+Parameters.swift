import Glibc
public import JOSE

extension HTTPRequest {
    /// The body's parameters, from `application/x-www-form-urlencoded` or from a JSON object
    /// whose members are all strings.
    ///
    /// - Form: strict percent-decoding, `+` as a space, a parameter sent twice is refused
    ///   (RFC 6749 §3.1).
    /// - JSON: parsed by JOSE's strict parser (no duplicate members, bounded nesting); a
    ///   member that is not a string is refused with a message naming it.
    /// - Any other media type, or a body without a `Content-Type`, is refused with 415. An
    ///   empty body without a `Content-Type` has no parameters.
    public func formOrJSONParameters() throws(HTTPError) -> [String: String] {
        guard let mediaType = try mediaType() else {
            if body.isEmpty { return [:] }
            throw .unsupportedMediaType(
                "the request has a body but no Content-Type; send application/x-www-form-urlencoded or application/json"
            )
        }
        switch mediaType {
        case "application/x-www-form-urlencoded":
            return try formParameters()
        case "application/json":
            var parameters: [String: String] = [:]
            for (key, value) in try parseJSONObject() {
                guard case .string(let string) = value else {
                    throw .invalidRequest("parameter \"\(printableName(key))\" must be a string, not \(value.typeName)")
                }
                parameters[key] = string
            }
            return parameters
        default:
            throw .unsupportedMediaType(
                "Content-Type \(printableToken(mediaType)) is not accepted; send application/x-www-form-urlencoded or application/json"
            )
        }
    }

    /// `formOrJSONParameters()[name]`: the same value and the same errors. A plain form body
    /// (the form media type without parameters; ASCII without `%` or `+`; at most four
    /// `name=value` pieces with distinct, non-empty names) is read in place, without building
    /// the dictionary; any other body goes through ``formOrJSONParameters()``.
    public func formOrJSONParameter(_ name: String) throws(HTTPError) -> String? {
        if let plain = plainFormParameter(name) { return plain }
        return try formOrJSONParameters()[name]
    }

    /// The parameter of a plain form body (see ``formOrJSONParameter(_:)``): `.some(nil)` when
    /// the body is plain and has no such parameter, nil when the body is not plain.
    func plainFormParameter(_ name: String) -> String?? {
        guard let contentType = header("Content-Type"),
            asciiCaseInsensitiveEquals(contentType, "application/x-www-form-urlencoded")
        else { return nil }
        var wanted = name
        return wanted.withUTF8 { wanted in
            body.withUnsafeBytes { bytes -> String?? in
                // Plain ASCII decodes to itself: every piece below is its own decoded form.
                guard let base = bytes.baseAddress, PercentDecoding.isPlainASCII(bytes) else { return nil }
                func offset(of byte: UInt8, from start: Int, to end: Int) -> Int {
                    guard start < end, let hit = memchr(base + start, Int32(byte), end - start) else { return end }
                    return base.distance(to: UnsafeRawPointer(hit))
                }
                func equal(_ a: Range<Int>, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
                    a.count == count && memcmp(base + a.lowerBound, b, count) == 0
                }
                return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: 4) { names -> String?? in
                    var seen = 0
                    var found: Range<Int>?
                    var start = 0
                    while start < bytes.count {
                        let end = offset(of: UInt8(ascii: "&"), from: start, to: bytes.count)
                        defer { start = end + 1 }
                        if end == start { continue }  // an empty piece, skipped as pairs() skips it
                        let equals = offset(of: UInt8(ascii: "="), from: start, to: end)
                        // No `=` (an empty value), an empty name, or a fifth piece: the full path.
                        guard equals < end, equals > start, seen < 4 else { return nil }
                        let piece = start..<equals
                        // A repeated name: the full path refuses it.
                        for other in names[0..<seen] where equal(other, base + piece.lowerBound, piece.count) {
                            return nil
                        }
                        names[seen] = piece
                        seen += 1
                        if let wantedBase = wanted.baseAddress, equal(piece, wantedBase, wanted.count) {
                            found = (equals + 1)..<end
                        }
                    }
                    guard let found else { return .some(nil) }
                    // ASCII is valid UTF-8: copied without a validating pass.
                    return .some(
                        String(unsafeUninitializedCapacity: found.count) { out in
                            UnsafeMutableRawBufferPointer(out).copyMemory(
                                from: UnsafeRawBufferPointer(rebasing: bytes[found])
                            )
                            return found.count
                        }
                    )
                }
            }
        }
    }

    /// The body as a JSON object (`Content-Type: application/json`), parsed strictly.
    public func jsonObject() throws(HTTPError) -> JSONObject {
        guard let mediaType = try mediaType() else {
            if body.isEmpty { throw .invalidRequest("the request body must be a JSON object") }
            throw .unsupportedMediaType("the request has a body but no Content-Type; send application/json")
        }
        guard mediaType == "application/json" else {
            throw .unsupportedMediaType(
                "Content-Type \(printableToken(mediaType)) is not accepted; send application/json"
            )
        }
        return try parseJSONObject()
    }

    /// The lowercased media type of `Content-Type` without parameters, or nil when absent.
    /// A charset other than UTF-8 (or its subset US-ASCII) is refused with 415.
    func mediaType() throws(HTTPError) -> String? {
        guard let contentType = header("Content-Type") else { return nil }
        // The two media types clients send, without parameters.
        for known in ["application/x-www-form-urlencoded", "application/json"]
        where asciiCaseInsensitiveEquals(contentType, known) {
            return known
        }
        var parts = contentType.utf8.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
            .makeIterator()
        let mediaType = Self.lowercasedASCII(Self.trimmed(parts.next() ?? contentType.utf8[...]))
        guard !mediaType.isEmpty else { return nil }
        while let parameter = parts.next() {
            guard let equals = parameter.firstIndex(of: UInt8(ascii: "=")),
                Self.lowercasedASCII(Self.trimmed(parameter[..<equals])) == "charset"
            else { continue }
            var charset = Self.lowercasedASCII(Self.trimmed(parameter[parameter.index(after: equals)...]))
            if charset.utf8.count >= 2, charset.hasPrefix("\""), charset.hasSuffix("\"") {
                charset = String(charset.dropFirst().dropLast())
            }
            guard charset == "utf-8" || charset == "utf8" || charset == "us-ascii" else {
                throw .unsupportedMediaType(
                    "charset \(printableToken(charset)) is not accepted; send UTF-8 (charset=utf-8 or no charset)"
                )
            }
        }
        return mediaType
    }

    /// The bytes without leading and trailing spaces and tabs.
    private static func trimmed(_ bytes: Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence {
        var bytes = bytes
        while let first = bytes.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { bytes.removeFirst() }
        while let last = bytes.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { bytes.removeLast() }
        return bytes
    }

    /// The text with ASCII letters lowercased (other bytes as they are; invalid UTF-8 repaired).
    private static func lowercasedASCII(_ bytes: Substring.UTF8View.SubSequence) -> String {
        if !bytes.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        return String(
            decoding: bytes.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0 },
            as: UTF8.self
        )
    }

    private func formParameters() throws(HTTPError) -> [String: String] {
        switch PercentDecoding.pairs(body) {
        case .failure(let failure):
            throw .invalidRequest("malformed form body: \(failure.message)")
        case .success(let pairs):
            var parameters: [String: String] = [:]
            for (name, value) in pairs {
                guard !name.isEmpty else { throw .invalidRequest("malformed form body: a parameter has an empty name") }
                guard parameters.updateValue(value, forKey: name) == nil else {
                    throw .invalidRequest("parameter \"\(printableName(name))\" is included more than once")
                }
            }
            return parameters
        }
    }

    private func parseJSONObject() throws(HTTPError) -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONParser().parse(body)
        } catch let error as JSONParser.Error {
            throw .invalidRequest("malformed JSON body: \(error.description)")
        } catch {
            throw .invalidRequest("malformed JSON body")
        }
        guard case .object(let object) = value else {
            throw .invalidRequest("the JSON body must be an object, not \(value.typeName)")
        }
        return object
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingASCIIWhitespace() -> String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
