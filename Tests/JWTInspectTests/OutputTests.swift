import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// --json, --quiet, colour, and shell completions.
@Suite("jwt-inspect output modes")
struct OutputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let arguments: [String]
        let exitCode: Int32
        let kind: String
        let failedRule: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "valid",
            arguments: ["--now", Seed.appmixerValidNow, Seed.appmixer],
            exitCode: 0,
            kind: "JWS",
            failedRule: nil
        ),
        Case(name: "expired", arguments: [Seed.appmixer], exitCode: 1, kind: "JWS", failedRule: "expired"),
        Case(
            name: "over policy",
            arguments: ["--policy", "1h", Seed.appmixer],
            exitCode: 2,
            kind: "JWS",
            failedRule: "lifetime_policy"
        ),
        Case(
            name: "alg none",
            arguments: [unsignedToken(header: "{\"alg\":\"none\"}", payload: "{\"sub\":\"x\"}", signature: "")],
            exitCode: 3,
            kind: "JWS",
            failedRule: "alg_none"
        ),
        Case(name: "malformed", arguments: ["a.b"], exitCode: 4, kind: "malformed", failedRule: "bad_segments"),
    ]

    @Test("--json prints one JSON object whose exit_code is the process's exit code", arguments: cases)
    func json(sample: Case) async throws {
        let run = try await jwtInspect(["--json"] + sample.arguments)
        #expect(run.exitCode == sample.exitCode, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        guard let object = parseJSONObject(run.stdout) else { return }
        #expect(integer(object["exit_code"]) == Int64(run.exitCode), "\(run)")
        #expect(object["kind"] as? String == sample.kind, "\(run)")
        #expect(object["failed_rule"] as? String == sample.failedRule, "\(run)")
        #expect(object["verdict"] is String, "\(run)")
        let checks = object["checks"] as? [[String: Any]]
        #expect(checks?.isEmpty == false, "\(run)")
        #expect(checks?.allSatisfy { $0["name"] is String && $0["status"] is String } == true, "\(run)")
        if let rule = sample.failedRule {
            #expect(
                checks?.contains { $0["status"] as? String == "fail" && $0["rule"] as? String == rule } == true,
                "\(run)"
            )
        } else {
            #expect(checks?.contains { $0["status"] as? String == "fail" } == false, "\(run)")
        }
    }

    @Test("--json carries header, claims and every time claim as a UTC string")
    func jsonContent() async throws {
        let run = try await jwtInspect(["--json", "--now", Seed.appmixerValidNow, Seed.appmixer])
        guard let object = parseJSONObject(run.stdout) else { return }
        let header = object["header"] as? [String: Any]
        #expect(header?["alg"] as? String == "HS256", "\(run)")
        #expect(header?["typ"] as? String == "JWT", "\(run)")
        let claims = object["claims"] as? [String: Any]
        #expect(claims?["id"] as? String == Seed.appmixerUserID, "\(run)")
        #expect(claims?["scope"] as? [String] == ["user"], "\(run)")
        let times = object["times"] as? [String: [String: Any]]
        #expect(times?["iat"]?["utc"] as? String == "2019-03-13T15:56:49Z", "\(run)")
        #expect(times?["exp"]?["utc"] as? String == "2019-04-12T15:56:49Z", "\(run)")
        #expect(integer(times?["exp"]?["value"]) == 1_555_084_609, "\(run)")
        #expect(object["lifetime"] as? String == "30d", "\(run)")
        #expect(object["signature"] as? String == "not_verified", "\(run)")
        #expect(object["now"] as? String == "2019-03-20T00:00:00Z", "\(run)")
    }

    @Test("--json lists auth_time among the times, as the text output does")
    func jsonAuthTime() async throws {
        let token = try sign(
            claims(extra: [("auth_time", .number(JSONNumber(Clock.t0 - 600)))]),
            with: try SigningKey.generate(.es256)
        )
        let text = try await jwtInspect(["--now", String(Clock.t0), token])
        #expect(
            !text.stdout.lines(containing: "auth_time").filter { $0.contains("2023-11-14T22:03:20Z") }.isEmpty,
            "\(text)"
        )
        let run = try await jwtInspect(["--json", "--now", String(Clock.t0), token])
        let times = parseJSONObject(run.stdout)?["times"] as? [String: [String: Any]]
        #expect(times?["iat"]?["utc"] as? String == Clock.t0ISO, "\(run)")
        #expect(times?["auth_time"]?["utc"] as? String == "2023-11-14T22:03:20Z", "\(run)")
    }

    @Test("--json reports a verified signature", arguments: [false, true])
    func jsonVerified(forged: Bool) async throws {
        try await withTemporaryDirectory { dir in
            let key = try SigningKey.generate(.es256)
            let pub = try dir.write("pub.pem", key.verifyingKey.publicPEM())
            var token = try sign(claims(), with: key)
            if forged { token = try flippingSignatureBit(token) }
            let run = try await jwtInspect(["--json", "--now", String(Clock.t0), "--key", pub, token])
            #expect(run.exitCode == (forged ? 3 : 0), "\(run)")
            let object = parseJSONObject(run.stdout)
            #expect(object?["signature"] as? String == (forged ? "invalid" : "verified"), "\(run)")
            #expect(integer(object?["exit_code"]) == Int64(run.exitCode), "\(run)")
        }
    }

    @Test("--quiet prints nothing and keeps the exit code", arguments: cases)
    func quiet(sample: Case) async throws {
        for flag in ["--quiet", "-q"] {
            let run = try await jwtInspect([flag] + sample.arguments)
            #expect(run.exitCode == sample.exitCode, "\(run)")
            #expect(run.stdout.isEmpty, "\(run)")
            #expect(run.stderr.isEmpty, "\(run)")
        }
    }

    @Test("--json and --quiet together are a usage error")
    func jsonAndQuiet() async throws {
        let run = try await jwtInspect(["--json", "--quiet", Seed.appmixer])
        #expect(run.exitCode == 4, "\(run)")
        #expect(run.stderr.contains("--json"), "\(run)")
        #expect(run.stderr.contains("--quiet"), "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
    }

    // MARK: Colour

    static let escape = "\u{1B}["

    @Test("no colour escapes when stdout is not a terminal", arguments: cases)
    func noColourInPipes(sample: Case) async throws {
        let run = try await jwtInspect(sample.arguments)
        #expect(!run.stdout.contains(Self.escape), "\(run)")
        #expect(!run.stderr.contains(Self.escape), "\(run)")
    }

    @Test("colour on a terminal, none with NO_COLOR set, none for --json")
    func colourOnTerminal() async throws {
        let coloured = try await jwtInspectOnTerminal(["--now", Seed.appmixerValidNow, Seed.appmixer])
        #expect(coloured.exitCode == 0, "\(coloured)")
        #expect(coloured.stdout.contains(Self.escape), "a terminal gets colour: \(coloured)")
        #expect(coloured.stdout.contains(Seed.appmixerUserID), "\(coloured)")

        let plain = try await jwtInspectOnTerminal(
            ["--now", Seed.appmixerValidNow, Seed.appmixer],
            environment: ["NO_COLOR": "1"]
        )
        #expect(plain.exitCode == 0, "\(plain)")
        #expect(plain.stdout.contains(Seed.appmixerUserID), "\(plain)")
        #expect(!plain.stdout.contains(Self.escape), "NO_COLOR=1: \(plain)")

        let json = try await jwtInspectOnTerminal(["--json", Seed.appmixer])
        #expect(!json.stdout.contains(Self.escape), "\(json)")
        #expect(parseJSONObject(json.stdout.replacingOccurrences(of: "\r\n", with: "\n")) != nil)
    }

    @Test("an empty NO_COLOR does not disable colour (no-color.org: \"present and not an empty string\")")
    func emptyNoColour() async throws {
        let run = try await jwtInspectOnTerminal(
            ["--now", Seed.appmixerValidNow, Seed.appmixer],
            environment: ["NO_COLOR": ""]
        )
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains(Self.escape), "\(run)")
    }

    // MARK: Completions

    @Test("shell completion scripts offer --keys-dir and --secret-file", arguments: ["bash", "zsh", "fish"])
    func completions(shell: String) async throws {
        let run = try await jwtInspect(["--generate-completion-script", shell])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.stdout.contains("jwt-inspect"), "\(run)")
        for option in ["keys-dir", "secret-file", "jwks", "policy"] {
            let spelled = shell == "fish" ? "-l '\(option)'" : "--\(option)"
            #expect(run.stdout.contains(spelled), "\(spelled) in the \(shell) script")
        }
    }

    @Test("the zsh completion completes directories for --keys-dir and files for the key options")
    func completionKinds() async throws {
        let run = try await jwtInspect(["--generate-completion-script", "zsh"])
        #expect(run.exitCode == 0, "\(run)")
        let line = { (option: String) in run.stdout.lines(containing: "--\(option)[").first.map(String.init) ?? "" }
        #expect(line("keys-dir").contains("_files -/"), "\(line("keys-dir"))")
        for option in ["key", "jwks", "secret-file"] {
            #expect(line(option).contains("_files"), "\(line(option))")
        }
    }
}

/// A JSONSerialization number as an integer, whatever type it arrived as.
func integer(_ value: Any?) -> Int64? {
    switch value {
    case let number as Int: Int64(number)
    case let number as Int64: number
    case let number as NSNumber: number.int64Value
    case let number as Double: Int64(exactly: number)
    default: nil
    }
}
