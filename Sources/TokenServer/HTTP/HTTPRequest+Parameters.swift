import HTTPSyntax
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
        switch try parameterMediaType() {
        case .none:
            return [:]
        case .form:
            var parameters: [String: String] = [:]
            try readForm(keep: { _ in true }, kept: { parameters[$0] = $1 })
            return parameters
        case .json:
            return try jsonParameters()
        }
    }

    /// `formOrJSONParameters()[name]`: the same value and the same errors, without building
    /// the other parameters' values (form bodies are read by the same one-pass scanner).
    public func formOrJSONParameter(_ name: String) throws(HTTPError) -> String? {
        switch try parameterMediaType() {
        case .none:
            return nil
        case .form:
            var found: String?
            try readForm(keep: { $0 == name }, kept: { found = $1 })
            return found
        case .json:
            return try jsonParameters()[name]
        }
    }

    private enum ParameterMediaType {
        case none
        case form
        case json
    }

    /// Which parameter body this is; any other media type, or a body without a type, is 415.
    private func parameterMediaType() throws(HTTPError) -> ParameterMediaType {
        guard let mediaType = try mediaType() else {
            if body.isEmpty { return .none }
            throw .unsupportedMediaType(
                "the request has a body but no Content-Type; send application/x-www-form-urlencoded or application/json"
            )
        }
        switch mediaType {
        case Self.formMediaType: return .form
        case Self.jsonMediaType: return .json
        default:
            throw .unsupportedMediaType(
                "Content-Type \(printableToken(mediaType)) is not accepted; send application/x-www-form-urlencoded or application/json"
            )
        }
    }

    private static var formMediaType: String { "application/x-www-form-urlencoded" }
    private static var jsonMediaType: String { "application/json" }

    /// The form body by RFC 6749 §3.1's rules (``PercentDecoding/readForm(_:keep:kept:)``).
    private func readForm(keep: (String) -> Bool, kept: (String, String) -> Void) throws(HTTPError) {
        let failure = body.withUnsafeBytes { PercentDecoding.readForm($0, keep: keep, kept: kept) }
        if let failure { throw .invalidRequest(failure.message) }
    }

    /// A JSON object whose members are all strings.
    private func jsonParameters() throws(HTTPError) -> [String: String] {
        var parameters: [String: String] = [:]
        for (key, value) in try parseJSONObject() {
            guard case .string(let string) = value else {
                throw .invalidRequest("parameter \"\(printableName(key))\" must be a string, not \(value.typeName)")
            }
            parameters[key] = string
        }
        return parameters
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
        if HTTPSyntax.equalsIgnoringCase(contentType, Self.formMediaType) { return Self.formMediaType }
        if HTTPSyntax.equalsIgnoringCase(contentType, Self.jsonMediaType) { return Self.jsonMediaType }
        var parts = contentType.utf8.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
            .makeIterator()
        let mediaType = HTTPSyntax.lowercased(HTTPSyntax.trimmed(parts.next() ?? contentType.utf8[...]))
        guard !mediaType.isEmpty else { return nil }
        while let parameter = parts.next() {
            guard let equals = parameter.firstIndex(of: UInt8(ascii: "=")),
                HTTPSyntax.lowercased(HTTPSyntax.trimmed(parameter[..<equals])) == "charset"
            else { continue }
            var charset = HTTPSyntax.lowercased(HTTPSyntax.trimmed(parameter[parameter.index(after: equals)...]))
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
