import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// A secret file's content must never reach the screen or a log.
@Suite("jwt-inspect never echoes a shared secret")
struct SecretEchoTests {
    /// Distinctive text, so any echo (whole or in part) is caught.
    static let secret = "QuixoticZebra-secret-9f8e7d6c5b4a39281706-never-print"

    /// Fails without quoting the output, which may hold the secret.
    static func expectNoSecret(_ run: RunResult, _ secret: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let fragments = [secret, String(secret.prefix(12)), String(secret.suffix(12))]
        for fragment in fragments {
            #expect(
                !run.stdout.contains(fragment),
                "stdout shows the secret (exit \(run.exitCode))",
                sourceLocation: sourceLocation
            )
            #expect(
                !run.stderr.contains(fragment),
                "stderr shows the secret (exit \(run.exitCode))",
                sourceLocation: sourceLocation
            )
        }
        let encoded = Base64URL.encode(Array(secret.utf8))
        #expect(
            !run.output.contains(encoded.prefix(16)),
            "the output shows the secret in base64url",
            sourceLocation: sourceLocation
        )
    }

    @Test("not when the signature verifies, fails, or the output is JSON")
    func verifyingRuns() async throws {
        try await withTemporaryDirectory { dir in
            let path = try dir.write("secret", Self.secret + "\n")
            let key = try SigningKey(secret: Array(Self.secret.utf8))
            let token = try sign(claims(), with: key, type: "JWT")
            let forged = try flippingSignatureBit(token)
            let otherKey = try sign(claims(), with: try SigningKey.generate(.hs256), type: "JWT")
            for arguments in [[token], [forged], [otherKey], ["--json", token], ["--json", forged], [Seed.appmixer]] {
                let run = try await jwtInspect(["--now", String(Clock.t0), "--secret-file", path] + arguments)
                #expect([0, 1, 3].contains(run.exitCode), "exit \(run.exitCode)")
                Self.expectNoSecret(run, Self.secret)
            }
        }
    }

    @Test("not when the secret is refused as too short")
    func tooShort() async throws {
        try await withTemporaryDirectory { dir in
            let short = "Tiny-Zebra-0042"
            let path = try dir.write("secret", short + "\n")
            let run = try await jwtInspect(["--secret-file", path, Seed.appmixer])
            #expect(run.exitCode == 4, "exit \(run.exitCode)")
            #expect(run.stderr.contains("--secret-file"), "the message names the option")
            #expect(run.stderr.contains("32 bytes"), "the message says what is required")
            #expect(run.stdout.isEmpty)
            Self.expectNoSecret(run, short)
        }
    }

    @Test("not when the secret file is handed to an option that expects a key or a JWKS")
    func wrongOption() async throws {
        try await withTemporaryDirectory { dir in
            let path = try dir.write("secret", Self.secret + "\n")
            for option in ["--key", "--jwks", "--keys-dir"] {
                let run = try await jwtInspect([option, path, Seed.appmixer])
                #expect(run.exitCode == 4, "\(option): exit \(run.exitCode)")
                #expect(!run.stderr.isEmpty, "\(option): an error message is shown")
                Self.expectNoSecret(run, Self.secret)
            }
        }
    }
}

/// --now and --leeway.
@Suite("jwt-inspect --now and --leeway")
struct TimeOptionTests {
    /// iat 2024-04-30T12:00:00Z, exp 2024-05-01T12:00:00Z.
    static let exp: Int64 = 1_714_564_800
    static func token() throws -> String {
        try sign(claims(iat: exp - 86_400, lifetime: 86_400), with: try SigningKey.generate(.es256))
    }

    struct Moment: Sendable, CustomTestStringConvertible {
        let text: String
        let utc: String
        let exitCode: Int32
        var testDescription: String { "--now \(text)" }
    }

    @Test(
        "--now takes ISO 8601 with Z or an offset, a bare date, or epoch seconds",
        arguments: [
            Moment(text: "2024-05-01T11:30:00Z", utc: "2024-05-01T11:30:00Z", exitCode: 0),
            // 13:30 at +02:00 is 11:30 UTC: valid. Read as UTC it would be 90 minutes past exp.
            Moment(text: "2024-05-01T13:30:00+02:00", utc: "2024-05-01T11:30:00Z", exitCode: 0),
            Moment(text: "2024-05-01T14:30:00+02:00", utc: "2024-05-01T12:30:00Z", exitCode: 1),
            Moment(text: "2024-05-01T07:30:00-04:00", utc: "2024-05-01T11:30:00Z", exitCode: 0),
            Moment(text: "2024-05-01", utc: "2024-05-01T00:00:00Z", exitCode: 0),
            Moment(text: "2024-05-02", utc: "2024-05-02T00:00:00Z", exitCode: 1),
            Moment(text: "1714563000", utc: "2024-05-01T11:30:00Z", exitCode: 0),
            Moment(text: "1714566600", utc: "2024-05-01T12:30:00Z", exitCode: 1),
        ]
    )
    func now(moment: Moment) async throws {
        let run = try await jwtInspect(["--now", moment.text, try Self.token()])
        #expect(run.exitCode == moment.exitCode, "\(run)")
        #expect(run.stdout.contains("(UTC, now \(moment.utc))"), "\(run)")
        if moment.exitCode == 1 {
            #expect(run.stdout.contains("REJECTED [expired]"), "\(run)")
        }
    }

    @Test("the exp line says how far away expiry is, relative to --now")
    func relativeTimes() async throws {
        let token = try Self.token()
        let before = try await jwtInspect(["--now", "2024-05-01T11:30:00Z", token])
        #expect(before.stdout.contains("expires in 30m"), "\(before)")
        let after = try await jwtInspect(["--now", "2024-05-01T12:30:00Z", token])
        #expect(after.stdout.contains("expired 30m ago"), "\(after)")
    }

    struct Leeway: Sendable, CustomTestStringConvertible {
        let leeway: String?
        let exitCode: Int32
        var testDescription: String { leeway.map { "--leeway \($0)" } ?? "no leeway" }
    }

    @Test(
        "--leeway lets a token expired 30 s ago pass only when it covers the 30 s",
        arguments: [
            Leeway(leeway: nil, exitCode: 1),
            Leeway(leeway: "10", exitCode: 1),
            Leeway(leeway: "29s", exitCode: 1),
            Leeway(leeway: "31", exitCode: 0),
            Leeway(leeway: "60", exitCode: 0),
            Leeway(leeway: "1m", exitCode: 0),
        ]
    )
    func leeway(sample: Leeway) async throws {
        let arguments = ["--now", String(Self.exp + 30)] + (sample.leeway.map { ["--leeway", $0] } ?? [])
        let run = try await jwtInspect(arguments + [try Self.token()])
        #expect(run.exitCode == sample.exitCode, "\(run)")
        if sample.exitCode == 1 {
            #expect(run.stdout.contains("REJECTED [expired]"), "\(run)")
        }
    }

    @Test("a check passed only thanks to --leeway says so, not that the token has not expired yet")
    func leewayWording() async throws {
        let expired = try await jwtInspect(["--now", String(Self.exp + 30), "--leeway", "60", try Self.token()])
        #expect(expired.exitCode == 0, "\(expired)")
        let expCheck =
            expired.stdout.split(separator: "\n").first { $0.hasPrefix("  ok    exp") }.map(String.init) ?? ""
        let issued = try sign(claims(iat: Clock.t0 + 30), with: try SigningKey.generate(.es256))
        let future = try await jwtInspect(["--now", String(Clock.t0), "--leeway", "60", issued])
        #expect(future.exitCode == 0, "\(future)")
        let iatCheck = future.stdout.split(separator: "\n").first { $0.hasPrefix("  ok    iat") }.map(String.init) ?? ""
        #expect(!expCheck.contains("expires in"), "exp check: \(expCheck)")
        #expect(expCheck.contains("expired 30s ago"), "exp check: \(expCheck)")
        #expect(!iatCheck.contains("ago"), "iat check: \(iatCheck)")
        #expect(iatCheck.contains("in the future"), "iat check: \(iatCheck)")
    }

    @Test("--leeway also tolerates an nbf a little in the future")
    func leewayNotBefore() async throws {
        let token = try sign(
            claims(iat: Clock.t0, extra: [("nbf", .number(JSONNumber(Clock.t0 + 20)))]),
            with: try SigningKey.generate(.es256)
        )
        let strict = try await jwtInspect(["--now", String(Clock.t0), token])
        #expect(strict.exitCode == 1, "\(strict)")
        let lenient = try await jwtInspect(["--now", String(Clock.t0), "--leeway", "60", token])
        #expect(lenient.exitCode == 0, "\(lenient)")
    }
}
