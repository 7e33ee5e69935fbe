import JOSE
import Testing
import TokenTestSupport

/// The shape of a JSON value: member names, nesting and JSON types, values left out. Objects
/// list their members sorted by name, so two shapes compare equal exactly when a client reading
/// one finds the same members with the same types in the other.
///
/// `allow` widens what one path may be, for what a contract leaves open: `"user.vendor":
/// ["null", "string"]` renders both as `null|string`; `"user.stats": ["object"]` renders any
/// object as `object` (members free); `"user.permissions[]": ["string"]` renders an array of
/// strings, empty or not, as `[string]`.
func shape(_ value: JSONValue, allow: [String: Set<String>] = [:], path: String = "") -> String {
    if let allowed = allow[path], allowed.contains(value.typeName) { return allowed.sorted().joined(separator: "|") }
    switch value {
    case .object(let object):
        let members = object.members.sorted { $0.key < $1.key }.map { member in
            "\(member.key):"
                + shape(member.value, allow: allow, path: path.isEmpty ? member.key : "\(path).\(member.key)")
        }
        return "{" + members.joined(separator: ",") + "}"
    case .array(let elements):
        if let allowed = allow[path + "[]"], elements.allSatisfy({ allowed.contains($0.typeName) }) {
            return "[" + allowed.sorted().joined(separator: "|") + "]"
        }
        let shapes = Set(elements.map { shape($0, allow: allow, path: path + "[]") })
        return "[" + shapes.sorted().joined(separator: "|") + "]"
    default:
        return value.typeName
    }
}

/// Parses a seed document's example (JSON text) or fails the test.
func seedJSON(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
    try #require(try? JSONParser().parse(text), "a seed example does not parse", sourceLocation: sourceLocation)
}

/// The body's JSON, or a recorded failure (the body with tokens masked).
func json(_ reply: Reply, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
    try #require(reply.json, "the body is not JSON: \(reply.summary)", sourceLocation: sourceLocation)
}

/// Expects `reply` to have `status` and the same shape as the seed example.
func expectShape(
    _ reply: Reply,
    _ status: Int,
    like example: JSONValue,
    allow: [String: Set<String>] = [:],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(reply.status == status, "\(reply.summary)", sourceLocation: sourceLocation)
    #expect(reply.header("Content-Type")?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
    guard let body = reply.json else {
        Issue.record("the body is not JSON: \(reply.summary)", sourceLocation: sourceLocation)
        return
    }
    let actual = shape(body, allow: allow)
    let expected = shape(example, allow: allow)
    #expect(actual == expected, sourceLocation: sourceLocation)
}

/// The error shapes of the dialects.
enum ErrorShape: Sendable, CustomStringConvertible {
    /// appmixer and classic: `{"error": "…"}`.
    case message
    /// v1: `{"statusCode": N, "message": "…"[, "errors": ["…"]]}`.
    case statusCode

    var description: String { self == .message ? "{error}" : "{statusCode,message[,errors]}" }
}

/// Expects an error answer: the status, a JSON body of the dialect's shape (statusCode equal to
/// the status in v1), and nothing else. Returns the body for closer checks.
@discardableResult
func expectError(
    _ reply: Reply,
    _ status: Int,
    _ errorShape: ErrorShape,
    _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) -> JSONValue? {
    #expect(reply.status == status, "\(what): \(reply.summary)", sourceLocation: sourceLocation)
    #expect(
        reply.header("Content-Type")?.hasPrefix("application/json") == true,
        "\(what): Content-Type",
        sourceLocation: sourceLocation
    )
    guard let body = reply.json, let object = body.objectValue else {
        Issue.record("\(what): the body is not a JSON object: \(reply.summary)", sourceLocation: sourceLocation)
        return nil
    }
    switch errorShape {
    case .message:
        let ok = object.keys == ["error"] && !(object["error"]?.stringValue ?? "").isEmpty
        #expect(ok, "\(what): not {\"error\": \"…\"}: \(reply.summary)", sourceLocation: sourceLocation)
    case .statusCode:
        let keysOK =
            Set(object.keys).isSubset(of: ["statusCode", "message", "errors"])
            && object.keys.starts(with: ["statusCode", "message"])
        let codeOK = object["statusCode"]?.numberValue?.int64Value == Int64(reply.status)
        let messageOK = !(object["message"]?.stringValue ?? "").isEmpty
        let errorsOK = object["errors"].map { $0.arrayValue?.allSatisfy { $0.stringValue != nil } ?? false } ?? true
        #expect(
            keysOK && codeOK && messageOK && errorsOK,
            "\(what): not {statusCode,message[,errors]}: \(reply.summary)",
            sourceLocation: sourceLocation
        )
    }
    return body
}

/// Expects the body to be exactly `expected`, byte for byte (error bodies carry no secrets).
func expectBody(_ reply: Reply, _ status: Int, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(reply.status == status, "\(reply.summary)", sourceLocation: sourceLocation)
    #expect(reply.text.redactingSecrets == expected, sourceLocation: sourceLocation)
}

extension JSONValue {
    /// The messages of a v1 validation error (`errors`), or the appmixer/classic `error`.
    var errorTexts: [String] {
        if let errors = self["errors"]?.arrayValue { return errors.compactMap(\.stringValue) }
        return [self["error"]?.stringValue, self["message"]?.stringValue].compactMap { $0 }
    }
}
