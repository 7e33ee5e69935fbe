import Foundation
import Testing

/// DESIGN §8: the token comes from the argument or stdin, in whatever form it was pasted.
@Suite("jwt-inspect finds the token in every input form")
struct TokenInputTests {
    /// How a person hands the token over.
    enum Delivery: CustomTestStringConvertible, Sendable {
        case argument(String)
        case stdin(String)
        /// `jwt-inspect -` with the text piped in.
        case dashStdin(String)

        var testDescription: String {
            switch self {
            case .argument(let text): "argument \(Self.sketch(text))"
            case .stdin(let text): "stdin \(Self.sketch(text))"
            case .dashStdin(let text): "- and stdin \(Self.sketch(text))"
            }
        }

        private static func sketch(_ text: String) -> String {
            let shown = text.replacingOccurrences(of: Seed.appmixer, with: "TOKEN")
            return shown.debugDescription
        }
    }

    static let token = Seed.appmixer

    static let forms: [Delivery] = [
        .stdin(token),
        .stdin(token + "\n"),
        .dashStdin(token + "\n"),
        .argument("Bearer \(token)"),
        .stdin("Bearer \(token)\n"),
        .stdin("bearer \(token)"),
        .stdin("Authorization: Bearer \(token)\n"),
        .argument("Authorization: Bearer \(token)"),
        .stdin("authorization:Bearer \(token)"),
        .stdin(
            """
            GET /user HTTP/1.1
            Host: api.appmixer.com
            Authorization: Bearer \(token)
            Accept: application/json

            """
        ),
        .stdin("'\(token)'"),
        .stdin("\"\(token)\"\n"),
        .argument("\"\(token)\""),
        .stdin("  \n\t\(token)  \n\n"),
        .argument("\n \(token) \n"),
        .stdin("{\"token\": \"\(token)\"}"),
        .stdin("{\"accessToken\":\"\(token)\"}\n"),
        .stdin("{\n  \"access_token\": \"\(token)\",\n  \"token_type\": \"Bearer\",\n  \"expires_in\": 2592000\n}\n"),
        .stdin(Seed.appmixerSignInBody),
        .dashStdin(Seed.appmixerSignInBody),
    ]

    static func run(_ delivery: Delivery, _ options: [String]) async throws -> RunResult {
        switch delivery {
        case .argument(let text): try await jwtInspect(options + [text])
        case .stdin(let text): try await jwtInspect(options, stdin: .pipe(text))
        case .dashStdin(let text): try await jwtInspect(options + ["-"], stdin: .pipe(text))
        }
    }

    @Test("gives exactly the output of the bare token as an argument", arguments: forms)
    func sameResult(delivery: Delivery) async throws {
        let options = ["--now", Seed.appmixerValidNow, "--policy", "auto"]
        let reference = try await jwtInspect(options + [Self.token])
        #expect(reference.exitCode == 0, "\(reference)")
        #expect(reference.stdout.contains(Seed.appmixerUserID))

        let run = try await Self.run(delivery, options)
        #expect(run.exitCode == reference.exitCode, "\(run)")
        #expect(run.stdout == reference.stdout, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
    }

    @Test(
        "gives the same failure for the expired token in every form",
        arguments: [
            Delivery.stdin("Authorization: Bearer \(token)"), .stdin(Seed.appmixerSignInBody), .argument("'\(token)'"),
        ]
    )
    func sameFailure(delivery: Delivery) async throws {
        let run = try await Self.run(delivery, ["--now", "2019-05-01T00:00:00Z"])
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.stdout.contains("REJECTED [expired]"), "\(run)")
    }

    @Test(
        "a quoted Authorization line or quoted Bearer value is accepted",
        arguments: [
            Delivery.stdin("\"Authorization: Bearer \(token)\""),
            .stdin("'Bearer \(token)'"),
            .argument("\"Bearer \(token)\""),
        ]
    )
    func quotedHeader(delivery: Delivery) async throws {
        let options = ["--now", Seed.appmixerValidNow]
        let reference = try await jwtInspect(options + [Self.token])
        let run = try await Self.run(delivery, options)
        #expect(run.exitCode == reference.exitCode, "\(run)")
        #expect(run.stdout == reference.stdout, "\(run)")
    }

    @Test("a header block without an Authorization line is refused with exit 4 and a reason")
    func headerBlockWithoutAuthorization() async throws {
        let run = try await jwtInspect([], stdin: .pipe("Host: example.com\nAccept: */*\n"))
        #expect(run.exitCode == 4, "\(run)")
        #expect(run.stderr.contains("none is an Authorization header"), "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
    }

    @Test("JSON without a token field is refused with exit 4 naming the fields it looked for")
    func jsonWithoutToken() async throws {
        let run = try await jwtInspect([], stdin: .pipe("{\"user\": {\"id\": \"x\"}}"))
        #expect(run.exitCode == 4, "\(run)")
        #expect(run.stderr.contains("access_token"), "\(run)")
    }
}
