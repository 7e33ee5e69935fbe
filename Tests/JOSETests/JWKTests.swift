import JOSE
import Testing
import TokenCrypto

@Suite("JWK and JWK Sets")
struct JWKTests {
    @Test("a JWKS with EC, RSA and OKP keys loads them with their kids and algorithms, skipping use:enc keys")
    func mixedSet() throws {
        let keys = try KeySet.parse(jwks: Fixtures.bytes("jwks-mixed.json"), source: "jwks-mixed.json")
        #expect(keys.entries.map(\.kid) == ["ec-1", "2011-04-29", "ed-1"])
        #expect(keys.entries.map(\.key.algorithm) == [.es256, .rs256, .edDSA])
        #expect(keys.entries.allSatisfy { $0.source == "jwks-mixed.json" })
        #expect(!keys.entries.contains { $0.kid == "rsa-enc" || $0.kid == "ec-enc" })
    }

    @Test("the JWKS keys verify the RFC tokens they correspond to")
    func mixedSetVerifiesRFCTokens() throws {
        let keys = try KeySet.parse(jwks: Fixtures.bytes("jwks-mixed.json"), source: "jwks-mixed.json")
        // RFC 7515 A.3 has no kid: the one ES256 key in the set is chosen.
        let es = try CompactJWS(Vector.rfc7515A3.token)
        let esEntry = try keys.resolve(es.header)
        #expect(esEntry.kid == "ec-1")
        try es.verifySignature(with: esEntry.key)
        let ed = try CompactJWS(Vector.rfc8037A4.token)
        let edEntry = try keys.resolve(ed.header)
        #expect(edEntry.kid == "ed-1")
        try ed.verifySignature(with: edEntry.key)
        // RFC 7515 A.2 was signed by another RSA key than RFC 7638's.
        let rs = try CompactJWS(Vector.rfc7515A2.token)
        expectRefusal(.signature) { try rs.verifySignature(with: try keys.resolve(rs.header).key) }
    }

    @Test("the RFC 7638 §3.1 RSA key has the thumbprint the RFC prints")
    func rfc7638Thumbprint() throws {
        let fixture = try Fixtures.json("rfc7638-3.1-rsa.json")
        let jwk = try #require(fixture["jwk"]?.objectValue)
        let expected = try #require(fixture["thumbprint"]?.stringValue)
        #expect(expected == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        let (kid, key) = try JWK.verifyingKey(from: jwk)
        #expect(kid == "2011-04-29")
        #expect(try key.thumbprint() == expected)
        // Straight from the members, without building a key.
        let members = JWKParameters(
            ["kty", "n", "e"].compactMap { name in jwk[name]?.stringValue.map { (name: name, value: $0) } }
        )
        #expect(try members.thumbprint() == expected)
        // Member order and extra members do not change the thumbprint.
        let reordered = JWKParameters(members.members.reversed() + [(name: "alg", value: "RS256")])
        #expect(try reordered.thumbprint() == expected)
    }

    @Test(
        "thumbprints differ between keys and do not depend on the key's form",
        arguments: [SignatureAlgorithm.es256, .es384, .edDSA, .rs256]
    )
    func thumbprintStability(algorithm: SignatureAlgorithm) throws {
        let key = TestKeys.signing(algorithm)
        let published = try JWK.publicJSON(key.verifyingKey, kid: "x")
        let reloaded = try JWK.verifyingKey(from: published).key
        #expect(try reloaded.thumbprint() == key.thumbprint())
        #expect(try VerifyingKey(pem: key.verifyingKey.publicPEM()).thumbprint() == key.thumbprint())
        let other = try SigningKey.generate(algorithm)
        #expect(try other.thumbprint() != key.thumbprint())
        #expect(try key.thumbprint().utf8.count == 43)
    }

    @Test(
        "a published JWK carries only public members, kid, alg and use:sig",
        arguments: [SignatureAlgorithm.es256, .es384, .edDSA, .rs256, .ps256]
    )
    func publicJSONMembers(algorithm: SignatureAlgorithm) throws {
        let json = try JWK.publicJSON(TestKeys.signing(algorithm).verifyingKey, kid: "kid-1")
        let allowed: Set<String> = ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"]
        #expect(Set(json.keys).isSubset(of: allowed))
        #expect(json["d"] == nil)
        #expect(json["kid"] == "kid-1")
        #expect(json["alg"] == .string(algorithm.rawValue))
        #expect(json["use"] == "sig")
        #expect(json["kty"] == .string(algorithm.keyType))
        // It loads back as the same algorithm, so the published alg is binding.
        #expect(try JWK.verifyingKey(from: json).key.algorithm == algorithm)
    }

    @Test("an HS256 secret is never published as a JWK")
    func noPublicOct() {
        expectRefusal(.header) { _ = try JWK.publicJSON(TestKeys.hs256.verifyingKey, kid: "h") }
    }

    @Test(
        "a private JWK round-trips to a key that signs what the public JWK verifies",
        arguments: SignatureAlgorithm.allCases
    )
    func privateRoundTrip(algorithm: SignatureAlgorithm) throws {
        let key = TestKeys.signing(algorithm)
        let privateJSON = try JWK.privateJSON(key, kid: "p")
        let (kid, signer) = try JWK.signingKey(from: privateJSON)
        #expect(kid == "p")
        #expect(signer.algorithm == algorithm)
        let message = Array("message".utf8)
        #expect(try key.verifyingKey.verify(signature: signer.sign(message), message: message))
    }

    @Test(
        "a JWK whose alg does not fit its key is refused",
        arguments: [
            ("EC", "RS256"), ("EC", "ES384"), ("EC", "HS256"), ("EC", "EdDSA"), ("EC", "none"), ("EC", "ES512"),
        ]
    )
    func jwkAlgMismatch(kty: String, alg: String) throws {
        var jwk = try JWK.publicJSON(TestKeys.es256.verifyingKey, kid: "k")
        jwk["alg"] = .string(alg)
        #expect(jwk["kty"] == .string(kty))
        #expect(throws: JOSEError.self, "\(alg)") { try JWK.verifyingKey(from: jwk) }
        var set = JSONObject()
        set["keys"] = [.object(jwk)]
        #expect(throws: JOSEError.self, "\(alg)") {
            try KeySet.parse(jwks: JSONValue.object(set).compactBytes, source: "t")
        }
    }

    @Test("an RSA JWK marked PS256 verifies PS256 and refuses RS256 tokens of the same key")
    func rsaJWKAlgIsBinding() throws {
        var jwk = try JWK.publicJSON(TestKeys.rs256.verifyingKey, kid: testKid)
        jwk["alg"] = "PS256"
        let (_, key) = try JWK.verifyingKey(from: jwk)
        #expect(key.algorithm == .ps256)
        let keys = KeySet([KeySet.Entry(kid: testKid, key: key, source: "jwk")])
        #expect(throws: Never.self) { try JWTVerifier(keys: keys).verify(try token(TestKeys.ps256), now: testNow) }
        expectTokenRefused(try token(TestKeys.rs256), .algKeyMismatch, keys: keys)
    }

    @Test(
        "malformed JWK Sets are refused",
        arguments: [
            "[]", "{}", "{\"keys\":{}}", "{\"keys\":[1]}", "{\"keys\":[{\"kty\":\"EC\"}]}",
            "{\"keys\":[{\"kty\":\"XYZ\"}]}",
            "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":5,\"y\":\"AA\"}]}", "not json",
            "{\"keys\":[],\"keys\":[]}",
        ]
    )
    func malformedSets(text: String) {
        #expect(throws: JOSEError.self, "\(text)") { try KeySet.parse(jwks: Array(text.utf8), source: "t") }
    }

    @Test("a key of an unsupported type that is not marked use:enc is an error, not silently skipped")
    func unsupportedSigningKey() throws {
        let text =
            #"{"keys":[{"kty":"EC","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2","kid":"p521"}]}"#
        #expect(throws: JOSEError.self) { try KeySet.parse(jwks: Array(text.utf8), source: "t") }
    }

    @Test("an empty JWKS loads as an empty set that verifies nothing")
    func emptySet() throws {
        let keys = try KeySet.parse(jwks: Array(#"{"keys":[]}"#.utf8), source: "t")
        #expect(keys.isEmpty)
        expectRefusal(.unknownKid) { _ = try JWTVerifier(keys: keys).verify(try token(), now: testNow) }
    }

    @Test("a single JWK object is accepted where a set is expected")
    func singleJWK() throws {
        let jwk = try #require(try Fixtures.json("rfc7638-3.1-rsa.json")["jwk"]?.objectValue)
        let keys = try KeySet.parse(jwks: JSONValue.object(jwk).compactBytes, source: "t")
        #expect(keys.entries.count == 1)
        #expect(keys.entries.first?.kid == "2011-04-29")
    }

    @Test("an Ed25519 JWK with another curve name or a short x is refused")
    func okpVariants() throws {
        var jwk = try JWK.publicJSON(TestKeys.edDSA.verifyingKey, kid: nil)
        jwk["crv"] = "Ed448"
        #expect(throws: JOSEError.self) { try JWK.verifyingKey(from: jwk) }
        jwk["crv"] = "X25519"
        #expect(throws: JOSEError.self) { try JWK.verifyingKey(from: jwk) }
        jwk["crv"] = "Ed25519"
        jwk["x"] = .string(Base64URL.encode(SecureRandom.bytes(31)))
        #expect(throws: JOSEError.self) { try JWK.verifyingKey(from: jwk) }
    }
}
