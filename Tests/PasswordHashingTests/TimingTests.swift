import PasswordHashing
import Testing

extension PasswordHashingSuite {
    @Suite("Equal work")
    struct EqualWork {
        @Test("an unknown user (dummy verify) costs what a wrong password costs: medians within 10 %")
        func unknownUserCostsAWrongPassword() async throws {
            let hasher = try PasswordHasher(.init(workers: 1))
            let phc = try await hasher.hash("the real password")
            let clock = ContinuousClock()
            var dummy: [Double] = []
            var wrong: [Double] = []
            var refused: [Double] = []

            func timeDummy() async throws {
                let start = clock.now
                try await hasher.verifyDummy(password: "a guess")
                dummy.append(milliseconds(start.duration(to: clock.now)))
            }
            func timeWrong() async throws {
                let start = clock.now
                let result = try await hasher.verify(password: "a guess", phc: phc)
                wrong.append(milliseconds(start.duration(to: clock.now)))
                #expect(!result.matches)
            }
            func timeRefused() async throws {
                let start = clock.now
                let result = try await hasher.verify(
                    password: "a guess",
                    phc: "$argon2i$v=19$m=8,t=1,p=1$c29tZXNhbHQ$AAAA"
                )
                refused.append(milliseconds(start.duration(to: clock.now)))
                #expect(result == .init(matches: false, needsRehash: true))
            }

            // Warm up, then interleave in alternating order so drift and noise fall on all series.
            // Whatever else runs on the machine can still load one series more than another, so
            // a round whose medians are 10 % apart is measured again, up to three rounds; a real
            // difference (a dummy that skips the hash: ~0 ms against ~25 ms) fails every round.
            try await timeDummy()
            try await timeWrong()
            var rounds: [String] = []
            for _ in 1...3 {
                dummy.removeAll()
                wrong.removeAll()
                refused.removeAll()
                for round in 0..<40 {
                    if round.isMultiple(of: 2) {
                        try await timeDummy()
                        try await timeWrong()
                        try await timeRefused()
                    } else {
                        try await timeRefused()
                        try await timeWrong()
                        try await timeDummy()
                    }
                }
                let (d, w, r) = (median(dummy), median(wrong), median(refused))
                rounds.append("median dummy \(d) ms, refused hash \(r) ms, wrong password \(w) ms")
                if abs(d - w) / w < 0.10 && abs(r - w) / w < 0.10 { break }
            }
            let (d, w, r) = (median(dummy), median(wrong), median(refused))
            #expect(abs(d - w) / w < 0.10, "dummy vs wrong password in every round:\n\(rounds.joined(separator: "\n"))")
            #expect(
                abs(r - w) / w < 0.10,
                "refused hash vs wrong password in every round:\n\(rounds.joined(separator: "\n"))"
            )
        }
    }

    @Suite("Benchmark hook")
    struct Benchmark {
        @Test("rawHashRate reports libargon2's rate, slower at higher cost")
        func rawRate() {
            let fast = PasswordHasher.rawHashRate(seconds: 0.2, parameters: fastParameters)
            let owasp = PasswordHasher.rawHashRate(seconds: 0.3)
            #expect(owasp > 1, "an OWASP hash takes well under a second: \(owasp)/s")
            #expect(fast > owasp * 5, "256 KiB, t=1 is far cheaper than 19 MiB, t=2: \(fast)/s vs \(owasp)/s")
            let two = PasswordHasher.rawHashRate(seconds: 0.3, threads: 2)
            #expect(two > 1)
        }
    }
}
