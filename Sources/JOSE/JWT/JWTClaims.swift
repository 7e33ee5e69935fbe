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
    /// Type-checked at init; split only when read.
    public var scope: [String]? {
        guard let value = scopeValue else { return nil }
        return try? JWTClaims.stringList(value, "scope", splitSpaces: true)
    }
    private let scopeValue: JSONValue?

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
        var iss: String?, sub: String?, jti: String?, aud: [String]?, scope: JSONValue?
        var exp: NumericDate?, nbf: NumericDate?, iat: NumericDate?
        // One pass over the members; names compared as packed bytes, not String ==.
        for (name, value) in json.members {
            let utf8 = name.utf8
            guard utf8.count <= 5 else { continue }
            var packed: UInt64 = 0
            for byte in utf8 { packed = packed << 8 | UInt64(byte) }
            switch packed {
            case 0x697373: iss = try JWTClaims.string(value, "iss")
            case 0x737562: sub = try JWTClaims.string(value, "sub")
            case 0x6a7469: jti = try JWTClaims.string(value, "jti")
            case 0x657870: exp = try JWTClaims.date(value, "exp")
            case 0x6e6266: nbf = try JWTClaims.date(value, "nbf")
            case 0x696174: iat = try JWTClaims.date(value, "iat")
            case 0x617564: aud = try JWTClaims.stringList(value, "aud", splitSpaces: false)
            case 0x73636f7065:
                try JWTClaims.checkStringList(value, "scope")
                scope = value
            default: break
            }
        }
        self.iss = iss
        self.sub = sub
        self.jti = jti
        self.exp = exp
        self.nbf = nbf
        self.iat = iat
        self.aud = aud
        self.scopeValue = scope
    }

    /// Names of claims that hold NumericDates.
    public static let timeClaims = ["exp", "nbf", "iat"]

    static func string(_ json: JSONObject, _ name: String) throws -> String? {
        guard let value = json[name] else { return nil }
        return try string(value, name)
    }

    static func string(_ value: JSONValue, _ name: String) throws -> String {
        guard case .string(let s) = value else {
            throw JOSEError(.claimType, "claim \(name) must be a string, got \(value.typeName)")
        }
        return s
    }

    static func date(_ json: JSONObject, _ name: String) throws -> NumericDate? {
        guard let value = json[name] else { return nil }
        return try date(value, name)
    }

    static func date(_ value: JSONValue, _ name: String) throws -> NumericDate {
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
        return try stringList(value, name, splitSpaces: splitSpaces)
    }

    static func stringList(_ value: JSONValue, _ name: String, splitSpaces: Bool) throws -> [String] {
        switch value {
        case .string(let s):
            return splitSpaces ? s.utf8.split(separator: UInt8(ascii: " ")).map { String(Substring($0)) } : [s]
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

    static func checkStringList(_ value: JSONValue, _ name: String) throws {
        switch value {
        case .string: return
        case .array(let items):
            for item in items {
                guard case .string = item else {
                    throw JOSEError(.claimType, "claim \(name) must be a string or an array of strings; it holds a \(item.typeName)")
                }
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
