import Testing
import TokenCrypto

@Suite("Sign and verify round trips")
struct SignVerifyRoundTripTests {
    @Test(
        "every algorithm verifies its own signature and refuses a flipped bit",
        arguments: SignatureAlgorithm.allCases
    )
    func roundTrip(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let message = Array("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0".utf8)
        let signature = try key.sign(message)
        if let length = algorithm.fixedSignatureLength { #expect(signature.count == length) }
        let verifier = key.verifyingKey
        #expect(try verifier.verify(signature: signature, message: message))
        var flipped = signature
        flipped[flipped.count / 2] ^= 0x01
        #expect(try verifier.verify(signature: flipped, message: message) == false)
        var other = message
        other[0] ^= 0x01
        #expect(try verifier.verify(signature: signature, message: other) == false)
    }

    @Test(
        "PEM and JWK round trips keep the key and its thumbprint",
        arguments: SignatureAlgorithm.allCases.filter { $0 != .hs256 }
    )
    func pemAndJWK(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let pem = try key.pkcs8PEM()
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let reloaded = try SigningKey(pem: pem, algorithm: algorithm)
        #expect(try reloaded.thumbprint() == key.thumbprint())
        let publicPEM = try key.verifyingKey.publicPEM()
        let pub = try VerifyingKey(pem: publicPEM, algorithm: algorithm)
        let message = Array("hello".utf8)
        #expect(try pub.verify(signature: reloaded.sign(message), message: message))
        let jwk = try key.jwkParameters(includePrivate: true)
        let fromJWK = try SigningKey(jwk: jwk, algorithm: algorithm)
        #expect(try pub.verify(signature: fromJWK.sign(message), message: message))
        let pubFromJWK = try VerifyingKey(jwk: key.verifyingKey.jwkParameters(), algorithm: algorithm)
        #expect(try pubFromJWK.thumbprint() == key.thumbprint())
    }
}
