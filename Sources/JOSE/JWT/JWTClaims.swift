/// The registered claims of a JWT (RFC 7519 §4.1), type-checked, plus the whole claim set.
public struct JWTClaims: Sendable {
    public let json: JSONObject
    public let iss: String?
    public let sub: String?
    /// `aud` as a list whether it was a string or an array of strings.
    public let aud: [String]?
    public let exp: NumericDate?
    public let nbf: NumericDate?
    public let iat: NumericDate?
    public let jti: String?
    /// `scope` as a list, whether a space-separated string (RFC 8693) or an array.
    public let scope: [String]?

    /// Parses a JWS payload as a claim set: a JSON object with duplicate-free members.
    public init(payload: [UInt8], parser: JSONParser = JSONParser()) throws {
        let value: JSONValue
        do { value = try parser.parse(payload) } catch let error as JSONParser.Error {
            throw JWSParts.jsonError(error, in: "claims")
        }
        guard case .object(let object) = value else {
            throw JOSEError(.claimType, "claims must be a JSON object, got \(value.typeName)")
        }
        try self.init(json: object)
    }

    public init(json: JSONObject) throws {
        self.json = json
        iss = try JWTClaims.string(json, "iss")
        sub = try JWTClaims.string(json, "sub")
        jti = try JWTClaims.string(json, "jti")
        exp = try JWTClaims.date(json, "exp")
        nbf = try JWTClaims.date(json, "nbf")
        iat = try JWTClaims.date(json, "iat")
        aud = try JWTClaims.stringList(json, "aud", splitSpaces: false)
        scope = try JWTClaims.stringList(json, "scope", splitSpaces: true)
    }

    /// Names of claims that hold NumericDates.
    public static let timeClaims = ["exp", "nbf", "iat"]

    static func string(_ json: JSONObject, _ name: String) throws -> String? {
        guard let value = json[name] else { return nil }
        guard case .string(let s) = value else {
            throw JOSEError(.claimType, "claim \(name) must be a string, got \(value.typeName)")
        }
        return s
    }

    static func date(_ json: JSONObject, _ name: String) throws -> NumericDate? {
        guard let value = json[name] else { return nil }
        guard case .number(let number) = value else {
            throw JOSEError(.claimType, "claim \(name) must be a NumericDate (a JSON number of seconds), got \(value.typeName)")
        }
        guard let date = NumericDate(seconds: number.doubleValue) else {
            throw JOSEError(.claimType, "claim \(name) = \(number.text.prefix(32)) is outside 1970-01-01 … 9999-12-31")
        }
        return date
    }

    static func stringList(_ json: JSONObject, _ name: String, splitSpaces: Bool) throws -> [String]? {
        guard let value = json[name] else { return nil }
        switch value {
        case .string(let s):
            return splitSpaces ? s.split(separator: " ").map(String.init) : [s]
        case .array(let items):
            return try items.map {
                guard case .string(let s) = $0 else {
                    throw JOSEError(.claimType, "claim \(name) must be a string or an array of strings; it holds a \($0.typeName)")
                }
                return s
            }
        default:
            throw JOSEError(.claimType, "claim \(name) must be a string or an array of strings, got \(value.typeName)")
        }
    }

    /// `exp − iat`, when both are present.
    public var lifetime: Double? {
        guard let exp, let iat else { return nil }
        return exp.seconds - iat.seconds
    }
}
