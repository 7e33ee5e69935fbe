import Foundation
import JOSE
import Testing
import TokenCrypto

/// Header rules (RFC 7515 §4.1.11, RFC 7797, RFC 8725 §3) and claim types (RFC 7519 §4.1).
@Suite("Header rules and claim types")
struct HeaderAndClaimRuleTests {
    static func header(_ extra: String) -> String {
        "{\"alg\":\"ES256\",\"kid\":\"\(testKid)\",\"typ\":\"at+jwt\"\(extra.isEmpty ? "" : ",")\(extra)}"
    }

    static func signed(header extra: String) throws -> String {
        try rawToken(header: header(extra), payload: claimsText(), key: TestKeys.es256)
    }

    @Test(
        "a crit extension the verifier does not understand is refused",
        arguments: [
            "\"crit\":[\"exp\"]", "\"crit\":[\"foo\"],\"foo\":1", "\"crit\":[\"b64\"],\"b64\":true",
            "\"crit\":[\"http://example.com/UNDEFINED\"]", "\"crit\":[\"foo\",\"bar\"]", "\"crit\":[\"foo\",\"foo\"]",
        ]
    )
    func critNotUnderstood(member: String) throws {
        expectTokenRefused(try HeaderAndClaimRuleTests.signed(header: member), .crit, "\(member)")
    }

    @Test(
        "a crit that is empty, not an array or lists a non-string is a malformed header",
        arguments: [
            "\"crit\":[]", "\"crit\":\"exp\"", "\"crit\":{}", "\"crit\":null", "\"crit\":[1]",
        ]
    )
    func critMalformed(member: String) throws {
        expectTokenRefused(try HeaderAndClaimRuleTests.signed(header: member), .header, "\(member)")
    }

    @Test("b64:false (unencoded payload) is refused; b64:true is the default encoding")
    func b64() throws {
        expectTokenRefused(try HeaderAndClaimRuleTests.signed(header: "\"b64\":false"), .unencodedPayload)
        expectTokenRefused(try HeaderAndClaimRuleTests.signed(header: "\"b64\":\"false\""), .header)
        let explicit = try HeaderAndClaimRuleTests.signed(header: "\"b64\":true")
        #expect(try verifier().verify(explicit, now: testNow).claims.sub == "user-1")
    }

    @Test("JWE-only members in a JWS header are refused", arguments: ["\"zip\":\"DEF\"", "\"enc\":\"A256GCM\""])
    func jweMembers(member: String) throws {
        expectTokenRefused(try HeaderAndClaimRuleTests.signed(header: member), .header, "\(member)")
    }

    @Test("typ and cty must be strings", arguments: ["\"cty\":5", "\"cty\":null"])
    func headerStringMembers(member: String) throws {
        let header = "{\"alg\":\"ES256\",\"kid\":\"\(testKid)\",\(member)}"
        expectTokenRefused(
            try rawToken(header: header, payload: claimsText(), key: TestKeys.es256),
            .header,
            "\(member)"
        )
        let typHeader = "{\"alg\":\"ES256\",\"kid\":\"\(testKid)\",\"typ\":[\"at+jwt\"]}"
        expectTokenRefused(try rawToken(header: typHeader, payload: claimsText(), key: TestKeys.es256), .header)
    }

    @Test("a header that is not a JSON object is malformed", arguments: ["[\"ES256\"]", "\"ES256\"", "null", "1"])
    func headerNotObject(header: String) throws {
        expectTokenRefused(
            try rawToken(header: header, payload: claimsText(), key: TestKeys.es256),
            .header,
            "\(header)"
        )
    }

    @Test(
        "a header member that appears twice is refused",
        arguments: [
            "{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"k1\"}",
            "{\"alg\":\"none\",\"kid\":\"k1\",\"alg\":\"ES256\"}",
            "{\"alg\":\"ES256\",\"kid\":\"k1\",\"kid\":\"k2\"}",
            "{\"alg\":\"ES256\",\"kid\":\"k1\",\"\\u0061lg\":\"ES256\"}",
        ]
    )
    func duplicateHeaderMember(header: String) throws {
        let token = try rawToken(header: header, payload: claimsText(), key: TestKeys.es256)
        expectTokenRefused(token, .duplicateMember, "\(header)")
    }

    @Test(
        "a claim that appears twice is refused even when the signature is good",
        arguments: ["sub", "exp", "iss", "aud", "scope"]
    )
    func duplicateClaim(name: String) throws {
        let payload = claimsText(replacing: name, with: "\"\(name)\":\"first\",\"\(name)\":\"second\"")
        expectTokenRefused(
            try rawToken(header: HeaderAndClaimRuleTests.header(""), payload: payload, key: TestKeys.es256),
            .duplicateMember,
            "\(name)"
        )
    }

    @Test("a duplicate claim deep inside the claims is refused too")
    func nestedDuplicate() throws {
        let payload = claimsText(replacing: "ext", with: "\"ext\":{\"role\":\"user\",\"role\":\"admin\"}")
        expectTokenRefused(
            try rawToken(header: HeaderAndClaimRuleTests.header(""), payload: payload, key: TestKeys.es256),
            .duplicateMember
        )
    }

    /// Ill-typed or out-of-range registered claims, as raw JSON members.
    static let badClaims = [
        "\"exp\":\"1700000000\"", "\"exp\":true", "\"exp\":null", "\"exp\":[1]", "\"exp\":{}", "\"exp\":1e300",
        "\"exp\":253402300800", "\"exp\":-1", "\"exp\":-1700000000", "\"exp\":1e400",
        "\"nbf\":\"now\"", "\"iat\":false", "\"iat\":-5",
        "\"aud\":5", "\"aud\":[1]", "\"aud\":[\"api\",null]", "\"aud\":{}", "\"aud\":null",
        "\"iss\":7", "\"iss\":[\"https://issuer.example\"]", "\"sub\":1", "\"jti\":{}", "\"scope\":[\"read\",2]",
    ]

    @Test("a registered claim of the wrong type or range is refused", arguments: badClaims)
    func claimType(member: String) throws {
        let name = String(member.dropFirst().prefix { $0 != "\"" })
        let payload = claimsText(replacing: name, with: member)
        let token = try rawToken(header: HeaderAndClaimRuleTests.header(""), payload: payload, key: TestKeys.es256)
        expectTokenRefused(token, .claimType, "\(member)")
    }

    @Test("the last representable NumericDate, 9999-12-31T23:59:59Z, is accepted")
    func largestDate() throws {
        let payload = claimsText(replacing: "exp", with: "\"exp\":253402300799")
        let token = try rawToken(header: HeaderAndClaimRuleTests.header(""), payload: payload, key: TestKeys.es256)
        let verified = try verifier().verify(token, now: testNow)
        #expect(verified.claims.exp?.iso8601 == "9999-12-31T23:59:59Z")
    }

    @Test("fractional NumericDates and aud arrays are accepted")
    func wellTypedVariants() throws {
        let payload = claimsText(replacing: "aud", with: "\"aud\":[\"other\",\"api\"]")
            .replacingOccurrences(of: "\"exp\":\(Int(testNow) + 600)", with: "\"exp\":\(Int(testNow) + 600).5")
        #expect(payload.contains(".5"))
        let token = try rawToken(header: HeaderAndClaimRuleTests.header(""), payload: payload, key: TestKeys.es256)
        let verified = try verifier(options: ValidationOptions(audience: "api")).verify(token, now: testNow)
        #expect(verified.claims.aud == ["other", "api"])
        #expect(verified.claims.exp?.seconds == testNow + 600.5)
        #expect(verified.claims.scope == ["read", "write"])
    }

    @Test("claims that are not a JSON object are refused", arguments: ["[]", "\"sub\"", "42", "null"])
    func claimsNotObject(payload: String) throws {
        let token = try rawToken(header: HeaderAndClaimRuleTests.header(""), payload: payload, key: TestKeys.es256)
        expectTokenRefused(token, .claimType, "\(payload)")
    }

    @Test("claims that are not JSON at all are refused as bad JSON")
    func claimsNotJSON() throws {
        let token = try rawToken(
            header: HeaderAndClaimRuleTests.header(""),
            payload: "{\"sub\":\"a\"",
            key: TestKeys.es256
        )
        expectRefusal(.json) { _ = try verifier().verify(token, now: testNow) }
        // jwt-inspect never shows such a payload as a claim set.
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(token, now: testNow)
        #expect(report.claims == nil)
        #expect(report.checks.contains { $0.name == "claims" && $0.outcome.label != "ok" })
    }
}
