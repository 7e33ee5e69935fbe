import HTTPSyntax
public import JOSE

extension HTTPResponse {
    /// A JSON response: compact UTF-8 text with `Content-Type: application/json`.
    public static func json(
        _ status: Int,
        _ value: JSONValue,
        headers: [(name: String, value: String)] = []
    ) -> HTTPResponse {
        var all: [(name: String, value: String)] = [("Content-Type", "application/json")]
        all.append(contentsOf: headers)
        return HTTPResponse(status: status, headers: all, body: value.compactBytes)
    }

    /// An OAuth-style JSON error (RFC 6749 §5.2): `{"error": …, "error_description": …}`.
    public static func error(
        status: Int,
        error: String,
        description: String,
        headers: [(name: String, value: String)] = []
    ) -> HTTPResponse {
        .json(status, ["error": .string(error), "error_description": .string(description)], headers: headers)
    }

    /// The first value of a header, case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { HTTPSyntax.equalsIgnoringCase($0.name, name) }?.value
    }
}
