import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// DESIGN §8: the signature is checked offline with --key, --jwks, --keys-dir or
/// --secret-file; without a key it is "not verified", never "valid".
@Suite("jwt-inspect verifies signatures with keys from files")
struct SignatureTests {
    static let now = ["--now", String(Clock.t0 + 60)]
    static let asymmetric: [SignatureAlgorithm] = [.es256, .es384, .edDSA, .rs256]

    /// A valid run: exit 0, the summary says verified, the verdict is VALID.
    static func expectValid(_ run: RunResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.exitCode == 0, "\(run)", sourceLocation: sourceLocation)
        #expect(run.stdout.contains("signature verified"), "\(run)", sourceLocation: sourceLocation)
        #expect(run.stdout.contains("VALID: signature verified"), "\(run)", sourceLocation: sourceLocation)
        #expect(run.stderr.isEmpty, "\(run)", sourceLocation: sourceLocation)
    }

    static func expectRejected(
        _ run: RunResult,
        rule: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(run.exitCode == 3, "\(run)", sourceLocation: sourceLocation)
        #expect(run.stdout.contains("REJECTED [\(rule)]"), "\(run)", sourceLocation: sourceLocation)
        #expect(!run.stdout.contains("VALID:"), "\(run)", sourceLocation: sourceLocation)
    }

    @Test(
        "--key with a SubjectPublicKeyInfo PEM verifies, refuses another key and a flipped bit",
        arguments: asymmetric
    )
    func publicPEM(algorithm: SignatureAlgorithm) async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(algorithm)
            let other = try SigningKey.generate(algorithm)
            let pub = try dir.write("public.pem", key.verifyingKey.publicPEM())
            let otherPub = try dir.write("other.pem", other.verifyingKey.publicPEM())
            let token = try sign(claims(), with: key, kid: "k1")

            let valid = try await jwtInspect(Self.now + ["--key", pub, token])
            Self.expectValid(valid)
            #expect(valid.stdout.contains("alg \(algorithm.rawValue)"), "\(valid)")

            Self.expectRejected(try await jwtInspect(Self.now + ["--key", otherPub, token]), rule: "signature_invalid")
            Self.expectRejected(
                try await jwtInspect(Self.now + ["--key", pub, try flippingSignatureBit(token)]),
                rule: "signature_invalid"
            )
        }
    }

    @Test(
        "--key with a private key PEM verifies with its public half",
        arguments: [SignatureAlgorithm.es256, .edDSA, .rs256]
    )
    func privatePEM(algorithm: SignatureAlgorithm) async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(algorithm)
            let path = try dir.write("private.pem", key.pkcs8PEM())
            let token = try sign(claims(), with: key)
            Self.expectValid(try await jwtInspect(Self.now + ["--key", path, token]))
            let other = try sign(claims(), with: try SigningKey.generate(algorithm))
            Self.expectRejected(try await jwtInspect(Self.now + ["--key", path, other]), rule: "signature_invalid")
        }
    }

    @Test(
        "--key with a JWK file verifies, refuses another key and a flipped bit",
        arguments: [SignatureAlgorithm.es256, .edDSA, .rs256]
    )
    func jwkFile(algorithm: SignatureAlgorithm) async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(algorithm)
            let jwk = try JWK.publicJSON(key.verifyingKey, kid: "k1")
            let path = try dir.write("jwk.json", JSONValue.object(jwk).prettyText())
            let token = try sign(claims(), with: key, kid: "k1")
            Self.expectValid(try await jwtInspect(Self.now + ["--key", path, token]))
            Self.expectRejected(
                try await jwtInspect(Self.now + ["--key", path, try flippingSignatureBit(token)]),
                rule: "signature_invalid"
            )

            let stranger = try SigningKey.generate(algorithm)
            let strangerPath = try dir.write(
                "stranger.json",
                JSONValue.object(try JWK.publicJSON(stranger.verifyingKey, kid: "k1")).compactText
            )
            Self.expectRejected(
                try await jwtInspect(Self.now + ["--key", strangerPath, token]),
                rule: "signature_invalid"
            )
        }
    }

    @Test("--jwks picks the key by kid; an unknown kid is exit 3")
    func jwks() async throws {
        try await withTemporaryDirectory { dir in
            let a = try SigningKey.generate(.es256)
            let b = try SigningKey.generate(.edDSA)
            let c = try SigningKey.generate(.rs256)
            let set: JSONValue = .object(
                JSONObject([
                    (
                        "keys",
                        .array([
                            .object(try JWK.publicJSON(a.verifyingKey, kid: "key-a")),
                            .object(try JWK.publicJSON(b.verifyingKey, kid: "key-b")),
                            .object(try JWK.publicJSON(c.verifyingKey, kid: "key-c")),
                        ])
                    )
                ])
            )
            let path = try dir.write("jwks.json", set.prettyText())

            for (key, kid) in [(a, "key-a"), (b, "key-b"), (c, "key-c")] {
                let run = try await jwtInspect(Self.now + ["--jwks", path, try sign(claims(), with: key, kid: kid)])
                Self.expectValid(run)
                #expect(run.stdout.contains("kid \(kid)"), "\(run)")
            }
            // Signed by a's key but claiming b's kid: b's key (another alg) must not accept it.
            let mislabelled = try sign(claims(), with: a, kid: "key-b")
            let run = try await jwtInspect(Self.now + ["--jwks", path, mislabelled])
            #expect(run.exitCode == 3, "\(run)")
            #expect(!run.stdout.contains("VALID:"), "\(run)")

            let unknown = try sign(claims(), with: try SigningKey.generate(.es256), kid: "key-z")
            let refused = try await jwtInspect(Self.now + ["--jwks", path, unknown])
            Self.expectRejected(refused, rule: "unknown_kid")
            #expect(refused.stdout.contains("key-z"), "\(refused)")
        }
    }

    static let secretText = "s3cret-for-jwt-inspect-tests-0123456789ABCDEF"

    @Test(
        "--secret-file verifies HS256, ignores the file's trailing newline, and refuses another secret",
        arguments: ["\n", "\r\n", ""]
    )
    func secretFile(ending: String) async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey(secret: Array(Self.secretText.utf8))
            let path = try dir.write("secret", Self.secretText + ending)
            let token = try sign(claims(), with: key, type: "JWT")
            Self.expectValid(try await jwtInspect(Self.now + ["--secret-file", path, token]))
            Self.expectRejected(
                try await jwtInspect(Self.now + ["--secret-file", path, try flippingSignatureBit(token)]),
                rule: "signature_invalid"
            )

            let wrong = try dir.write("wrong", String(Self.secretText.reversed()) + "\n")
            Self.expectRejected(
                try await jwtInspect(Self.now + ["--secret-file", wrong, token]),
                rule: "signature_invalid"
            )
        }
    }

    @Test("a tampered claim set keeps its old signature and is refused with exit 3")
    func tamperedClaims() async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.es256)
            let pub = try dir.write("public.pem", key.verifyingKey.publicPEM())
            let token = try sign(claims(), with: key)
            let forged = replacingPayload(token, with: claims(extra: [("sub", "admin")]))
            let run = try await jwtInspect(Self.now + ["--key", pub, forged])
            Self.expectRejected(run, rule: "signature_invalid")
            #expect(run.stdout.contains("\"sub\": \"admin\""), "the forged claims are still shown: \(run)")
        }
    }

    @Test("a key of another algorithm refuses the token with exit 3")
    func algorithmMismatch() async throws {
        try await withTemporaryDirectory { dir in
            let ec = try SigningKey.generate(.es256)
            let ed = try SigningKey.generate(.edDSA)
            let pub = try dir.write("ed.pem", ed.verifyingKey.publicPEM())
            let run = try await jwtInspect(Self.now + ["--key", pub, try sign(claims(), with: ec)])
            Self.expectRejected(run, rule: "alg_key_mismatch")
        }
    }

    @Test("--alg PS256 makes an RSA PEM verify PS256 tokens; --alg RS256 binds it to RS256")
    func ps256() async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.ps256)
            let pub = try dir.write("rsa.pem", key.verifyingKey.publicPEM())
            let token = try sign(claims(), with: key)
            let valid = try await jwtInspect(Self.now + ["--key", pub, "--alg", "PS256", token])
            Self.expectValid(valid)
            #expect(valid.stdout.contains("JWS · PS256"), "\(valid)")

            Self.expectRejected(
                try await jwtInspect(Self.now + ["--key", pub, "--alg", "PS256", try flippingSignatureBit(token)]),
                rule: "signature_invalid"
            )
            Self.expectRejected(
                try await jwtInspect(Self.now + ["--key", pub, "--alg", "RS256", token]),
                rule: "alg_key_mismatch"
            )
        }
    }

    @Test("--keys-dir reads keyring.json: current and previous keys verify, a revoked key is exit 3")
    func keysDirectory() async throws {
        try await withTemporaryDirectory { dir in
            let current = try SigningKey.generate(.es256)
            let previous = try SigningKey.generate(.edDSA)
            let revoked = try SigningKey.generate(.es256)
            let hmac = try SigningKey.generate(.hs256)
            let created = NumericDate(integer: Clock.t0 - 86_400)
            let document = KeyringDocument(keys: [
                .init(
                    kid: "cur-1",
                    algorithm: .es256,
                    state: .current,
                    created: created,
                    activated: created,
                    publicJWK: try JWK.publicJSON(current.verifyingKey, kid: "cur-1")
                ),
                .init(
                    kid: "prev-1",
                    algorithm: .edDSA,
                    state: .previous,
                    created: created,
                    activated: created,
                    retired: created,
                    publicJWK: try JWK.publicJSON(previous.verifyingKey, kid: "prev-1")
                ),
                .init(
                    kid: "bad-1",
                    algorithm: .es256,
                    state: .revoked,
                    created: created,
                    activated: created,
                    retired: created,
                    publicJWK: try JWK.publicJSON(revoked.verifyingKey, kid: "bad-1")
                ),
                // An HS256 key has no public form: its secret is read from <kid>.pem.
                .init(kid: "hs-1", algorithm: .hs256, state: .current, created: created, activated: created),
            ])
            try dir.write("keys/keyring.json", document.serialized())
            try dir.write("keys/hs-1.pem", hmac.pemEncoded())
            let keys = dir.file("keys")

            for (key, kid, state) in [
                (current, "cur-1", "current"), (previous, "prev-1", "previous"), (hmac, "hs-1", "current"),
            ] {
                let run = try await jwtInspect(
                    Self.now + ["--keys-dir", keys, try sign(claims(), with: key, kid: kid)]
                )
                Self.expectValid(run)
                #expect(run.stdout.contains("kid \(kid) (\(state))"), "\(run)")
            }

            let run = try await jwtInspect(
                Self.now + ["--keys-dir", keys, try sign(claims(), with: revoked, kid: "bad-1")]
            )
            Self.expectRejected(run, rule: "key_revoked")
            #expect(run.stdout.contains("revoked"), "\(run)")

            let unknown = try await jwtInspect(
                Self.now + ["--keys-dir", keys, try sign(claims(), with: current, kid: "nope-1")]
            )
            Self.expectRejected(unknown, rule: "unknown_kid")

            Self.expectRejected(
                try await jwtInspect(
                    Self.now + [
                        "--keys-dir", keys, try flippingSignatureBit(try sign(claims(), with: current, kid: "cur-1")),
                    ]
                ),
                rule: "signature_invalid"
            )
        }
    }

    @Test("--keys-dir without keyring.json uses each <kid>.pem")
    func keysDirectoryWithoutIndex() async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.es256)
            try dir.write("keys/k-7.pem", key.pkcs8PEM())
            let run = try await jwtInspect(
                Self.now + ["--keys-dir", dir.file("keys"), try sign(claims(), with: key, kid: "k-7")]
            )
            Self.expectValid(run)
        }
    }

    @Test("without any key the signature is \"not verified\" and the word VALID never appears")
    func noKey() async throws {
        let key = try SigningKey.generate(.es256)
        let run = try await jwtInspect(Self.now + [try sign(claims(), with: key)])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("signature not verified"), "\(run)")
        #expect(!run.stdout.contains("VALID"), "\(run)")

        let json = try await jwtInspect(Self.now + ["--json", try sign(claims(), with: key)])
        #expect(parseJSONObject(json.stdout)?["signature"] as? String == "not_verified", "\(json)")
        #expect(!json.stdout.contains("\"verified\""), "\(json)")
    }

    @Test("a key file that cannot be read is a usage error naming the file")
    func missingKeyFile() async throws {
        try await withTemporaryDirectory { dir in
            let missing = dir.file("absent.pem")
            let run = try await jwtInspect(Self.now + ["--key", missing, Seed.appmixer])
            #expect(run.exitCode == 4, "\(run)")
            #expect(run.stderr.contains(missing), "\(run)")
            #expect(run.stdout.isEmpty, "\(run)")
        }
    }
}
