import Foundation
import JOSE
import Testing
import TokenTestSupport

/// An unknown user and a wrong password get the same answer, byte for byte, and take the same
/// time (issue 4's acceptance list: medians over 200 tries differ by less than 10 %). About 20 s
/// on an idle machine; the limit leaves room for three rounds per dialect on a loaded one (a
/// full run beside fuzzing and builds took over 3 minutes).
@Suite("Unknown user and wrong password answer alike", .timeLimit(.minutes(10)))
struct EqualAnswerTests {
    /// The two requests of one dialect: an account that does not exist, and one that does with
    /// a wrong password — in the form each dialect's clients send them.
    static func requests(_ dialect: Dialect) -> (unknown: String, wrong: String) {
        switch dialect {
        case .appmixer:
            (
                dialect.signInBody(username: "nobody-here", password: "wrong-password"),
                dialect.signInBody(username: "timmy", password: "wrong-password")
            )
        case .classic:
            (
                dialect.signInBody(email: "nobody@example.com", password: "wrong-password"),
                dialect.signInBody(email: "timmy@example.com", password: "wrong-password")
            )
        case .v1:
            (
                dialect.signInBody(email: "nobody@example.com", password: "wrong-password"),
                dialect.signInBody(email: "timmy@example.com", password: "wrong-password")
            )
        }
    }

    /// Status, headers but Date, and body.
    static func comparable(_ reply: Reply) -> String {
        let headers = reply.headers.filter { $0.name.lowercased() != "date" }.map(\.description).joined(separator: "\n")
        return "\(reply.status)\n\(headers)\n\n\(reply.text)"
    }

    static func median(_ values: [Duration]) -> Double {
        let seconds = values.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }.sorted()
        let mid = seconds.count / 2
        return seconds.count % 2 == 1 ? seconds[mid] : (seconds[mid - 1] + seconds[mid]) / 2
    }

    @Test("byte-identical answers and medians within 10 % over 200 interleaved tries, in every dialect")
    func sameAnswerSameTime() async throws {
        try await withDaemon("equal-answers", environment: ["TOKEND_HASH_WORKERS": "2"]) { daemon in
            try await daemon.createUser("timmy", "timmy@example.com", "timmy-password")
            // Byte-identical, including every header but Date, for each identifier form.
            var variants: [(Dialect, String, String)] = Dialect.allCases.map {
                ($0, Self.requests($0).unknown, Self.requests($0).wrong)
            }
            variants.append(
                (
                    .appmixer, Dialect.appmixer.signInBody(email: "nobody@example.com", password: "wrong-password"),
                    Dialect.appmixer.signInBody(email: "timmy@example.com", password: "wrong-password")
                )
            )
            variants.append(
                (
                    .v1, Dialect.v1.signInBody(username: "nobody-here", password: "wrong-password"),
                    Dialect.v1.signInBody(username: "timmy", password: "wrong-password")
                )
            )
            for (dialect, unknownBody, wrongBody) in variants {
                let unknown = try await daemon.api("POST", dialect.signInPath, json: unknownBody)
                let wrong = try await daemon.api("POST", dialect.signInPath, json: wrongBody)
                #expect(unknown.status == 401, "\(dialect): \(unknown.summary)")
                #expect(Self.comparable(unknown) == Self.comparable(wrong), "\(dialect)")
                if dialect == .v1 { #expect(unknown.text == Seed.v1Unauthorized) }
            }

            // Timing: 200 pairs per dialect, the two requests of a pair sent together (the
            // daemon has two hashing workers, so neither waits for the other and whatever else
            // loads the machine loads both alike), the one sent first alternating. Other test
            // processes share the two cores, so a round whose medians are 10 % apart is measured
            // again, up to three rounds; a real difference (an unknown user skipping the hash:
            // ~1 ms against ~25 ms) fails every round.
            let tries = 200
            for dialect in Dialect.allCases {
                let (unknownBody, wrongBody) = Self.requests(dialect)
                var rounds: [String] = []
                var answers: Set<String> = []
                var within = false
                for _ in 1...3 where !within {
                    var unknownTimes: [Duration] = []
                    var wrongTimes: [Duration] = []
                    for n in 0..<tries {
                        let order = n % 2 == 0 ? [true, false] : [false, true]
                        let pair = try await withThrowingTaskGroup(of: (Bool, Reply).self) { group in
                            for isUnknown in order {
                                group.addTask {
                                    (
                                        isUnknown,
                                        try await daemon.api(
                                            "POST",
                                            dialect.signInPath,
                                            json: isUnknown ? unknownBody : wrongBody
                                        )
                                    )
                                }
                            }
                            var replies: [(Bool, Reply)] = []
                            for try await reply in group { replies.append(reply) }
                            return replies
                        }
                        for (isUnknown, reply) in pair {
                            if isUnknown {
                                unknownTimes.append(reply.elapsed)
                            } else {
                                wrongTimes.append(reply.elapsed)
                            }
                            answers.insert("\(reply.status) \(reply.text)")
                        }
                    }
                    let unknown = Self.median(unknownTimes)
                    let wrong = Self.median(wrongTimes)
                    let difference = abs(unknown - wrong) / max(unknown, wrong)
                    func ms(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }
                    let line =
                        "\(dialect.rawValue) round \(rounds.count + 1): median unknown user \(ms(unknown)), wrong password "
                        + "\(ms(wrong)) over \(tries) tries each: \(String(format: "%.1f", difference * 100)) % apart"
                    print(line)
                    rounds.append(line)
                    within = difference < 0.10
                }
                #expect(
                    within,
                    "\(dialect): medians 10 % apart or more in every round:\n\(rounds.joined(separator: "\n"))"
                )
                #expect(answers.count == 1, "\(dialect): every answer is the same: \(answers.sorted())")
            }
        }
    }
}
