import JOSE
import Testing
import TokenCrypto

/// Lifetime policies (DESIGN §3): 1h, 24h, 30d and custom durations; exp − iat ≤ policy.
@Suite("Lifetime policies")
struct LifetimePolicyTests {
    /// Claims issued 10 s before `testNow` that live `lifetime` seconds.
    static func lived(_ lifetime: Int64) throws -> JWTClaims {
        try JWTClaims(json: claims([("iat", at(-10)), ("nbf", at(-10)), ("exp", at(lifetime - 10))]))
    }

    @Test(
        "each built-in policy holds a token of exactly its length and refuses one second more",
        arguments: [
            (LifetimePolicy.oneHour, Int64(3_600)), (.oneDay, 86_400), (.thirtyDays, 2_592_000),
        ]
    )
    func builtInBoundaries(policy: LifetimePolicy, seconds: Int64) throws {
        #expect(policy.seconds == seconds)
        #expect(policy.violation(of: try LifetimePolicyTests.lived(seconds), now: testNow, leeway: 0) == nil)
        #expect(policy.violation(of: try LifetimePolicyTests.lived(seconds - 1), now: testNow, leeway: 0) == nil)
        let violation = policy.violation(of: try LifetimePolicyTests.lived(seconds + 1), now: testNow, leeway: 0)
        #expect(violation?.code == .lifetime)
        #expect(violation?.category == .policy)
    }

    @Test("the verifier enforces the policy: 3600 s fits 1h, 3601 s does not, exit 2")
    func verifierEnforcesPolicy() throws {
        let options = ValidationOptions(policy: .oneHour)
        let fits = try token(claims: claims([("iat", at(-10)), ("exp", at(3_590))]))
        #expect(try verifier(options: options).verify(fits, now: testNow).claims.lifetime == 3_600)
        let tooLong = try token(claims: claims([("iat", at(-10)), ("exp", at(3_591))]))
        expectTokenRefused(tooLong, .lifetime, options: options)
    }

    @Test(
        "built-in names parse to the built-in policies",
        arguments: [
            ("1h", LifetimePolicy.oneHour), ("24h", .oneDay), ("30d", .thirtyDays), ("1H", .oneHour),
            (" 30d ", .thirtyDays),
        ]
    )
    func builtInNames(text: String, policy: LifetimePolicy) throws {
        #expect(LifetimePolicy(parsing: text) == policy)
    }

    @Test(
        "custom durations parse to their length in seconds",
        arguments: [
            ("15m", Int64(900)), ("7d", 604_800), ("90s", 90), ("2w", 1_209_600), ("1h30m", 5_400), ("900", 900),
            ("12h", 43_200),
        ]
    )
    func customDurations(text: String, seconds: Int64) throws {
        let policy = try #require(LifetimePolicy(parsing: text))
        #expect(policy.seconds == seconds)
        #expect(policy.name == text)
        // A 15m policy refuses a 16-minute token, and so on for each.
        #expect(policy.violation(of: try LifetimePolicyTests.lived(seconds), now: testNow, leeway: 0) == nil)
        #expect(
            policy.violation(of: try LifetimePolicyTests.lived(seconds + 1), now: testNow, leeway: 0)?.code == .lifetime
        )
    }

    @Test(
        "nonsense and non-positive durations are not policies",
        arguments: ["", "0", "0m", "-5m", "abc", "1.5h", "15x", "m", "h1", "99999999999999999999d"]
    )
    func invalidDurations(text: String) {
        #expect(LifetimePolicy(parsing: text) == nil)
    }

    @Test(
        "auto picks the smallest built-in policy the lifetime fits",
        arguments: [
            (Double(1), LifetimePolicy?.some(.oneHour)), (3_600, .oneHour), (3_601, .oneDay), (86_400, .oneDay),
            (86_401, .thirtyDays), (2_592_000, .thirtyDays), (2_592_001, nil),
        ]
    )
    func smallestFitting(lifetime: Double, expected: LifetimePolicy?) {
        #expect(LifetimePolicy.smallestFitting(lifetime: lifetime) == expected)
    }

    @Test("jwt-inspect --policy auto names the fitting policy and passes; beyond 30d it fails with exit 2")
    func inspectorAuto() throws {
        let inspector = TokenInspector(keys: keySet(TestKeys.es256), policy: .auto)
        let daily = try token(claims: claims([("iat", at(-10)), ("exp", at(3_591))]))
        let report = inspector.inspect(daily, now: testNow)
        #expect(report.exitCode == 0)
        #expect(report.checkedPolicy == .oneDay)
        #expect(report.fittingPolicy == .oneDay)
        let hourly = inspector.inspect(try token(), now: testNow)
        #expect(hourly.checkedPolicy == .oneHour)
        let forever = try token(claims: claims([("iat", at(-10)), ("exp", at(2_592_000))]))
        let longReport = inspector.inspect(forever, now: testNow)
        #expect(longReport.exitCode == 2)
        #expect(longReport.failures.contains { $0.code == .lifetime })
    }

    @Test("jwt-inspect --policy with a fixed policy fails a longer token with exit 2")
    func inspectorFixed() throws {
        let inspector = TokenInspector(
            keys: keySet(TestKeys.es256),
            policy: .fixed(try #require(LifetimePolicy(parsing: "15m")))
        )
        #expect(
            inspector.inspect(try token(claims: claims([("iat", at(-10)), ("exp", at(890))])), now: testNow).exitCode
                == 0
        )
        let report = inspector.inspect(try token(claims: claims([("iat", at(-10)), ("exp", at(891))])), now: testNow)
        #expect(report.exitCode == 2)
        #expect(report.decisive?.code == .lifetime)
    }

    @Test("a token without exp or without iat violates every policy", arguments: ["exp", "iat"])
    func missingClaims(name: String) throws {
        let partial = try JWTClaims(json: claims([(name, nil)]))
        for policy in LifetimePolicy.builtIn {
            #expect(policy.violation(of: partial, now: testNow, leeway: 0)?.code == .lifetime, "\(policy.name)")
        }
        let options = ValidationOptions(policy: .thirtyDays, requireExpiration: false)
        expectTokenRefused(try token(claims: claims([(name, nil)])), .lifetime, options: options)
        let auto = TokenInspector(keys: keySet(TestKeys.es256), policy: .auto).inspect(
            try token(claims: claims([(name, nil)])),
            now: testNow
        )
        #expect(auto.exitCode == 2)
    }

    @Test("a token whose exp is before its iat complies with no policy")
    func expBeforeIat() throws {
        let backwards = try JWTClaims(json: claims([("iat", at(-10)), ("exp", at(-20)), ("nbf", nil)]))
        #expect(backwards.lifetime == -10)
        for policy in LifetimePolicy.builtIn {
            #expect(policy.violation(of: backwards, now: testNow - 30, leeway: 0)?.code == .lifetime, "\(policy.name)")
        }
        #expect(LifetimePolicy.smallestFitting(lifetime: -1) == nil)
        let signed = try token(claims: claims([("iat", at(-10)), ("exp", at(600)), ("nbf", nil)]))
        let reversed = try token(claims: claims([("iat", at(600)), ("exp", at(300)), ("nbf", nil)]))
        let inspector = TokenInspector(
            keys: keySet(TestKeys.es256),
            options: ValidationOptions(leeway: 1_000),
            policy: .auto
        )
        #expect(inspector.inspect(signed, now: testNow).exitCode == 0)
        let report = inspector.inspect(reversed, now: testNow)
        #expect(report.exitCode == 2)
        #expect(report.decisive?.code == .lifetime)
    }

    @Test("a token issued in the future cannot comply with a policy")
    func futureIat() throws {
        let future = try JWTClaims(json: claims([("iat", at(600)), ("nbf", nil), ("exp", at(900))]))
        #expect(LifetimePolicy.oneHour.violation(of: future, now: testNow, leeway: 0)?.code == .lifetime)
        #expect(LifetimePolicy.oneHour.violation(of: future, now: testNow, leeway: 600) == nil)
    }
}
