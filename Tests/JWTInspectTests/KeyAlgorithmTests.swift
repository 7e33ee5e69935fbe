import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// Issue 10 finding 12: a key that declares no alg (a bare PEM, a JWK without `alg`) takes
/// the token's alg within its family and says so; a declared alg binds; a JWS whose header
/// says JWT but whose payload is not JSON is not a decodable token.
@Suite("jwt-inspect: keys without a declared alg, and JWT-typed payloads that are not JSON")
struct KeyAlgorithmTests {
    static let now = ["--now", String(Clock.t0 + 60)]

    /// The same RSA key material bound to another algorithm.
    static func rebound(_ key: SigningKey, to algorithm: SignatureAlgorithm) throws -> SigningKey {
        try SigningKey(pem: key.pkcs8PEM(), algorithm: algorithm)
    }

    @Test("a PS256 token verifies with a bare RSA public key PEM, and the report names the assumed alg")
    func ps256WithBarePEM() async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.ps256)
            let pub = try dir.write("rsa.pem", key.verifyingKey.publicPEM())
            let run = try await jwtInspect(Self.now + ["--key", pub, try sign(claims(), with: key)])
            SignatureTests.expectValid(run)
            #expect(run.stdout.contains("key without alg: using the token's PS256"), "\(run)")

            // The same key signs RS256 as well: the token's alg is taken, and said.
            let rs256 = try sign(claims(), with: try Self.rebound(key, to: .rs256))
            let rsRun = try await jwtInspect(Self.now + ["--key", pub, rs256])
            SignatureTests.expectValid(rsRun)
            #expect(rsRun.stdout.contains("key without alg: using the token's RS256"), "\(rsRun)")

            // Taking the token's alg does not make a wrong signature right.
            SignatureTests.expectRejected(
                try await jwtInspect(Self.now + ["--key", pub, try flippingSignatureBit(sign(claims(), with: key))]),
                rule: "signature_invalid"
            )
        }
    }

    @Test("a JWK without alg takes the token's PS256; a JWK whose alg is PS256 refuses an RS256 token")
    func jwkAlgorithm() async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.ps256)
            var declared = try JWK.publicJSON(key.verifyingKey, kid: "k1")
            #expect(declared["alg"] == "PS256")
            let declaredPath = try dir.write("declared.json", JSONValue.object(declared).prettyText())
            declared["alg"] = nil
            let bare = try dir.write("bare.json", #"{"keys":["# + JSONValue.object(declared).compactText + "]}")

            let rs256 = try sign(claims(), with: try Self.rebound(key, to: .rs256), kid: "k1")
            for option in ["--key", "--jwks"] {
                let run = try await jwtInspect(Self.now + [option, declaredPath, rs256])
                SignatureTests.expectRejected(run, rule: "alg_key_mismatch")
                #expect(run.stdout.contains("token alg RS256 does not match key \"k1\" alg PS256"), "\(run)")
            }

            let ps256 = try sign(claims(), with: key, kid: "k1")
            let run = try await jwtInspect(Self.now + ["--jwks", bare, ps256])
            SignatureTests.expectValid(run)
            #expect(run.stdout.contains("key without alg: using the token's PS256"), "\(run)")
        }
    }

    @Test("outside the key's family nothing is assumed: HS256 or none with an RSA key, ES384 with a P-256 key")
    func outsideTheFamily() async throws {
        try await withTemporaryDirectory { dir in
            let rsa = try SigningKey.generate(.rs256)
            let pub = try dir.write("rsa.pem", try rsa.verifyingKey.publicPEM())
            // The classic confusion (an HMAC over the token, checked with a public key) is
            // refused whatever the secret; TokenCrypto will not even take a PEM as one.
            let confused = try sign(claims(), with: try SigningKey.generate(.hs256))
            let run = try await jwtInspect(Self.now + ["--key", pub, confused])
            SignatureTests.expectRejected(run, rule: "alg_key_mismatch")
            #expect(!run.stdout.contains("key without alg"), "\(run)")

            let p256 = try SigningKey.generate(.es256)
            let ecPub = try dir.write("ec.pem", p256.verifyingKey.publicPEM())
            let es384 = try sign(claims(), with: try SigningKey.generate(.es384))
            SignatureTests.expectRejected(
                try await jwtInspect(Self.now + ["--key", ecPub, es384]),
                rule: "alg_key_mismatch"
            )

            // An EC key has one alg: it verifies without claiming to assume anything.
            let ecRun = try await jwtInspect(Self.now + ["--key", ecPub, try sign(claims(), with: p256)])
            SignatureTests.expectValid(ecRun)
            #expect(!ecRun.stdout.contains("key without alg"), "\(ecRun)")

            // alg none stays refused whatever the key.
            let none = unsignedToken(header: #"{"alg":"none","typ":"JWT"}"#, payload: #"{"sub":"x"}"#, signature: "")
            let noneRun = try await jwtInspect(Self.now + ["--key", pub, none])
            #expect(noneRun.exitCode == 3, "\(noneRun)")
            #expect(!noneRun.stdout.contains("VALID:"), "\(noneRun)")
        }
    }

    @Test(
        "a signed payload that is not JSON under a JWT typ is not a decodable token: exit 4",
        arguments: ["JWT", "at+jwt", "application/jwt", "jwt", "application/AT+JWT"]
    )
    func jwtTypedTextPayload(typ: String) async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.es256)
            let pub = try dir.write("ec.pem", key.verifyingKey.publicPEM())
            let token = try JWSSigner(key: key, kid: nil).sign(payload: Array("hello, not a claim set".utf8), type: typ)
            let run = try await jwtInspect(Self.now + ["--key", pub, token])
            #expect(run.exitCode == 4, "\(run)")
            #expect(run.stdout.contains("REJECTED [bad_json]"), "\(run)")
            #expect(run.stdout.contains("typ \(typ) declares a JWT, but the payload is not a JSON claim set"), "\(run)")
            #expect(!run.stdout.contains("VALID:"), "\(run)")
            // Also when the payload is JSON but not an object.
            let string = try JWSSigner(key: key, kid: nil).sign(payload: Array(#""a string""#.utf8), type: typ)
            #expect(try await jwtInspect(Self.now + ["--key", pub, string]).exitCode == 4)
        }
    }

    @Test(
        "a signed payload that is not JSON without a JWT typ stays a JWS with an opaque payload",
        arguments: [nil, "JOSE"]
    )
    func untypedTextPayload(typ: String?) async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.es256)
            let pub = try dir.write("ec.pem", key.verifyingKey.publicPEM())
            let token = try JWSSigner(key: key, kid: nil).sign(payload: Array("hello, not a claim set".utf8), type: typ)
            let run = try await jwtInspect(Self.now + ["--key", pub, token])
            SignatureTests.expectValid(run)
            #expect(run.stdout.contains("Payload (not JSON, 22 bytes)"), "\(run)")
            #expect(run.stdout.contains("payload is not JSON, so this JWS is not a JWT"), "\(run)")
        }
    }
}
