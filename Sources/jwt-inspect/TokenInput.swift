import JOSE

/// Finds the token in what a person pasted: a bare token, `Bearer …`, an
/// `Authorization: Bearer …` line (or a header block holding one), quotes, whitespace, or a
/// JSON object with `token`, `accessToken` or `access_token`.
enum TokenInput {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let jsonFields = ["token", "accessToken", "access_token", "id_token", "refreshToken", "refresh_token"]

    static func extract(_ raw: String) throws -> String {
        var text = raw.trimmingWhitespace
        guard !text.isEmpty else {
            throw Failure(description: "no token given: pass it as an argument or on standard input")
        }

        if text.hasPrefix("{") {
            let value: JSONValue
            do { value = try JSONParser().parse(text) } catch {
                throw Failure(description: "the input starts with '{' but is not valid JSON: \(error)")
            }
            guard let object = value.objectValue else { throw Failure(description: "the JSON input is not an object") }
            guard let field = jsonFields.first(where: { object[$0]?.stringValue != nil }) else {
                throw Failure(
                    description: "the JSON input has none of the fields \(jsonFields.joined(separator: ", "))"
                )
            }
            text = object[field]!.stringValue!
        }

        let lines = text.split(whereSeparator: \.isNewline).map { String($0).trimmingWhitespace }.filter { !$0.isEmpty }
        if lines.count > 1 {
            guard let header = lines.first(where: { $0.lowercased().hasPrefix("authorization:") }) else {
                throw Failure(
                    description:
                        "the input has \(lines.count) lines and none is an Authorization header; pass one token"
                )
            }
            text = header
        }
        // Peel quotes, an Authorization: name and a Bearer scheme in whatever order they
        // were pasted ("Authorization: Bearer T" copied from curl -H, 'Bearer T', …).
        var previous = ""
        while previous != text {
            previous = text
            for quote in ["\"", "'", "`"] where text.count >= 2 && text.hasPrefix(quote) && text.hasSuffix(quote) {
                text = String(text.dropFirst().dropLast()).trimmingWhitespace
            }
            if text.lowercased().hasPrefix("authorization:") {
                text = String(text.dropFirst("authorization:".count)).trimmingWhitespace
            }
            if text.lowercased().hasPrefix("bearer ") || text.lowercased().hasPrefix("bearer\t") {
                text = String(text.dropFirst("bearer ".count)).trimmingWhitespace
            }
        }
        guard !text.isEmpty else { throw Failure(description: "no token found in the input") }
        return text
    }
}

extension String {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[start...end])
    }
}
