import Testing
import TokenCrypto

/// The sample tokens of the seed documents, as a person would first try the tool.
@Suite("jwt-inspect on the seed documents' tokens")
struct SeedTokenTests {
    @Test("the Appmixer token decodes, shows a 30d lifetime, and is reported expired with exit 1")
    func appmixerExpired() async throws {
        let run = try await jwtInspect([Seed.appmixer])
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stdout.contains("\"id\": \"\(Seed.appmixerUserID)\""), "claims are shown: \(run)")
        #expect(run.stdout.contains("\"alg\": \"HS256\""), "header is shown: \(run)")
        #expect(run.stdout.contains("2019-04-12T15:56:49Z"), "exp as UTC ISO 8601: \(run)")
        #expect(run.stdout.contains("2019-03-13T15:56:49Z"), "iat as UTC ISO 8601: \(run)")
        #expect(!run.stdout.lines(containing: "Lifetime").filter { $0.contains("30d") }.isEmpty, "\(run)")
        let expLine = run.stdout.lines(containing: "2019-04-12T15:56:49Z").first { $0.contains("expired") }
        #expect(expLine?.contains(" ago") == true, "exp is described as \"expired … ago\": \(run)")
        #expect(run.stdout.contains("REJECTED [expired]"), "\(run)")
        #expect(run.stdout.contains("signature not verified"), "\(run)")
    }

    @Test("the Appmixer token passes at a moment inside its validity, without claiming it is valid")
    func appmixerWithinValidity() async throws {
        let run = try await jwtInspect([Seed.appmixer, "--now", Seed.appmixerValidNow])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("now 2019-03-20T00:00:00Z"), "\(run)")
        #expect(run.stdout.contains("expires in"), "\(run)")
        #expect(run.stdout.contains("SIGNATURE NOT VERIFIED"), "\(run)")
        #expect(!run.stdout.contains("VALID:"), "no key, so never \"VALID\": \(run)")
    }

    @Test("a 24h policy fails the 30-day Appmixer token with exit 2 although it is also expired")
    func policyOutranksTime() async throws {
        let run = try await jwtInspect([Seed.appmixer, "--policy", "24h"])
        #expect(run.exitCode == 2, "\(run)")
        #expect(run.stdout.contains("REJECTED [lifetime_policy]"), "\(run)")
        #expect(run.stdout.contains("exceeds the 24h policy"), "\(run)")
        #expect(run.stdout.contains("expired"), "the expiry is still reported: \(run)")
    }

    @Test(
        "--policy auto names the smallest built-in policy the seed token fits",
        arguments: [
            (Seed.appmixer, Seed.appmixerValidNow, "30d"),
            (Seed.classic, Seed.classicValidNow, "1h"),
        ]
    )
    func autoPolicy(token: String, now: String, policy: String) async throws {
        let run = try await jwtInspect([token, "--policy", "auto", "--now", now])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("fits the \(policy) policy (auto)"), "\(run)")
        #expect(run.stdout.contains("fits built-in policy \(policy)"), "\(run)")

        let json = try await jwtInspect([token, "--policy", "auto", "--now", now, "--json"])
        let object = parseJSONObject(json.stdout)
        #expect((object?["policy"] as? [String: Any])?["name"] as? String == policy, "\(json)")
        #expect(object?["fits_policy"] as? String == policy, "\(json)")
    }

    @Test("the classic 1-hour token fails a 15m policy with exit 2")
    func classicShorterPolicy() async throws {
        let run = try await jwtInspect([Seed.classic, "--policy", "15m", "--now", Seed.classicValidNow])
        #expect(run.exitCode == 2, "\(run)")
        #expect(run.stdout.contains("lifetime 1h exceeds the 15m"), "\(run)")
    }

    @Test("--policy auto fails a token longer than every built-in policy with exit 2")
    func autoPolicyTooLong() async throws {
        let token = try sign(claims(lifetime: 90 * 86_400), with: try SigningKey.generate(.es256))
        let run = try await jwtInspect(["--policy", "auto", "--now", String(Clock.t0 + 60), token])
        #expect(run.exitCode == 2, "\(run)")
        #expect(
            run.stdout.contains("REJECTED [lifetime_policy]: lifetime 90d is longer than every built-in policy"),
            "\(run)"
        )
    }

    @Test(
        "--policy takes a custom duration",
        arguments: [("2h", Int32(0)), ("59m", Int32(2)), ("1h", Int32(0)), ("3600", Int32(0))]
    )
    func customPolicy(policy: String, exitCode: Int32) async throws {
        let run = try await jwtInspect([Seed.classic, "--policy", policy, "--now", Seed.classicValidNow])
        #expect(run.exitCode == exitCode, "\(run)")
    }
}
