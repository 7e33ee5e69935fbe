import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

@Suite("Key strength at load time")
struct KeyStrengthTests {
    @Test("a 1024-bit RSA private or public key PEM is refused at load")
    func weakRSAFromFixtures() throws {
        let privatePEM = try Fixtures.text("rsa1024-private.pem")
        let publicPEM = try Fixtures.text("rsa1024-public.pem")
        for algorithm in [nil, SignatureAlgorithm.rs256, .ps256] {
            let signing = #expect(throws: CryptoError.self) { try SigningKey(pem: privatePEM, algorithm: algorithm) }
            #expect(signing?.code == .weakKey)
            let verifying = #expect(throws: CryptoError.self) { try VerifyingKey(pem: publicPEM, algorithm: algorithm) }
            #expect(verifying?.code == .weakKey)
            // The public half of the private PEM is refused the same way.
            let half = #expect(throws: CryptoError.self) { try VerifyingKey(pem: privatePEM, algorithm: algorithm) }
            #expect(half?.code == .weakKey)
        }
    }

    @Test(
        "a 1024-bit RSA key generated at test time by the openssl tool is refused",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"))
    )
    func weakRSAFromOpenSSL() async throws {
        let generated = try await withTemporaryDirectory { directory in
            try await run(
                "/usr/bin/openssl",
                ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
                in: directory.path
            )
        }
        try #require(generated.succeeded, "\(generated)")
        let pem = generated.stdout
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let error = #expect(throws: CryptoError.self) { try SigningKey(pem: pem) }
        #expect(error?.code == .weakKey)
    }

    @Test("a 1024-bit RSA JWK in a JWKS is refused when the set is loaded")
    func weakRSAJWK() throws {
        let error = #expect(throws: JOSEError.self) {
            try KeySet.parse(jwks: Fixtures.bytes("rsa1024-public.jwk.json"), source: "rsa1024-public.jwk.json")
        }
        #expect(error?.reason.contains("2048") == true)
        let object = try Fixtures.json("rsa1024-public.jwk.json")
        #expect(throws: JOSEError.self) { try JWK.verifyingKey(from: object) }
    }

    @Test("an HS256 secret of 31 bytes is refused, 32 bytes accepted, in raw and JWK form")
    func hmacSecretLength() throws {
        let short = SecureRandom.bytes(31)
        let signing = #expect(throws: CryptoError.self) { try SigningKey(secret: short) }
        #expect(signing?.code == .weakKey)
        let verifying = #expect(throws: CryptoError.self) { try VerifyingKey(secret: short) }
        #expect(verifying?.code == .weakKey)
        var jwk = JSONObject()
        jwk["kty"] = "oct"
        jwk["k"] = .string(Base64URL.encode(short))
        #expect(throws: JOSEError.self) { try JWK.verifyingKey(from: jwk) }
        #expect(throws: JOSEError.self) { try JWK.signingKey(from: jwk) }
        jwk["k"] = .string(Base64URL.encode(SecureRandom.bytes(32)))
        #expect(try JWK.verifyingKey(from: jwk).key.algorithm == .hs256)
    }
}

/// DESIGN §8: one exit code per token, the most severe category wins:
/// malformed 4 > signature 3 > policy 2 > time 1.
@Suite("Exit code precedence")
struct PrecedenceTests {
    @Test("expired and over the policy: the policy decides, exit 2")
    func expiredAndPolicy() throws {
        let signed = try token(claims: claims([("iat", at(-10_000)), ("nbf", at(-10_000)), ("exp", at(-100))]))
        let report = TokenInspector(keys: keySet(TestKeys.es256), policy: .fixed(.oneHour)).inspect(
            signed,
            now: testNow
        )
        #expect(Set(report.failures.map(\.code.name)) == [JOSEError.Code.expired.name, JOSEError.Code.lifetime.name])
        #expect(report.decisive?.code == .lifetime)
        #expect(report.exitCode == 2)
    }

    @Test("a bad signature and expired: the signature decides, exit 3")
    func badSignatureAndExpired() throws {
        let signed = try token(TestKeys.attackerES256, claims: claims([("exp", at(-100))]))
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(signed, now: testNow)
        #expect(report.failures.contains { $0.code == .expired })
        #expect(report.failures.contains { $0.code == .signature })
        #expect(report.exitCode == 3)
        // The verifier stops at the signature and never looks at the time.
        expectRefusal(.signature) { _ = try verifier().verify(signed, now: testNow) }
    }

    @Test("a bad signature, over the policy, expired and wrong issuer: exit 3")
    func everythingButMalformed() throws {
        let signed = try token(
            TestKeys.attackerES256,
            claims: claims([("iat", at(-10_000)), ("exp", at(-100)), ("iss", "https://evil.example")])
        )
        let options = ValidationOptions(issuer: "https://issuer.example", requireExpiration: false)
        let report = TokenInspector(keys: keySet(TestKeys.es256), options: options, policy: .fixed(.oneHour))
            .inspect(signed, now: testNow)
        #expect(report.failures.count == 4)
        #expect(report.exitCode == 3)
    }

    @Test("an ill-typed claim outranks a bad signature: exit 4")
    func malformedAndBadSignature() throws {
        let forged = try rawToken(
            header: "{\"alg\":\"ES256\",\"kid\":\"k1\"}",
            payload: claimsText(replacing: "exp", with: "\"exp\":\"soon\""),
            key: TestKeys.attackerES256
        )
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(forged, now: testNow)
        #expect(report.failures.contains { $0.code == .signature })
        #expect(report.failures.contains { $0.code == .claimType })
        #expect(report.exitCode == 4)
    }

    @Test("nbf in the future and wrong audience: the audience decides, exit 2")
    func timeAndAudience() throws {
        let signed = try token(claims: claims([("nbf", at(600)), ("aud", "other")]))
        let report = TokenInspector(keys: keySet(TestKeys.es256), options: ValidationOptions(audience: "api"))
            .inspect(signed, now: testNow)
        #expect(report.failures.contains { $0.code == .notYetValid })
        #expect(report.exitCode == 2)
    }

    @Test(
        "the exit code of each category is its number",
        arguments: [
            (JOSEError.Code.expired, Int32(1)), (.notYetValid, 1), (.issuedInFuture, 1), (.issuer, 2), (.audience, 2),
            (.type, 2),
            (.lifetime, 2), (.missingClaim, 2), (.signature, 3), (.algNone, 3), (.unknownKid, 3), (.keyRevoked, 3),
            (.crit, 3),
            (.tooLarge, 4), (.base64, 4), (.json, 4), (.duplicateMember, 4), (.claimType, 4), (.encrypted, 4),
            (.opaque, 4),
        ]
    )
    func categoryNumbers(code: JOSEError.Code, exit: Int32) {
        #expect(Int32(code.category.rawValue) == exit)
    }
}
