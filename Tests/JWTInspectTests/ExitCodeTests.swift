import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// DESIGN §8 exit codes: 0 all checks pass; 1 expired or not yet valid; 2 policy violated;
/// 3 signature invalid or key unknown; 4 not a decodable token or bad usage.
@Suite("jwt-inspect exit codes")
struct ExitCodeTests {
    static let now = ["--now", String(Clock.t0 + 60)]

    struct Malformed: Sendable, CustomTestStringConvertible {
        let name: String
        let token: String
        var testDescription: String { name }
    }

    static let malformed: [Malformed] = [
        Malformed(name: "garbage", token: "garbage"),
        Malformed(name: "words with spaces", token: "this is not a token"),
        Malformed(name: "2 segments", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0"),
        Malformed(name: "4 segments", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln.c2ln"),
        Malformed(name: "bad base64url in the payload", token: "eyJhbGciOiJIUzI1NiJ9.eyJz*WIiOiJ4In0.c2lnbmF0dXJl"),
        Malformed(name: "standard base64 padding", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0=.c2lnbmF0dXJl"),
        Malformed(name: "header not JSON", token: unsignedToken(header: "alg=HS256", payload: "{\"sub\":\"x\"}")),
    ]

    @Test("a token that does not decode exits 4 and says so", arguments: malformed)
    func malformedToken(sample: Malformed) async throws {
        let run = try await jwtInspect([sample.token])
        #expect(run.exitCode == 4, "\(run)")
        #expect(run.stdout.contains("Not a decodable token"), "\(run)")
        #expect(run.stdout.contains("REJECTED"), "\(run)")
        #expect(!run.stdout.contains("VALID"), "\(run)")
    }

    @Test("a JWE (5 segments) exits 4 and is reported as an encrypted JWE with its header")
    func jwe() async throws {
        let header = Base64URL.encode(Array("{\"alg\":\"RSA-OAEP\",\"enc\":\"A256GCM\"}".utf8))
        let token = [
            header, Base64URL.encode(SecureRandom.bytes(256)), Base64URL.encode(SecureRandom.bytes(12)),
            Base64URL.encode(SecureRandom.bytes(80)), Base64URL.encode(SecureRandom.bytes(16)),
        ].joined(separator: ".")
        let run = try await jwtInspect([token])
        #expect(run.exitCode == 4, "\(run)")
        #expect(run.stdout.contains("JWE (encrypted token)"), "\(run)")
        #expect(run.stdout.contains("\"enc\": \"A256GCM\""), "\(run)")
        #expect(run.stdout.contains("RSA-OAEP"), "\(run)")

        let json = try await jwtInspect(["--json", token])
        #expect(json.exitCode == 4, "\(json)")
        let object = parseJSONObject(json.stdout)
        #expect(object?["kind"] as? String == "JWE", "\(json)")
        #expect(object?["failed_rule"] as? String == "jwe_not_supported", "\(json)")
    }

    /// Refresh tokens: 43 characters (32 random bytes in base64url; one starts with "-"), and
    /// 51 (6 bytes of issue time first).
    static let opaqueTokens = [
        "Xq3v9Zt0bqH6d1cXyF0Gm3kP2sLwA8uE5nR7jT4yQ1c", "-Xq3v9Zt0bqH6d1cXyF0Gm3kP2sLwA8uE5nR7jT4yQ1",
        "AaIp8Sh75HbUXnZsfEeYWeN9UElfxnmCH4hsoj5xhUpO22icHaQ",
    ]

    @Test("an opaque refresh token (43 or 51 characters) exits 4 and is reported as opaque", arguments: opaqueTokens)
    func opaque(token: String) async throws {
        #expect([43, 51].contains(token.count))
        // A token that starts with "-" works as the argument, after "--", and on stdin.
        for run in [
            try await jwtInspect([token]), try await jwtInspect(["--", token]),
            try await jwtInspect([], stdin: .pipe(token + "\n")),
        ] {
            #expect(run.exitCode == 4, "\(run)")
            #expect(run.stdout.contains("Opaque token"), "\(run)")
            #expect(run.stdout.contains("refresh token"), "\(run)")
        }
        let json = try await jwtInspect(["--json", "--", token])
        #expect(json.exitCode == 4, "\(json)")
        #expect(parseJSONObject(json.stdout)?["kind"] as? String == "opaque", "\(json)")
    }

    @Test("a refresh token that begins with its issue time shows it, hedged; other opaque tokens show none")
    func refreshTokenIssueTime() async throws {
        let now = ["--now", "2026-12-07T05:00:00Z"]
        let text = try await jwtInspect(now + ["--", Self.opaqueTokens[2]])
        #expect(text.exitCode == 4, "\(text)")
        #expect(text.stdout.contains("issued    2026-11-30T00:53:20.123Z  7 days ago"), "\(text)")
        #expect(text.stdout.contains("if it is a tokend refresh token"), "\(text)")
        let json = try await jwtInspect(["--json"] + now + ["--", Self.opaqueTokens[2]])
        let issued = parseJSONObject(json.stdout)?["refresh_token_issued_at"] as? [String: Any]
        #expect(issued?["utc"] as? String == "2026-11-30T00:53:20.123Z", "\(json)")
        // 43 characters, and 51 whose first 8 are no plausible time (1970; after tomorrow).
        for token in [Self.opaqueTokens[0], String(repeating: "A", count: 51), "_" + String(repeating: "A", count: 50)]
        {
            let run = try await jwtInspect(now + ["--", token])
            #expect(run.exitCode == 4, "\(run)")
            #expect(!run.stdout.contains("issued"), "\(run)")
            let machine = try await jwtInspect(["--json"] + now + ["--", token])
            #expect(parseJSONObject(machine.stdout)?["refresh_token_issued_at"] == nil, "\(machine)")
        }
    }

    @Test("alg none exits 3, with or without a key", arguments: [false, true])
    func algNone(withKey: Bool) async throws {
        try await withTemporaryDirectory { dir in
            let token = unsignedToken(
                header: "{\"alg\":\"none\",\"typ\":\"JWT\"}",
                payload: JSONValue.object(claims()).compactText,
                signature: ""
            )
            var options = Self.now
            if withKey {
                options += [
                    "--key", try dir.write("pub.pem", try SigningKey.generate(.es256).verifyingKey.publicPEM()),
                ]
            }
            let run = try await jwtInspect(options + [token])
            #expect(run.exitCode == 3, "\(run)")
            #expect(run.stdout.contains("REJECTED [alg_none]"), "\(run)")
            #expect(!run.stdout.contains("VALID"), "\(run)")
        }
    }

    @Test("an expired token exits 1 and says how long ago it expired")
    func expired() async throws {
        let token = try sign(claims(lifetime: 3_600), with: try SigningKey.generate(.es256))
        let run = try await jwtInspect(["--now", String(Clock.t0 + 3_600 + 2 * 86_400), token])
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stdout.contains("REJECTED [expired]: expired 2 days ago"), "\(run)")
    }

    @Test("a token whose nbf is in the future exits 1")
    func notYetValid() async throws {
        let token = try sign(
            claims(lifetime: 7_200, extra: [("nbf", .number(JSONNumber(Clock.t0 + 3_600)))]),
            with: try SigningKey.generate(.es256)
        )
        let run = try await jwtInspect(Self.now + [token])
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stdout.contains("REJECTED [not_yet_valid]"), "\(run)")
        #expect(run.stdout.contains("valid in"), "the nbf line says when it becomes valid: \(run)")
    }

    @Test("a token issued in the future exits 1")
    func issuedInFuture() async throws {
        let token = try sign(claims(iat: Clock.t0 + 3_600), with: try SigningKey.generate(.es256))
        let run = try await jwtInspect(Self.now + [token])
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stdout.contains("REJECTED [issued_in_future]"), "\(run)")
    }

    struct Mismatch: Sendable, CustomTestStringConvertible {
        let options: [String]
        let rule: String
        var testDescription: String { options.joined(separator: " ") }
    }

    @Test(
        "--iss, --aud and --typ mismatches exit 2",
        arguments: [
            Mismatch(options: ["--iss", "https://evil.test"], rule: "issuer_mismatch"),
            Mismatch(options: ["--aud", "billing"], rule: "audience_mismatch"),
            Mismatch(options: ["--typ", "at+jwt"], rule: "type_mismatch"),
        ]
    )
    func identityMismatch(mismatch: Mismatch) async throws {
        // typ JWT, iss https://tokend.test, aud api.
        let token = try sign(claims(), with: try SigningKey.generate(.es256), type: "JWT")
        let run = try await jwtInspect(Self.now + mismatch.options + [token])
        #expect(run.exitCode == 2, "\(run)")
        #expect(run.stdout.contains("REJECTED [\(mismatch.rule)]"), "\(run)")
    }

    @Test("matching --iss, --aud and --typ pass with exit 0")
    func identityMatch() async throws {
        let token = try sign(claims(), with: try SigningKey.generate(.es256), type: "at+jwt")
        let run = try await jwtInspect(
            Self.now + ["--iss", "https://tokend.test", "--aud", "api", "--typ", "application/at+jwt", token]
        )
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("matches \"https://tokend.test\""), "\(run)")
    }

    @Test("the --typ check is the seed token's exit 2 (its typ is JWT)")
    func seedTypMismatch() async throws {
        let run = try await jwtInspect(["--now", Seed.appmixerValidNow, "--typ", "at+jwt", Seed.appmixer])
        #expect(run.exitCode == 2, "\(run)")
        #expect(run.stdout.contains("REJECTED [type_mismatch]"), "\(run)")
    }

    @Test("the most severe failure decides: a forged, expired, over-policy token exits 3")
    func severityOrder() async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.es256)
            let pub = try dir.write("pub.pem", key.verifyingKey.publicPEM())
            let token = try flippingSignatureBit(try sign(claims(lifetime: 7 * 86_400), with: key))
            let run = try await jwtInspect([
                "--now", String(Clock.t0 + 30 * 86_400), "--policy", "1h", "--key", pub, token,
            ])
            #expect(run.exitCode == 3, "\(run)")
            #expect(run.stdout.contains("REJECTED [signature_invalid]"), "\(run)")
            #expect(run.stdout.contains("(+2 more)"), "the other failures are still counted: \(run)")
        }
    }

    struct Usage: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let stdin: String?
        /// What stderr must name.
        let mentions: String
        var testDescription: String {
            arguments.joined(separator: " ") + (stdin.map { " <<< \($0.debugDescription)" } ?? "")
        }
    }

    @Test(
        "bad usage exits 4 with a message on stderr naming the problem",
        arguments: [
            Usage(arguments: ["--bogus", Seed.appmixer], stdin: nil, mentions: "--bogus"),
            Usage(arguments: ["--policy", "bogus", Seed.appmixer], stdin: nil, mentions: "--policy"),
            Usage(arguments: ["--policy", "0s", Seed.appmixer], stdin: nil, mentions: "--policy"),
            Usage(arguments: ["--now", "yesterday", Seed.appmixer], stdin: nil, mentions: "--now"),
            Usage(arguments: ["--leeway", "a bit", Seed.appmixer], stdin: nil, mentions: "--leeway"),
            Usage(arguments: ["--alg", "RS512", Seed.appmixer], stdin: nil, mentions: "--alg"),
            Usage(arguments: ["--key"], stdin: nil, mentions: "--key"),
            Usage(arguments: [Seed.appmixer, Seed.classic], stdin: nil, mentions: "Unexpected argument"),
            Usage(arguments: [], stdin: "", mentions: "no token"),
            Usage(arguments: ["-"], stdin: "", mentions: "no token"),
            Usage(arguments: [], stdin: " \n\n\t\n", mentions: "no token"),
        ]
    )
    func badUsage(usage: Usage) async throws {
        let run = try await jwtInspect(usage.arguments, stdin: usage.stdin.map { .pipe($0) } ?? .null)
        #expect(run.exitCode == 4, "\(run)")
        #expect(run.stderr.contains(usage.mentions), "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
    }

    @Test("with no token and a terminal on stdin it exits 4 at once instead of waiting for input")
    func terminalStdin() async throws {
        let run = try await jwtInspect([], stdin: .terminal)
        #expect(run.exitCode == 4, "\(run)")
        #expect(run.stderr.contains("no token"), "\(run)")
    }

    @Test("--help exits 0 and documents the key options and exit codes", arguments: ["--help", "-h"])
    func help(flag: String) async throws {
        let run = try await jwtInspect([flag])
        #expect(run.exitCode == 0, "\(run)")
        for text in [
            "--keys-dir", "--secret-file", "--jwks", "--policy", "--leeway", "--json", "--quiet", "Exit codes",
        ] {
            #expect(run.stdout.contains(text), "\(text) in \(run)")
        }
    }

    @Test("--version exits 0 and prints a version")
    func version() async throws {
        let run = try await jwtInspect(["--version"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("."), "\(run)")
    }
}
