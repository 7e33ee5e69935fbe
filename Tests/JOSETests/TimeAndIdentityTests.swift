import JOSE
import Testing
import TokenCrypto

/// exp, nbf, iat (RFC 7519 §4.1.4–4.1.6), iss, aud and typ (RFC 9068 §4), and how jwt-inspect
/// turns them into exit codes (DESIGN §8).
@Suite("Time, issuer, audience and type")
struct TimeAndIdentityTests {
    @Test("a token whose exp has passed is refused as expired, exit 1")
    func expired() throws {
        expectTokenRefused(try token(claims: claims([("exp", at(-1))])), .expired)
        expectTokenRefused(
            try token(claims: claims([("iat", at(-7200)), ("nbf", at(-7200)), ("exp", at(-3600))])),
            .expired
        )
    }

    @Test("exp is exclusive: valid one second before, expired at exp itself")
    func expBoundary() throws {
        #expect(throws: Never.self) { try verifier().verify(try token(claims: claims([("exp", at(1))])), now: testNow) }
        expectTokenRefused(try token(claims: claims([("exp", at(0))])), .expired)
    }

    @Test("a token whose nbf is in the future is not yet valid, exit 1")
    func notYetValid() throws {
        expectTokenRefused(try token(claims: claims([("nbf", at(60))])), .notYetValid)
        // nbf exactly now is valid.
        #expect(throws: Never.self) { try verifier().verify(try token(claims: claims([("nbf", at(0))])), now: testNow) }
    }

    @Test("a token issued in the future is refused, exit 1")
    func issuedInFuture() throws {
        expectTokenRefused(try token(claims: claims([("iat", at(120)), ("nbf", nil)])), .issuedInFuture)
    }

    @Test("leeway lets a just-expired, just-not-yet-valid or just-future token pass, and no further")
    func leeway() throws {
        let lenient = ValidationOptions(leeway: 30)
        let justExpired = try token(claims: claims([("exp", at(-10))]))
        #expect(try verifier(options: lenient).verify(justExpired, now: testNow).claims.sub == "user-1")
        expectTokenRefused(justExpired, .expired)
        let longExpired = try token(claims: claims([("exp", at(-31))]))
        expectTokenRefused(longExpired, .expired, options: lenient)
        let early = try token(claims: claims([("nbf", at(20)), ("iat", at(20))]))
        #expect(throws: Never.self) { try verifier(options: lenient).verify(early, now: testNow) }
        expectTokenRefused(try token(claims: claims([("nbf", at(31))])), .notYetValid, options: lenient)
        // jwt-inspect applies the same leeway.
        let report = TokenInspector(keys: keySet(TestKeys.es256), options: lenient).inspect(justExpired, now: testNow)
        #expect(report.exitCode == 0)
    }

    @Test("a token without exp is refused when exp is required, and only warned about by jwt-inspect")
    func missingExp() throws {
        let noExp = try token(claims: claims([("exp", nil)]))
        expectRefusal(.missingClaim) { _ = try verifier().verify(noExp, now: testNow) }
        let lenient = ValidationOptions(requireExpiration: false)
        #expect(throws: Never.self) { try verifier(options: lenient).verify(noExp, now: testNow) }
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(noExp, now: testNow)
        #expect(report.exitCode == 0)
        #expect(report.checks.contains { $0.name == "exp" && $0.outcome.label == "warn" })
    }

    @Test(
        "an issuer other than the required one is a policy failure, exit 2",
        arguments: [
            "https://evil.example", "https://issuer.example/", "HTTPS://ISSUER.EXAMPLE", "", "https://issuer.example ",
        ]
    )
    func issuerMismatch(iss: String) throws {
        let options = ValidationOptions(issuer: "https://issuer.example")
        expectTokenRefused(try token(claims: claims([("iss", .string(iss))])), .issuer, options: options, "\(iss)")
    }

    @Test("a missing issuer fails a required issuer; the right one passes")
    func issuerPresence() throws {
        let options = ValidationOptions(issuer: "https://issuer.example")
        expectTokenRefused(try token(claims: claims([("iss", nil)])), .issuer, options: options)
        #expect(try verifier(options: options).verify(try token(), now: testNow).claims.iss == "https://issuer.example")
    }

    @Test(
        "an audience string or array without the required audience is a policy failure, exit 2",
        arguments: [
            JSONValue.string("other"), .string("API"), .string("api "), .array(["other", "another"]), .array([]),
            .string("api other"),
        ]
    )
    func audienceMismatch(aud: JSONValue) throws {
        let options = ValidationOptions(audience: "api")
        expectTokenRefused(try token(claims: claims([("aud", aud)])), .audience, options: options, "\(aud.compactText)")
    }

    @Test("the required audience is found as a string or inside an array; a missing aud fails")
    func audienceMatch() throws {
        let options = ValidationOptions(audience: "api")
        for aud in [JSONValue.string("api"), .array(["api"]), .array(["other", "api"])] {
            #expect(throws: Never.self, "\(aud.compactText)") {
                try verifier(options: options).verify(try token(claims: claims([("aud", aud)])), now: testNow)
            }
        }
        expectTokenRefused(try token(claims: claims([("aud", nil)])), .audience, options: options)
    }

    @Test(
        "typ at+jwt is accepted in its registered spellings",
        arguments: ["at+jwt", "application/at+jwt", "AT+JWT", "Application/AT+JWT"]
    )
    func typAccepted(typ: String) throws {
        let options = ValidationOptions(requiredType: "at+jwt")
        let signed = try token(type: typ)
        #expect(try verifier(options: options).verify(signed, now: testNow).header.typ == typ)
        #expect(
            TokenInspector(keys: keySet(TestKeys.es256), options: options).inspect(signed, now: testNow).exitCode == 0
        )
    }

    @Test(
        "any other typ, or none, is refused when at+jwt is required, exit 2",
        arguments: ["JWT", "jwt", "at+jwt ", "application/jwt", "at", "dpop+jwt"] as [String?] + [nil]
    )
    func typRefused(typ: String?) throws {
        let options = ValidationOptions(requiredType: "at+jwt")
        expectTokenRefused(try token(type: typ), .type, options: options, "\(typ ?? "absent")")
    }

    @Test("jwt-inspect reports a check for every identity requirement it was given")
    func identityChecksListed() throws {
        let options = ValidationOptions(issuer: "https://issuer.example", audience: "api", requiredType: "at+jwt")
        let report = TokenInspector(keys: keySet(TestKeys.es256), options: options).inspect(try token(), now: testNow)
        #expect(report.exitCode == 0)
        for name in ["iss", "aud", "typ", "exp", "nbf", "iat", "signature", "header", "claims"] {
            #expect(report.checks.contains { $0.name == name && $0.outcome.label == "ok" }, "\(name)")
        }
        #expect(report.verdict.hasPrefix("VALID"))
    }

    @Test("jwt-inspect refuses an empty signature segment even without a key, exit 3")
    func emptySignatureWithoutKey() throws {
        let parts = segments(try token())
        let unsigned = parts[0] + "." + parts[1] + "."
        let report = TokenInspector(keys: KeySet()).inspect(unsigned, now: testNow)
        #expect(report.decisive?.code == .signatureEncoding)
        #expect(report.exitCode == 3)
        #expect(report.verdict.hasPrefix("REJECTED"))
    }

    @Test("without a key, jwt-inspect never calls a token valid")
    func noKeyNotValid() throws {
        let report = TokenInspector(keys: KeySet()).inspect(try token(), now: testNow)
        #expect(report.signatureVerified == false)
        #expect(report.exitCode == 0)
        #expect(report.verdict.hasPrefix("SIGNATURE NOT VERIFIED"))
        #expect(report.checks.contains { $0.name == "signature" && $0.outcome.label == "skip" })
    }
}
