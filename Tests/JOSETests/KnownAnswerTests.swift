import JOSE
import Testing
import TokenCrypto

/// One RFC example: a JWK (with its private members) and the compact JWS the RFC prints.
struct Vector: CustomTestStringConvertible, Sendable {
    let file: String
    var testDescription: String { file }

    var object: JSONObject { get throws { try Fixtures.json(file) } }
    var jwk: JSONObject { get throws { try #require(try object["jwk"]?.objectValue) } }
    var token: String { get throws { try #require(try object["token"]?.stringValue) } }

    static let rfc7515A1 = Vector(file: "rfc7515-a1-hs256.json")
    static let rfc7515A2 = Vector(file: "rfc7515-a2-rs256.json")
    static let rfc7515A3 = Vector(file: "rfc7515-a3-es256.json")
    static let rfc8037A4 = Vector(file: "rfc8037-a4-ed25519.json")
    static let rfc7520S41 = Vector(file: "rfc7520-4.1-rs256.json")
    static let rfc7520S44 = Vector(file: "rfc7520-4.4-hs256.json")

    static let all = [rfc7515A1, rfc7515A2, rfc7515A3, rfc8037A4, rfc7520S41, rfc7520S44]
    /// The vectors whose algorithm is deterministic, so signing must reproduce the RFC's bytes.
    static let deterministic = [rfc7515A1, rfc7515A2, rfc8037A4, rfc7520S41, rfc7520S44]
}

@Suite("Known answers from RFC 7515, RFC 8037 and RFC 7520")
struct KnownAnswerTests {
    /// The RFC 7515 A.1–A.3 payload, with its CRLF line breaks.
    static let rfc7515Payload = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
    /// RFC 7520 §4 payload: U+2019 RIGHT SINGLE QUOTATION MARK in "It’s" and "there’s", ASCII in "don't".
    static let rfc7520Payload =
        "It\u{2019}s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you might be swept off to."

    @Test("the RFC token verifies with the RFC key", arguments: Vector.all)
    func verifies(vector: Vector) throws {
        let (_, key) = try JWK.verifyingKey(from: vector.jwk)
        let jws = try CompactJWS(vector.token)
        try jws.verifySignature(with: key)
        // Verification through the raw VerifyingKey API gives the same answer.
        #expect(try key.verify(signature: jws.parts.signature, message: jws.parts.signingInput))
    }

    @Test(
        "signing the RFC signing input with the RFC key reproduces the RFC signature",
        arguments: Vector.deterministic
    )
    func signingReproduces(vector: Vector) throws {
        let (_, key) = try JWK.signingKey(from: vector.jwk)
        let jws = try CompactJWS(vector.token)
        #expect(key.algorithm == jws.header.algorithm)
        let signature = try key.sign(jws.parts.signingInput)
        #expect(Base64URL.encode(signature) == segments(try vector.token)[2])
    }

    @Test("a signature of the RFC input by the RFC ES256 key verifies, as does the RFC's own")
    func es256SigningVerifies() throws {
        let vector = Vector.rfc7515A3
        let (_, signer) = try JWK.signingKey(from: vector.jwk)
        let (_, verifier) = try JWK.verifyingKey(from: vector.jwk)
        let jws = try CompactJWS(vector.token)
        #expect(jws.header.algorithm == .es256)
        let fresh = try signer.sign(jws.parts.signingInput)
        #expect(fresh.count == 64)
        #expect(try verifier.verify(signature: fresh, message: jws.parts.signingInput))
        #expect(
            Base64URL.encode(jws.parts.signature)
                == "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
        )
    }

    @Test("the RFC token with one changed signature bit no longer verifies", arguments: Vector.all)
    func tamperedVectorFails(vector: Vector) throws {
        let (_, key) = try JWK.verifyingKey(from: vector.jwk)
        let parts = segments(try vector.token)
        var signature = try Base64URL.decode(parts[2])
        signature[signature.count / 2] ^= 0x04
        let tampered = parts[0] + "." + parts[1] + "." + Base64URL.encode(signature)
        let error = #expect(throws: JOSEError.self) { try CompactJWS(tampered).verifySignature(with: key) }
        #expect(error?.category == .signature)
    }

    @Test("RFC 7515 A.1: the header and CRLF payload decode exactly, and the claims read as printed")
    func rfc7515A1Contents() throws {
        let jws = try CompactJWS(try Vector.rfc7515A1.token)
        #expect(jws.header.algorithm == .hs256)
        #expect(jws.header.typ == "JWT")
        #expect(jws.parts.payload == Array(KnownAnswerTests.rfc7515Payload.utf8))
        let claims = try JWTClaims(payload: jws.parts.payload)
        #expect(claims.iss == "joe")
        #expect(claims.exp?.seconds == 1_300_819_380)
        #expect(claims.json["http://example.com/is_root"] == .bool(true))
        #expect(claims.exp?.iso8601 == "2011-03-22T18:43:00Z")
    }

    @Test("RFC 7515 A.1 passes a JWTVerifier before its exp in 2011 and is expired at any later time")
    func rfc7515A1Verifier() throws {
        let (_, key) = try JWK.verifyingKey(from: Vector.rfc7515A1.jwk)
        let keys = KeySet([KeySet.Entry(kid: nil, key: key, source: "RFC 7515 A.1")])
        let verifier = JWTVerifier(keys: keys)
        let verified = try verifier.verify(Vector.rfc7515A1.token, now: 1_300_819_379)
        #expect(verified.claims.iss == "joe")
        expectRefusal(.expired) { _ = try verifier.verify(Vector.rfc7515A1.token, now: 1_300_819_380) }
        expectRefusal(.expired) { _ = try verifier.verify(Vector.rfc7515A1.token, now: testNow) }
    }

    @Test("RFC 7515 A.2 and A.3 carry the same payload as A.1")
    func rfc7515SharedPayload() throws {
        for vector in [Vector.rfc7515A2, .rfc7515A3] {
            #expect(try CompactJWS(vector.token).parts.payload == Array(KnownAnswerTests.rfc7515Payload.utf8))
        }
    }

    @Test("RFC 7515 A.2 verifies with only the public members of the RSA key")
    func rfc7515A2PublicOnly() throws {
        var publicJWK = JSONObject()
        let jwk = try Vector.rfc7515A2.jwk
        for name in ["kty", "n", "e"] { publicJWK[name] = jwk[name] }
        let (_, key) = try JWK.verifyingKey(from: publicJWK)
        #expect(key.algorithm == .rs256)
        #expect(key.keyDescription == "RSA 2048-bit")
        try CompactJWS(Vector.rfc7515A2.token).verifySignature(with: key)
    }

    @Test("RFC 8037 A.4: the Ed25519 JWS carries the text payload and the A.3 thumbprint")
    func rfc8037Contents() throws {
        let vector = Vector.rfc8037A4
        let jws = try CompactJWS(vector.token)
        #expect(jws.header.algorithm == .edDSA)
        #expect(jws.parts.payload == Array("Example of Ed25519 signing".utf8))
        #expect(
            String(decoding: jws.parts.signingInput, as: UTF8.self)
                == "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
        )
        let (_, key) = try JWK.verifyingKey(from: vector.jwk)
        #expect(try key.thumbprint() == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
    }

    @Test("RFC 8037 A.4: jwt-inspect verifies the signature and says the payload is not a JWT")
    func rfc8037Inspection() throws {
        let vector = Vector.rfc8037A4
        let (_, key) = try JWK.verifyingKey(from: vector.jwk)
        let inspector = TokenInspector(keys: KeySet([KeySet.Entry(kid: nil, key: key, source: "RFC 8037")]))
        let report = inspector.inspect(try vector.token, now: testNow)
        #expect(report.kind == .jws)
        #expect(report.nonJSONPayload)
        #expect(report.signatureVerified)
        #expect(report.failures.isEmpty)
    }

    @Test(
        "RFC 7520 §4.1 and §4.4: the payload is the UTF-8 of the quote with U+2019",
        arguments: [Vector.rfc7520S41, .rfc7520S44]
    )
    func rfc7520Payload(vector: Vector) throws {
        let payload = try CompactJWS(vector.token).parts.payload
        #expect(payload == Array(KnownAnswerTests.rfc7520Payload.utf8))
        // "It’s" starts I t E2 80 99 s.
        #expect(Array(payload.prefix(6)) == [0x49, 0x74, 0xE2, 0x80, 0x99, 0x73])
        #expect(payload.count == 167)
    }

    @Test(
        "RFC 7520 §4.1 and §4.4: the key found by kid in the JWK verifies the token",
        arguments: [Vector.rfc7520S41, .rfc7520S44]
    )
    func rfc7520KeyByKid(vector: Vector) throws {
        let keys = try KeySet.parse(jwks: JSONValue.object(vector.jwk).compactBytes, source: vector.file)
        let jws = try CompactJWS(vector.token)
        let entry = try keys.resolve(jws.header)
        #expect(entry.kid == jws.header.kid)
        try jws.verifySignature(with: entry.key)
    }

    @Test("RFC 7520 §4.1 and §4.4 headers name the algorithm and kid as printed")
    func rfc7520Headers() throws {
        let rsa = try CompactJWS(Vector.rfc7520S41.token).header
        #expect(rsa.algorithm == .rs256)
        #expect(rsa.kid == "bilbo.baggins@hobbiton.example")
        let hmac = try CompactJWS(Vector.rfc7520S44.token).header
        #expect(hmac.algorithm == .hs256)
        #expect(hmac.kid == "018c0ae5-4d9b-471b-bfd6-eef314bc7037")
    }

    @Test("an RFC key is refused for a token of another RFC algorithm")
    func crossVectorMismatch() throws {
        let (_, rsaKey) = try JWK.verifyingKey(from: Vector.rfc7515A2.jwk)
        expectRefusal(.algKeyMismatch) { try CompactJWS(Vector.rfc7515A1.token).verifySignature(with: rsaKey) }
        let (_, hmacKey) = try JWK.verifyingKey(from: Vector.rfc7515A1.jwk)
        expectRefusal(.algKeyMismatch) { try CompactJWS(Vector.rfc7515A2.token).verifySignature(with: hmacKey) }
        // Same algorithm, other key: the signature is simply wrong.
        let (_, otherHMAC) = try JWK.verifyingKey(from: Vector.rfc7520S44.jwk)
        expectRefusal(.signature) { try CompactJWS(Vector.rfc7515A1.token).verifySignature(with: otherHMAC) }
        let (_, otherRSA) = try JWK.verifyingKey(from: Vector.rfc7520S41.jwk)
        expectRefusal(.signature) { try CompactJWS(Vector.rfc7515A2.token).verifySignature(with: otherRSA) }
    }
}
