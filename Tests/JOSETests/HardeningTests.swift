import Foundation
import JOSE
import Testing
import TokenCrypto

@Suite("Hardening found in review")
struct HardeningTests {
    @Test("an inspector given a policy only in its options reaches the verifier's verdict")
    func inspectorHonoursOptionsPolicy() throws {
        let options = ValidationOptions(policy: .oneHour)
        let long = try token(claims: claims([("exp", at(7200))]))
        expectRefusal(.lifetime) { _ = try verifier(options: options).verify(long, now: testNow) }
        let report = TokenInspector(keys: keySet(TestKeys.es256), options: options).inspect(long, now: testNow)
        #expect(report.exitCode == 2)
        #expect(report.decisive?.code == .lifetime)
    }

    @Test("a signed payload that starts like JSON but does not parse is malformed, not a non-JWT payload")
    func truncatedJSONPayload() throws {
        let raw = try rawToken(header: #"{"alg":"ES256","kid":"k1"}"#, payload: #"{"sub":"a""#, key: TestKeys.es256)
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(raw, now: testNow)
        #expect(report.exitCode == 4)
        #expect(report.decisive?.code == .json)
        #expect(!report.nonJSONPayload)
        // A payload that is plainly text (RFC 8037 A.4 style) stays a valid JWS.
        let text = try rawToken(header: #"{"alg":"ES256","kid":"k1"}"#, payload: "hello", key: TestKeys.es256)
        let textReport = TokenInspector(keys: keySet(TestKeys.es256)).inspect(text, now: testNow)
        #expect(textReport.exitCode == 0)
        #expect(textReport.nonJSONPayload)
    }

    @Test(
        "an EdDSA signature of the wrong length is an encoding error, not merely a mismatch",
        arguments: [0, 63, 65, 128]
    )
    func edDSALength(length: Int) throws {
        let verifying = TestKeys.edDSA.verifyingKey
        let error = #expect(throws: CryptoError.self) {
            _ = try verifying.verify(signature: [UInt8](repeating: 1, count: length), message: Array("m".utf8))
        }
        #expect(error?.code == .signatureEncoding)
    }

    @Test("a signing JWK with an unknown alg is refused, not downgraded to the key type's default")
    func signingJWKUnknownAlg() throws {
        var jwk = try JWK.privateJSON(TestKeys.rs256, kid: "r1")
        jwk["alg"] = "RS512"
        expectRefusal(.algUnsupported) { _ = try JWK.signingKey(from: jwk) }
    }

    @Test("an oct JWK declared for another algorithm is refused on the signing path too")
    func octJWKWithAsymmetricAlg() throws {
        var jwk = try JWK.privateJSON(TestKeys.hs256, kid: "h1")
        jwk["alg"] = "ES256"
        #expect(throws: JOSEError.self) { _ = try JWK.signingKey(from: jwk) }
        #expect(throws: JOSEError.self) { _ = try JWK.verifyingKey(from: jwk) }
    }

    @Test("a PKCS#1 RSAPublicKey DER and a raw EC point are refused as HS256 secrets")
    func publicKeyFormsAsSecrets() throws {
        // SPKI DER of an RSA key is 24 bytes of AlgorithmIdentifier around a BIT STRING that
        // holds the PKCS#1 RSAPublicKey; take it out.
        let spki = try TestKeys.rs256.verifyingKey.spkiDER()
        let pkcs1 = Array(spki[24...])
        #expect(pkcs1.first == 0x30)
        let error = #expect(throws: CryptoError.self) { _ = try VerifyingKey(secret: pkcs1) }
        #expect(error?.code == .algorithmMismatch)

        for key in [TestKeys.es256, TestKeys.es384] {
            let jwk = try key.verifyingKey.jwkParameters()
            let point = [0x04] + (try Base64URL.decode(jwk["x"]!)) + (try Base64URL.decode(jwk["y"]!))
            let pointError = #expect(throws: CryptoError.self) { _ = try SigningKey(secret: point) }
            #expect(pointError?.code == .algorithmMismatch)
        }
        // 65 random bytes that happen to start with 0x04 are not a point, and stay a usable secret.
        var random = SecureRandom.bytes(65)
        random[0] = 0x04
        #expect(throws: Never.self) { _ = try SigningKey(secret: random) }
    }
}
