import Foundation
import JOSE
import Testing
import TokenCrypto

/// A fixed "now" for every time-dependent test: 2023-11-14T22:13:20Z.
let testNow: Double = 1_700_000_000

/// Reads a file from `Tests/JOSETests/Fixtures`.
enum Fixtures {
    struct Missing: Error, CustomStringConvertible {
        let name: String
        var description: String { "fixture \(name) is not in the test bundle" }
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        let url = Bundle.module.resourceURL?.appendingPathComponent("Fixtures").appendingPathComponent(name)
        guard let url, let data = FileManager.default.contents(atPath: url.path) else { throw Missing(name: name) }
        return [UInt8](data)
    }

    static func text(_ name: String) throws -> String {
        String(decoding: try bytes(name), as: UTF8.self)
    }

    static func json(_ name: String) throws -> JSONObject {
        let value = try JSONParser().parse(bytes(name))
        return try #require(value.objectValue, "\(name) holds a JSON object")
    }
}

/// Keys generated once per test run and shared by the suites (RSA generation is slow).
enum TestKeys {
    static let es256 = try! SigningKey.generate(.es256)
    static let es384 = try! SigningKey.generate(.es384)
    static let edDSA = try! SigningKey.generate(.edDSA)
    static let rs256 = try! SigningKey.generate(.rs256)
    static let ps256 = try! SigningKey(pem: try! rs256.pkcs8PEM(), algorithm: .ps256)
    static let hs256 = try! SigningKey.generate(.hs256)
    /// A second ES256 key: the attacker's.
    static let attackerES256 = try! SigningKey.generate(.es256)

    static func signing(_ algorithm: SignatureAlgorithm) -> SigningKey {
        switch algorithm {
        case .es256: es256
        case .es384: es384
        case .edDSA: edDSA
        case .rs256: rs256
        case .ps256: ps256
        case .hs256: hs256
        }
    }
}

/// The kid every test key set uses for its key.
let testKid = "k1"

/// A key set holding the verifying half of `key` under `kid`.
func keySet(_ key: SigningKey, kid: String? = testKid, state: KeyState? = nil) -> KeySet {
    KeySet([KeySet.Entry(kid: kid, key: key.verifyingKey, state: state, source: "test")])
}

/// Claims of a well-formed access token valid at `testNow`, with `changes` applied.
func claims(_ changes: [(String, JSONValue?)] = []) -> JSONObject {
    var object = JSONObject()
    object["iss"] = "https://issuer.example"
    object["sub"] = "user-1"
    object["aud"] = "api"
    object["iat"] = .number(JSONNumber(Int64(testNow) - 60))
    object["nbf"] = .number(JSONNumber(Int64(testNow) - 60))
    object["exp"] = .number(JSONNumber(Int64(testNow) + 600))
    object["jti"] = "jti-1"
    object["scope"] = "read write"
    for (name, value) in changes { object[name] = value }
    return object
}

/// A JSON number literal for a NumericDate `offset` seconds from `testNow`.
func at(_ offset: Int64) -> JSONValue { .number(JSONNumber(Int64(testNow) + offset)) }

/// A token signed by `key` the way tokend signs them.
func token(
    _ key: SigningKey = TestKeys.es256,
    kid: String? = testKid,
    claims: JSONObject = claims(),
    type: String? = "at+jwt"
) throws -> String {
    try JWSSigner(key: key, kid: kid).sign(claims: claims, type: type)
}

/// A compact JWS over exactly these header and payload texts, signed by `key`. Lets a test
/// put anything in the header or payload, including JSON that JSONObject could not hold.
func rawToken(header: String, payload: String, key: SigningKey) throws -> String {
    let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
    return input + "." + Base64URL.encode(try key.sign(Array(input.utf8)))
}

/// A compact JWS over these texts with `signature` as the signature bytes.
func rawToken(header: String, payload: String, signature: [UInt8]) -> String {
    Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8)) + "."
        + Base64URL.encode(signature)
}

/// The compact JSON text of the default claims with `changes`.
func claimsText(_ changes: [(String, JSONValue?)] = []) -> String { JSONValue.object(claims(changes)).compactText }

/// The default claims as JSON text with `member` (raw JSON, e.g. `"exp":true`) replacing
/// the member of that name, or appended.
func claimsText(replacing name: String, with rawMember: String) -> String {
    let rest = JSONValue.object(claims([(name, nil)])).compactText
    return "{" + rawMember + "," + rest.dropFirst()
}

/// The three segments of a compact token.
func segments(_ token: String) -> [String] {
    token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
}

/// A verifier for `key` under `testKid` with `options`.
func verifier(_ key: SigningKey = TestKeys.es256, options: ValidationOptions = ValidationOptions()) -> JWTVerifier {
    JWTVerifier(keys: keySet(key), options: options)
}

/// Expects `body` to throw a JOSEError with exactly `code`; returns it.
@discardableResult
func expectRefusal(
    _ code: JOSEError.Code,
    _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> JOSEError? {
    let error = #expect(throws: JOSEError.self, comment, sourceLocation: sourceLocation) { try body() }
    #expect(
        error?.code == code,
        "expected \(code), got \(error.map { "\($0.code): \($0.reason)" } ?? "no error")",
        sourceLocation: sourceLocation
    )
    return error
}

/// Expects `token` to be refused by a verifier for `key` with `code`, and jwt-inspect's
/// report of it to fail with the same code and exit with the code's category.
func expectTokenRefused(
    _ token: String,
    _ code: JOSEError.Code,
    key: SigningKey = TestKeys.es256,
    keys: KeySet? = nil,
    options: ValidationOptions = ValidationOptions(),
    _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let keys = keys ?? keySet(key)
    expectRefusal(code, comment, sourceLocation: sourceLocation) {
        _ = try JWTVerifier(keys: keys, options: options).verify(token, now: testNow)
    }
    // jwt-inspect takes its policy as a PolicyChoice; ValidationOptions.policy is the verifier's.
    let policy: TokenInspector.PolicyChoice = options.policy.map { .fixed($0) } ?? .none
    let report = TokenInspector(keys: keys, options: options, policy: policy).inspect(token, now: testNow)
    #expect(
        report.failures.contains { $0.code == code },
        "report failures: \(report.failures.map(\.code.name)) \(comment.map { "(\($0))" } ?? "")",
        sourceLocation: sourceLocation
    )
    #expect(
        report.exitCode == Int32(code.category.rawValue),
        "\(comment.map { "\($0)" } ?? "")",
        sourceLocation: sourceLocation
    )
}

/// HMAC-SHA256 (RFC 2104) over the public SHA256 primitive. The attack tests need it
/// because tokend refuses to key an HMAC with public-key bytes, which is what an attacker does.
func referenceHMACSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
    var block = key.count > 64 ? SHA256.hash(key) : key
    block += [UInt8](repeating: 0, count: 64 - block.count)
    let inner = SHA256.hash(block.map { $0 ^ 0x36 } + message)
    return SHA256.hash(block.map { $0 ^ 0x5C } + inner)
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw R‖S ECDSA signature.
func derECDSASignature(raw: [UInt8]) -> [UInt8] {
    let half = raw.count / 2
    func integer(_ value: ArraySlice<UInt8>) -> [UInt8] {
        var digits = Array(value.drop { $0 == 0 })
        if digits.isEmpty { digits = [0] }
        if digits[0] & 0x80 != 0 { digits.insert(0, at: 0) }
        return [0x02, UInt8(digits.count)] + digits
    }
    let body = integer(raw[..<half]) + integer(raw[half...])
    return [0x30] + (body.count >= 0x80 ? [0x81] : []) + [UInt8(body.count)] + body
}
