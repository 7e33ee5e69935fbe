import JOSE
import Testing
import TokenCrypto

/// Attacks on the choice of algorithm and key (RFC 8725 §2.1–2.3, §3.1–3.2).
@Suite("Attacks on alg and key selection")
struct AlgorithmAttackTests {
    static let noneSpellings = ["none", "None", "NONE", "nOnE"]

    @Test("alg none in any spelling is refused, with an empty or a non-empty signature", arguments: noneSpellings)
    func algNone(spelling: String) throws {
        let header = "{\"alg\":\"\(spelling)\",\"kid\":\"\(testKid)\",\"typ\":\"at+jwt\"}"
        let payload = claimsText()
        let unsigned = rawToken(header: header, payload: payload, signature: [])
        #expect(unsigned.hasSuffix("."))
        expectTokenRefused(unsigned, .algNone, "empty signature")
        // A signature segment holding a real ES256 signature of the same input changes nothing.
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        let signed = input + "." + Base64URL.encode(try TestKeys.es256.sign(Array(input.utf8)))
        expectTokenRefused(signed, .algNone, "non-empty signature")
        let junk = input + "." + Base64URL.encode(Array("signature".utf8))
        expectTokenRefused(junk, .algNone, "junk signature")
        // With a key set holding an HS256 secret or no kid at all.
        expectTokenRefused(unsigned, .algNone, keys: keySet(TestKeys.hs256, kid: nil))
    }

    @Test(
        "algorithms tokend does not implement are refused",
        arguments: [
            "HS512", "HS384", "RS1", "", "ES256K", "RS512", "PS384", "ES512", "Ed25519", "es256", "ES256 ", "dir",
        ]
    )
    func unsupportedAlgorithms(alg: String) throws {
        let header = "{\"alg\":\"\(alg)\",\"kid\":\"\(testKid)\"}"
        let token = try rawToken(header: header, payload: claimsText(), key: TestKeys.es256)
        expectTokenRefused(token, .algUnsupported, "alg \(alg)")
    }

    @Test(
        "an alg that is not a string, or no alg at all, is a malformed header",
        arguments: ["1", "null", "true", "[\"ES256\"]", "{\"name\":\"ES256\"}"]
    )
    func algNotAString(alg: String) throws {
        let token = try rawToken(
            header: "{\"alg\":\(alg),\"kid\":\"\(testKid)\"}",
            payload: claimsText(),
            key: TestKeys.es256
        )
        expectTokenRefused(token, .header, "alg \(alg)")
        let missing = try rawToken(header: "{\"kid\":\"\(testKid)\"}", payload: claimsText(), key: TestKeys.es256)
        expectTokenRefused(missing, .header, "no alg")
    }

    @Test("a token whose alg differs from its key's alg is refused", arguments: SignatureAlgorithm.allCases)
    func algKeyMismatch(tokenAlgorithm: SignatureAlgorithm) throws {
        let signed = try token(TestKeys.signing(tokenAlgorithm))
        for keyAlgorithm in SignatureAlgorithm.allCases where keyAlgorithm != tokenAlgorithm {
            // RS256 and PS256 test keys share one RSA key pair: still refused by alg.
            expectTokenRefused(signed, .algKeyMismatch, key: TestKeys.signing(keyAlgorithm), "\(keyAlgorithm) key")
        }
    }

    @Test("the key set itself refuses to hand out a key for a token of another alg")
    func keySetRefusesMismatch() throws {
        let keys = keySet(TestKeys.rs256)
        for algorithm in [SignatureAlgorithm.hs256, .ps256, .es256] {
            let header = try CompactJWS(token(TestKeys.signing(algorithm))).header
            expectRefusal(.algKeyMismatch, "\(algorithm)") { _ = try keys.resolve(header) }
        }
        let anonymous = keySet(TestKeys.rs256, kid: nil)
        let header = try CompactJWS(token(TestKeys.hs256, kid: nil)).header
        expectRefusal(.algKeyMismatch) { _ = try anonymous.resolve(header) }
    }

    // MARK: HS256 keyed with the public key (RS256/ES256 → HS256 confusion)

    static let publicKeyAlgorithms: [SignatureAlgorithm] = [.rs256, .es256, .edDSA]

    /// The forms in which a verifier's public key is easy to find: PEM text, with and without
    /// its final newline, and SPKI DER.
    static func publicKeyForms(_ key: SigningKey) throws -> [(String, [UInt8])] {
        let pem = try key.verifyingKey.publicPEM()
        return [
            ("PEM", Array(pem.utf8)),
            ("PEM without final newline", Array(pem.utf8.dropLast())),
            ("SPKI DER", try key.verifyingKey.spkiDER()),
        ]
    }

    @Test(
        "an HS256 token MACed with the public key is refused by the key set holding that public key",
        arguments: publicKeyAlgorithms
    )
    func hmacWithPublicKeyToken(algorithm: SignatureAlgorithm) throws {
        let victim = TestKeys.signing(algorithm)
        for (form, secret) in try AlgorithmAttackTests.publicKeyForms(victim) {
            for kid in [testKid, nil] as [String?] {
                let header =
                    kid.map { "{\"alg\":\"HS256\",\"kid\":\"\($0)\",\"typ\":\"at+jwt\"}" } ?? "{\"alg\":\"HS256\"}"
                let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claimsText().utf8))
                let forged =
                    input + "." + Base64URL.encode(referenceHMACSHA256(key: secret, message: Array(input.utf8)))
                expectTokenRefused(
                    forged,
                    .algKeyMismatch,
                    keys: keySet(victim, kid: kid),
                    "\(form), kid \(kid ?? "none")"
                )
            }
        }
    }

    @Test("the public key in PEM or SPKI DER form cannot become an HS256 key", arguments: publicKeyAlgorithms)
    func hmacWithPublicKeyConstruction(algorithm: SignatureAlgorithm) throws {
        for (form, secret) in try AlgorithmAttackTests.publicKeyForms(TestKeys.signing(algorithm)) {
            let verifying = #expect(throws: CryptoError.self, "\(form)") { try VerifyingKey(secret: secret) }
            #expect(verifying?.code == .algorithmMismatch, "\(form)")
            let signing = #expect(throws: CryptoError.self, "\(form)") { try SigningKey(secret: secret) }
            #expect(signing?.code == .algorithmMismatch, "\(form)")
        }
    }

    @Test("the test HMAC matches tokend's HS256, so the forged tokens above are real forgeries")
    func referenceHMACAgreesWithTokend() throws {
        let secret = SecureRandom.bytes(48)
        let message = Array("eyJhbGciOiJIUzI1NiJ9.e30".utf8)
        #expect(referenceHMACSHA256(key: secret, message: message) == (try SigningKey(secret: secret).sign(message)))
        let long = SecureRandom.bytes(100)
        #expect(referenceHMACSHA256(key: long, message: message) == (try SigningKey(secret: long).sign(message)))
    }

    // MARK: ECDSA psychic signatures (CVE-2022-21449) and encodings

    static let p256Order: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ]

    static func es256Token(signature: [UInt8]) -> String {
        rawToken(
            header: "{\"alg\":\"ES256\",\"kid\":\"\(testKid)\",\"typ\":\"at+jwt\"}",
            payload: claimsText(),
            signature: signature
        )
    }

    @Test("an all-zero ES256 signature is refused as a bad encoding")
    func psychicZero() {
        expectTokenRefused(
            AlgorithmAttackTests.es256Token(signature: [UInt8](repeating: 0, count: 64)),
            .signatureEncoding
        )
    }

    @Test("an ES256 signature with r = s = n is refused as a bad encoding")
    func psychicOrder() {
        let order = AlgorithmAttackTests.p256Order
        expectTokenRefused(AlgorithmAttackTests.es256Token(signature: order + order), .signatureEncoding)
    }

    @Test("a DER-encoded ES256 signature is refused even though it is a valid signature")
    func derSignature() throws {
        let header = "{\"alg\":\"ES256\",\"kid\":\"\(testKid)\",\"typ\":\"at+jwt\"}"
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claimsText().utf8))
        let raw = try TestKeys.es256.sign(Array(input.utf8))
        #expect(try TestKeys.es256.verifyingKey.verify(signature: raw, message: Array(input.utf8)))
        let der = derECDSASignature(raw: raw)
        expectTokenRefused(input + "." + Base64URL.encode(der), .signatureEncoding)
    }

    @Test("ES256 signatures of 63 or 65 bytes are refused", arguments: [63, 65, 0, 32, 96])
    func es256WrongLength(length: Int) throws {
        let header = "{\"alg\":\"ES256\",\"kid\":\"\(testKid)\",\"typ\":\"at+jwt\"}"
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claimsText().utf8))
        let raw = try TestKeys.es256.sign(Array(input.utf8))
        let signature = length <= 64 ? Array(raw.prefix(length)) : raw + [UInt8](repeating: 0, count: length - 64)
        expectTokenRefused(input + "." + Base64URL.encode(signature), .signatureEncoding, "\(length) bytes")
    }

    // MARK: Keys carried or pointed at by the token

    @Test("an embedded jwk of the attacker's key is ignored: the real key refuses the signature")
    func embeddedJWK() throws {
        let attacker = TestKeys.attackerES256
        let jwk = try JWK.publicJSON(attacker.verifyingKey, kid: testKid)
        for kid in [testKid, nil] as [String?] {
            var header = JSONObject()
            header["alg"] = "ES256"
            if let kid { header["kid"] = .string(kid) }
            header["typ"] = "at+jwt"
            header["jwk"] = .object(jwk)
            let forged = try rawToken(
                header: JSONValue.object(header).compactText,
                payload: claimsText(),
                key: attacker
            )
            // The token is internally consistent: its own jwk verifies it.
            try CompactJWS(forged).verifySignature(with: try JWK.verifyingKey(from: jwk).key)
            expectTokenRefused(forged, .signature, "kid \(kid ?? "none")")
            let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(forged, now: testNow)
            let warning = report.checks.first { $0.name == "header jwk" }
            #expect(warning != nil)
            if case .warning = warning?.outcome {
            } else {
                Issue.record("header jwk is not a warning: \(String(describing: warning?.outcome))")
            }
        }
    }

    @Test("an embedded jwk alone does not make a token verifiable when no key is configured")
    func embeddedJWKWithoutKeys() throws {
        let attacker = TestKeys.attackerES256
        var header = JSONObject()
        header["alg"] = "ES256"
        header["jwk"] = .object(try JWK.publicJSON(attacker.verifyingKey, kid: nil))
        let forged = try rawToken(header: JSONValue.object(header).compactText, payload: claimsText(), key: attacker)
        let report = TokenInspector(keys: KeySet()).inspect(forged, now: testNow)
        #expect(report.signatureVerified == false)
        #expect(report.verdict.hasPrefix("VALID") == false)
        expectRefusal(.unknownKid) { _ = try JWTVerifier(keys: KeySet()).verify(forged, now: testNow) }
    }

    @Test(
        "jku, x5u and x5c never supply a key: an attacker-signed token is refused",
        arguments: [
            ("jku", "\"https://attacker.example/jwks.json\""),
            ("x5u", "\"https://attacker.example/cert.pem\""),
            ("x5c", "[\"MIIBszCCAVmgAwIBAgIUEXAMPLE\"]"),
            ("x5t", "\"dGh1bWJwcmludA\""),
        ]
    )
    func keyPointers(member: String, value: String) throws {
        let header = "{\"alg\":\"ES256\",\"kid\":\"\(testKid)\",\"typ\":\"at+jwt\",\"\(member)\":\(value)}"
        let forged = try rawToken(header: header, payload: claimsText(), key: TestKeys.attackerES256)
        expectTokenRefused(forged, .signature, "\(member)")
        // Signed by the real key, the member is ignored and jwt-inspect warns about it.
        let genuine = try rawToken(header: header, payload: claimsText(), key: TestKeys.es256)
        let verified = try verifier().verify(genuine, now: testNow)
        #expect(verified.header.embeddedKeyMembers == [member])
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(genuine, now: testNow)
        #expect(report.exitCode == 0)
        #expect(report.checks.contains { $0.name == "header \(member)" })
    }

    // MARK: kid lookup

    @Test(
        "a kid that is not in the key set is refused",
        arguments: ["k2", "K1", "k1 ", " k1", "k1\u{0}", "k\u{0131}", ""]
    )
    func unknownKid(kid: String) throws {
        let signed = try token(kid: kid)
        expectTokenRefused(signed, .unknownKid, "kid \(kid.debugDescription)")
    }

    @Test("a kid that is not a string is a malformed header")
    func kidNotAString() throws {
        let forged = try rawToken(header: "{\"alg\":\"ES256\",\"kid\":1}", payload: claimsText(), key: TestKeys.es256)
        expectTokenRefused(forged, .header)
    }

    @Test("with several keys, the one named by kid is used and a token signed by another key fails")
    func kidSelectsKey() throws {
        let keys = KeySet([
            KeySet.Entry(kid: "a", key: TestKeys.es256.verifyingKey, source: "test"),
            KeySet.Entry(kid: "b", key: TestKeys.attackerES256.verifyingKey, source: "test"),
            KeySet.Entry(kid: "r", key: TestKeys.rs256.verifyingKey, source: "test"),
        ])
        let verifier = JWTVerifier(keys: keys)
        #expect(try verifier.verify(token(kid: "a"), now: testNow).key.kid == "a")
        #expect(try verifier.verify(token(TestKeys.attackerES256, kid: "b"), now: testNow).key.kid == "b")
        expectTokenRefused(try token(TestKeys.attackerES256, kid: "a"), .signature, keys: keys)
        expectTokenRefused(try token(kid: "r"), .algKeyMismatch, keys: keys)
    }

    @Test("a token without kid is refused when more than one key could match")
    func ambiguousKidless() throws {
        let keys = KeySet([
            KeySet.Entry(kid: "a", key: TestKeys.es256.verifyingKey, source: "test"),
            KeySet.Entry(kid: "b", key: TestKeys.attackerES256.verifyingKey, source: "test"),
        ])
        expectTokenRefused(try token(kid: nil), .unknownKid, keys: keys)
        // With exactly one key of the token's alg, a kid-less token finds it.
        let single = KeySet([
            KeySet.Entry(kid: "a", key: TestKeys.es256.verifyingKey, source: "test"),
            KeySet.Entry(kid: "r", key: TestKeys.rs256.verifyingKey, source: "test"),
        ])
        #expect(try JWTVerifier(keys: single).verify(token(kid: nil), now: testNow).key.kid == "a")
    }

    @Test(
        "tokens of revoked and retired keys are refused; next, current and previous keys verify",
        arguments: KeyState.allCases
    )
    func keyStates(state: KeyState) throws {
        let keys = keySet(TestKeys.es256, state: state)
        let signed = try token()
        if state.verifies {
            #expect(try JWTVerifier(keys: keys).verify(signed, now: testNow).key.state == state)
        } else {
            expectTokenRefused(signed, .keyRevoked, keys: keys)
        }
    }

    @Test("JWSSigner's header cannot be overridden by extra members")
    func signerHeaderIsFixed() throws {
        var extra = JSONObject()
        extra["alg"] = "none"
        extra["kid"] = "attacker"
        extra["typ"] = "JWT"
        extra["cty"] = "JWT"
        let signed = try JWSSigner(key: TestKeys.es256, kid: testKid).sign(
            payload: Array(claimsText().utf8),
            extraHeader: extra
        )
        let verified = try verifier().verify(signed, now: testNow)
        #expect(verified.header.algorithm == .es256)
        #expect(verified.header.kid == testKid)
        #expect(verified.header.typ == "at+jwt")
        #expect(verified.header.cty == "JWT")
    }
}
