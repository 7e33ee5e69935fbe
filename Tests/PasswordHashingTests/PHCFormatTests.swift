import CodedErrors
import Testing

@testable import PasswordHashing

extension PasswordHashingSuite {
    @Suite("PHC strings and parameters")
    struct PHCFormat {
        @Test("a new hash is Argon2id v1.3 at OWASP parameters with a 16-byte salt and a 32-byte hash")
        func defaultFormat() async throws {
            let hasher = try PasswordHasher(.init(workers: 1))
            let phc = try await hasher.hash("correct horse battery staple")
            let layout = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+\/]{22})\$([A-Za-z0-9+\/]{43})$/
            #expect(phc.wholeMatch(of: layout) != nil, "unexpected layout: \(phc.prefix(31))…")
            let again = try await hasher.hash("correct horse battery staple")
            #expect(again != phc, "each hash has its own random salt")
            #expect(hasher.parameters == .owasp)
        }

        @Test("stronger configured parameters appear in the PHC string")
        func configuredParameters() async throws {
            let parameters = try PasswordHashingParameters(memoryKiB: 32768, iterations: 3, parallelism: 2)
            let hasher = try PasswordHasher(.init(parameters: parameters, workers: 1))
            let phc = try await hasher.hash("pw")
            #expect(phc.hasPrefix("$argon2id$v=19$m=32768,t=3,p=2$"))
            #expect(try await hasher.verify(password: "pw", phc: phc) == .init(matches: true, needsRehash: false))
        }

        @Test(
            "parameters below OWASP or beyond the maxima are refused with the accepted range",
            arguments: [
                (8192, 2, 1), (19455, 2, 1), (19456, 1, 1), (47104, 1, 1), (19456, 2, 0), (5_000_000, 2, 1),
                (19456, 101, 1), (19456, 2, 65),
            ]
        )
        func refusedParameters(memory: Int, iterations: Int, parallelism: Int) {
            #expect(throws: PasswordHashingError.self) {
                try PasswordHashingParameters(memoryKiB: memory, iterations: iterations, parallelism: parallelism)
            }
            do {
                _ = try PasswordHashingParameters(memoryKiB: memory, iterations: iterations, parallelism: parallelism)
            } catch {
                #expect(error.code == .invalidConfiguration)
                #expect(error.reason.contains("must be"), "says what is accepted: \(error.reason)")
            }
        }

        @Test("OWASP's parameters are the defaults and the floor")
        func owaspFloor() throws {
            #expect(try PasswordHashingParameters() == .owasp)
            #expect(PasswordHashingParameters.owasp.description == "m=19456,t=2,p=1")
            #expect(PasswordHashingParameters.owasp.meetsOWASPMinimum)
            #expect(!fastParameters.meetsOWASPMinimum)
        }

        @Test("a pool without workers or queue is refused")
        func refusedPool() {
            #expect(throws: PasswordHashingError.self) { try PasswordHasher(.init(workers: 0)) }
            #expect(throws: PasswordHashingError.self) { try PasswordHasher(.init(workers: 1, queueCapacity: 0)) }
        }

        @Test("libargon2's reference vectors (test.c, v1.3, t=2, m=64 MiB, p=1)")
        func knownAnswer() async throws {
            let parameters = PasswordHashingParameters.unsafeTestingParameters(memoryKiB: 65536, iterations: 2)
            let phc = try Array("password".utf8).withUnsafeBytes { password in
                try PasswordArgon2.hashEncoded(password: password, salt: Array("somesalt".utf8), parameters: parameters)
            }
            #expect(phc == "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")

            let hasher = try PasswordHasher(.init(workers: 1))
            // The reference's 8-byte salt is shorter than tokend's 16: it verifies, and asks for a rehash.
            #expect(try await hasher.verify(password: "password", phc: phc) == .init(matches: true, needsRehash: true))
            // One bit flipped in the hash ('C' → 'D') no longer matches.
            let flipped = phc.replacing("$CTFh", with: "$DTFh")
            #expect(try await hasher.verify(password: "password", phc: flipped).matches == false)
        }
    }
}
