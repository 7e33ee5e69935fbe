import Foundation
import JOSE
import Testing
import TokenCrypto

private let issuer = "https://tokend.example"
private let audience = "https://api.example"

/// DESIGN §3 access-token claims. `client_id` carries non-ASCII text (and a character
/// outside the BMP) so both JSON encoders' escapes are read by the other side.
private func accessClaims(now: Int64, audience aud: JSONValue = .string(audience)) -> JSONObject {
    JSONObject([
        ("iss", .string(issuer)),
        ("sub", "5f0c2d7e9a1b3c4d5e6f7a8b"),
        ("aud", aud),
        ("iat", .number(JSONNumber(now))),
        ("nbf", .number(JSONNumber(now))),
        ("exp", .number(JSONNumber(now + 3600))),
        ("jti", .string(Base64URL.encode(SecureRandom.bytes(16)))),
        ("scope", "openid profile tokens:read"),
        ("client_id", "zoë-cli-🔑"),
    ])
}

private let tokendOptions = ValidationOptions(leeway: 5, issuer: issuer, audience: audience, requiredType: "at+jwt")

private func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

/// The key files Python reads: the private half (or the secret) to sign, the public half
/// (or the same secret) to verify, all 0600 in the scratch directory.
private struct KeyFiles {
    let signing: String
    let verifying: String
    /// How `verify` reads `verifying`: `pem` or `secret`.
    let kind: String

    init(_ key: SigningKey, name: String, in scratch: Scratch) throws {
        if let secret = key.secretBytes {
            signing = try scratch.write(secret, to: "\(name).secret")
            verifying = signing
            kind = "secret"
        } else {
            signing = try scratch.write(key.pkcs8PEM(), to: "\(name).key.pem")
            verifying = try scratch.write(key.verifyingKey.publicPEM(), to: "\(name).pub.pem")
            kind = "pem"
        }
    }
}

/// A token PyJWT minted over `claims` with `key`, and the JWKS PyJWT built for the key.
private struct PyJWTToken {
    let token: String
    let jwks: [UInt8]
}

private func mintWithPyJWT(
    _ key: SigningKey,
    kid: String,
    claims: JSONObject,
    in scratch: Scratch
) async throws -> PyJWTToken {
    let files = try KeyFiles(key, name: "pyjwt-\(kid)", in: scratch)
    let claimsPath = try scratch.write(JSONValue.object(claims).compactText, to: "claims-\(kid).json")
    let output = try await scratch.pythonSucceeding(
        ["sign", key.algorithm.rawValue, files.signing, kid, claimsPath],
        "sign (\(key.algorithm), kid \(kid))"
    )
    .jsonObject()
    guard let token = output["token"]?.stringValue, let jwks = output["jwks"] else {
        throw PyJWTFailure(description: "PyJWT sign printed no token or no jwks")
    }
    return PyJWTToken(token: token, jwks: jwks.compactBytes)
}

/// The same members with the same values, in any order; each differing member is named.
private func expectSameMembers(
    _ actual: JSONObject,
    _ expected: JSONObject,
    _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(Set(actual.keys) == Set(expected.keys), "\(what): member names", sourceLocation: sourceLocation)
    for (name, value) in expected {
        #expect(actual[name] == value, "\(what): member \(name)", sourceLocation: sourceLocation)
    }
}

/// `token` with one bit of its signature flipped.
private func flippingSignatureBit(_ token: String) throws -> String {
    var segments = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    var signature = try Base64URL.decode(segments[2])
    signature[signature.count / 2] ^= 0x10
    segments[2] = Base64URL.encode(signature)
    return segments.joined(separator: ".")
}

/// `token` with its payload replaced by `claims`, the signature kept.
private func replacingClaims(_ token: String, with claims: JSONObject) -> String {
    var segments = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    segments[1] = Base64URL.encode(JSONValue.object(claims).compactBytes)
    return segments.joined(separator: ".")
}

private func verifier(_ key: VerifyingKey, kid: String) -> JWTVerifier {
    JWTVerifier(
        keys: KeySet([KeySet.Entry(kid: kid, key: key, source: "generated \(key.algorithm) key")]),
        options: tokendOptions
    )
}

private let asymmetric = SignatureAlgorithm.allCases.filter { !$0.isSymmetric }

@Suite("PyJWT interoperability")
struct PyJWTInteropTests {
    // MARK: PyJWT → tokend

    @Test(
        "a token PyJWT signs verifies in tokend, by PEM key and by PyJWT's JWKS, with PyJWT's claims",
        arguments: SignatureAlgorithm.allCases
    )
    func pyjwtTokenVerifiesInTokend(algorithm: SignatureAlgorithm) async throws {
        let scratch = try await pyjwtScratch()
        let key = try SigningKey.generate(algorithm)
        let kid = "py-\(algorithm.rawValue.lowercased())-1"
        let now = unixNow()
        let claims = accessClaims(now: now)
        let minted = try await mintWithPyJWT(key, kid: kid, claims: claims, in: scratch)

        let verified = try verifier(key.verifyingKey, kid: kid).verify(minted.token, now: Double(now))
        #expect(verified.header.algorithm == algorithm)
        #expect(verified.header.kid == kid)
        #expect(verified.header.typ == "at+jwt")
        expectSameMembers(verified.claims.json, claims, "claims")
        #expect(verified.claims.scope == ["openid", "profile", "tokens:read"])

        let jwks = try KeySet.parse(jwks: minted.jwks, source: "PyJWT JWKS")
        #expect(jwks.entries.count == 1)
        #expect(jwks.entries.first?.kid == kid)
        #expect(try jwks.entries.first?.key.thumbprint() == key.thumbprint())
        let viaJWKS = try JWTVerifier(keys: jwks, options: tokendOptions).verify(minted.token, now: Double(now))
        #expect(viaJWKS.key.source == "PyJWT JWKS")
        expectSameMembers(viaJWKS.claims.json, claims, "claims via JWKS")
    }

    @Test(
        "tokend refuses a PyJWT token under another key, with a flipped signature bit, or with a changed claim",
        arguments: SignatureAlgorithm.allCases
    )
    func tamperedPyJWTTokenIsRefused(algorithm: SignatureAlgorithm) async throws {
        let scratch = try await pyjwtScratch()
        let key = try SigningKey.generate(algorithm)
        let kid = "py-\(algorithm.rawValue.lowercased())-2"
        let now = unixNow()
        let claims = accessClaims(now: now)
        let minted = try await mintWithPyJWT(key, kid: kid, claims: claims, in: scratch)
        let rightKey = verifier(key.verifyingKey, kid: kid)
        _ = try rightKey.verify(minted.token, now: Double(now))

        let otherKey = try SigningKey.generate(algorithm)
        #expect(throws: JOSEError(.signature, "")) {
            try verifier(otherKey.verifyingKey, kid: kid).verify(minted.token, now: Double(now))
        }
        #expect(throws: JOSEError(.signature, "")) {
            try rightKey.verify(flippingSignatureBit(minted.token), now: Double(now))
        }
        var escalated = claims
        escalated["scope"] = "openid profile tokens:read admin"
        #expect(throws: JOSEError(.signature, "")) {
            try rightKey.verify(replacingClaims(minted.token, with: escalated), now: Double(now))
        }
    }

    // MARK: tokend → PyJWT

    @Test(
        "a token tokend signs verifies in PyJWT, by PEM key and by tokend's JWKS, with tokend's claims",
        arguments: SignatureAlgorithm.allCases
    )
    func tokendTokenVerifiesInPyJWT(algorithm: SignatureAlgorithm) async throws {
        let scratch = try await pyjwtScratch()
        let key = try SigningKey.generate(algorithm)
        let kid = "td-\(algorithm.rawValue.lowercased())-1"
        let claims = accessClaims(now: unixNow(), audience: [.string(audience), "https://other.example"])
        let token = try JWSSigner(key: key, kid: kid).sign(claims: claims)
        let files = try KeyFiles(key, name: "tokend", in: scratch)
        let tokenPath = try scratch.write(token, to: "token.jws")
        let expectedHeader = JSONObject([
            ("alg", .string(algorithm.rawValue)), ("kid", .string(kid)), ("typ", "at+jwt"),
        ])

        let decoded = try await scratch.pythonSucceeding(
            ["verify", algorithm.rawValue, files.kind, files.verifying, tokenPath, audience, issuer],
            "decode (\(algorithm), kid \(kid))"
        ).jsonObject()
        expectSameMembers(decoded["header"]?.objectValue ?? JSONObject(), expectedHeader, "header PyJWT read")
        expectSameMembers(decoded["claims"]?.objectValue ?? JSONObject(), claims, "claims PyJWT read")

        guard !algorithm.isSymmetric else { return }
        let jwks = JSONValue.object(JSONObject([("keys", [.object(try JWK.publicJSON(key.verifyingKey, kid: kid))])]))
        let jwksPath = try scratch.write(jwks.compactText, to: "jwks.json")
        let viaJWKS = try await scratch.pythonSucceeding(
            ["verify", algorithm.rawValue, "jwks", jwksPath, tokenPath, audience, issuer],
            "decode via JWKS (\(algorithm), kid \(kid))"
        ).jsonObject()
        expectSameMembers(viaJWKS["claims"]?.objectValue ?? JSONObject(), claims, "claims PyJWT read via tokend's JWKS")
    }

    @Test(
        "PyJWT rejects a tokend token with a flipped signature bit or a changed claim",
        arguments: SignatureAlgorithm.allCases
    )
    func tamperedTokendTokenIsRejectedByPyJWT(algorithm: SignatureAlgorithm) async throws {
        let scratch = try await pyjwtScratch()
        let key = try SigningKey.generate(algorithm)
        let kid = "td-\(algorithm.rawValue.lowercased())-2"
        let claims = accessClaims(now: unixNow())
        let token = try JWSSigner(key: key, kid: kid).sign(claims: claims)
        let files = try KeyFiles(key, name: "tokend", in: scratch)
        var escalated = claims
        escalated["sub"] = "000000000000000000000001"

        let cases = [
            ("untouched", token),
            ("flipped signature bit", try flippingSignatureBit(token)),
            ("changed sub", replacingClaims(token, with: escalated)),
        ]
        for (index, (name, candidate)) in cases.enumerated() {
            let path = try scratch.write(candidate, to: "token-\(index).jws")
            let run = try await scratch.python([
                "verify", algorithm.rawValue, files.kind, files.verifying, path, audience, issuer,
            ])
            let stderr = run.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            if index == 0 {
                #expect(run.status == 0, "PyJWT must accept the untouched token: \(stderr)")
            } else {
                #expect(run.status == 1, "PyJWT must reject the token with a \(name) (exit \(run.status)): \(stderr)")
                #expect(
                    stderr.contains("InvalidSignatureError"),
                    "PyJWT must reject the \(name) for its signature: \(stderr)"
                )
                #expect(run.stdout.isEmpty, "PyJWT printed claims for the token with a \(name)")
            }
        }
    }

    // MARK: JWK

    @Test(
        "PyJWT's JWK of a tokend public key matches JWK.publicJSON member by member, and so do the thumbprints",
        arguments: asymmetric
    )
    func jwkMembersAndThumbprintMatchPyJWT(algorithm: SignatureAlgorithm) async throws {
        let scratch = try await pyjwtScratch()
        try await compareJWK(try SigningKey.generate(algorithm), in: scratch)
    }

    @Test(
        "EC coordinates that start with a zero byte keep their full length in both JWKs and verify both ways",
        arguments: [SignatureAlgorithm.es256, .es384]
    )
    func ecCoordinateWithLeadingZero(algorithm: SignatureAlgorithm) async throws {
        let scratch = try await pyjwtScratch()
        var found: SigningKey?
        for _ in 0..<20_000 {
            let candidate = try SigningKey.generate(algorithm)
            let parameters = try candidate.verifyingKey.jwkParameters()
            let x = try Base64URL.decode(parameters["x"] ?? "")
            let y = try Base64URL.decode(parameters["y"] ?? "")
            if x.first == 0 || y.first == 0 {
                found = candidate
                break
            }
        }
        let key = try #require(found, "no \(algorithm) key with a leading zero coordinate byte in 20000 tries")
        try await compareJWK(key, in: scratch)

        let kid = "lz-\(algorithm.rawValue.lowercased())"
        let now = unixNow()
        let claims = accessClaims(now: now)
        let minted = try await mintWithPyJWT(key, kid: kid, claims: claims, in: scratch)
        let viaJWKS = try JWTVerifier(
            keys: KeySet.parse(jwks: minted.jwks, source: "PyJWT JWKS"),
            options: tokendOptions
        )
        .verify(minted.token, now: Double(now))
        expectSameMembers(viaJWKS.claims.json, claims, "claims via JWKS")

        let token = try JWSSigner(key: key, kid: kid).sign(claims: claims)
        let jwks = JSONValue.object(JSONObject([("keys", [.object(try JWK.publicJSON(key.verifyingKey, kid: kid))])]))
        let decoded = try await scratch.pythonSucceeding(
            [
                "verify", algorithm.rawValue, "jwks", scratch.write(jwks.compactText, to: "tokend-jwks.json"),
                scratch.write(token, to: "tokend.jws"), audience, issuer,
            ],
            "decode via JWKS (\(algorithm), kid \(kid))"
        ).jsonObject()
        expectSameMembers(decoded["claims"]?.objectValue ?? JSONObject(), claims, "claims PyJWT read via tokend's JWKS")
    }

    /// Our public JWK and PyJWT's `to_jwk` of our public PEM: same key members, same thumbprint.
    private func compareJWK(
        _ key: SigningKey,
        in scratch: Scratch,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let algorithm = key.algorithm
        let ours = try JWK.publicJSON(key.verifyingKey, kid: nil)
        let pemPath = try scratch.write(key.verifyingKey.publicPEM(), to: "jwk-\(UUID().uuidString).pub.pem")
        let output = try await scratch.pythonSucceeding(["jwk", algorithm.rawValue, pemPath], "to_jwk (\(algorithm))")
            .jsonObject()
        let theirs = try #require(output["jwk"]?.objectValue, "PyJWT printed no jwk", sourceLocation: sourceLocation)

        let keyMembers: [String] =
            switch algorithm.keyType {
            case "EC": ["kty", "crv", "x", "y"]
            case "OKP": ["kty", "crv", "x"]
            default: ["kty", "n", "e"]
            }
        let metadata: Set<String> = ["kid", "alg", "use", "key_ops"]
        #expect(
            Set(ours.keys).subtracting(metadata) == Set(keyMembers),
            "\(algorithm): our JWK members",
            sourceLocation: sourceLocation
        )
        #expect(
            Set(theirs.keys).subtracting(metadata) == Set(keyMembers),
            "\(algorithm): PyJWT's JWK members",
            sourceLocation: sourceLocation
        )
        for name in keyMembers {
            #expect(
                ours[name] != nil && ours[name] == theirs[name],
                "\(algorithm): JWK member \(name)",
                sourceLocation: sourceLocation
            )
        }
        #expect(ours["alg"]?.stringValue == algorithm.rawValue, sourceLocation: sourceLocation)
        #expect(ours["use"]?.stringValue == "sig", sourceLocation: sourceLocation)

        let thumbprint = try key.thumbprint()
        #expect(
            output["thumbprint"]?.stringValue == thumbprint,
            "\(algorithm): RFC 7638 thumbprint",
            sourceLocation: sourceLocation
        )
        #expect(try key.verifyingKey.thumbprint() == thumbprint, sourceLocation: sourceLocation)
    }
}
