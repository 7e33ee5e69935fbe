import CodedErrors
import Testing
import TokenCrypto

@testable import PasswordHashing

extension PasswordHashingSuite {
    @Suite("Verification")
    struct Verification {
        let hasher: PasswordHasher

        init() throws {
            hasher = try PasswordHasher(.init(workers: 2))
        }

        @Test("the right password matches, a wrong one does not, neither needs a rehash")
        func rightAndWrong() async throws {
            let phc = try await hasher.hash("s3cret-Passw0rd")
            #expect(
                try await hasher.verify(password: "s3cret-Passw0rd", phc: phc)
                    == .init(matches: true, needsRehash: false)
            )
            #expect(
                try await hasher.verify(password: "s3cret-Passw0rD", phc: phc)
                    == .init(matches: false, needsRehash: false)
            )
            #expect(try await hasher.verify(password: "", phc: phc).matches == false)
        }

        @Test("any bytes are accepted: empty, NUL, multi-byte, exactly 1024 bytes")
        func anyBytes() async throws {
            let longest = String(repeating: "é", count: 512)  // 1024 UTF-8 bytes
            for password in ["", "a\u{0}b", "pässwörd 🔑", longest] {
                let phc = try await hasher.hash(password)
                #expect(try await hasher.verify(password: password, phc: phc).matches, "\(password.utf8.count) bytes")
            }
            let nul = try await hasher.hash("a\u{0}b")
            #expect(try await hasher.verify(password: "a", phc: nul).matches == false, "not cut at NUL")
        }

        @Test("a password over 1024 bytes is refused before hashing, in each call")
        func tooLong() async throws {
            let password = String(repeating: "é", count: 512) + "a"  // 1025 UTF-8 bytes
            let phc = try await hasher.hash("short")
            await #expect(throws: PasswordHashingError.self) { try await hasher.hash(password) }
            await #expect(throws: PasswordHashingError.self) { try await hasher.verify(password: password, phc: phc) }
            await #expect(throws: PasswordHashingError.self) { try await hasher.verifyDummy(password: password) }
            do {
                _ = try await hasher.hash(password)
            } catch {
                #expect(error.code == .passwordTooLong)
                #expect(error.reason.contains("1025") && error.reason.contains("1024"))
                #expect(!error.description.contains("éé"), "the message never holds the password")
            }
        }

        @Test("a hash weaker than the current parameters matches and asks for a rehash")
        func weakerNeedsRehash() async throws {
            let weak = try PasswordHasher(
                .init(parameters: .unsafeTestingParameters(memoryKiB: 8192, iterations: 2), workers: 1)
            )
            let weakPHC = try await weak.hash("pw")
            #expect(weakPHC.hasPrefix("$argon2id$v=19$m=8192,t=2,p=1$"))
            #expect(try await hasher.verify(password: "pw", phc: weakPHC) == .init(matches: true, needsRehash: true))
            #expect(try await weak.verify(password: "pw", phc: weakPHC) == .init(matches: true, needsRehash: false))

            let fewerPasses = try PasswordHasher(
                .init(parameters: .unsafeTestingParameters(memoryKiB: 19456, iterations: 1), workers: 1)
            )
            let onePass = try await fewerPasses.hash("pw")
            #expect(try await hasher.verify(password: "pw", phc: onePass) == .init(matches: true, needsRehash: true))

            let rehashed = try await hasher.hash("pw")
            #expect(try await hasher.verify(password: "pw", phc: rehashed) == .init(matches: true, needsRehash: false))
        }

        @Test("a hash stronger than the current parameters matches without a rehash")
        func strongerKept() async throws {
            let strong = try PasswordHasher(
                .init(parameters: try PasswordHashingParameters(memoryKiB: 24576, iterations: 3), workers: 1)
            )
            let phc = try await strong.hash("pw")
            #expect(try await hasher.verify(password: "pw", phc: phc) == .init(matches: true, needsRehash: false))
        }

        @Test(
            "hashes tokend does not verify are refused cleanly: no match, rehash",
            arguments: [
                // argon2i and argon2d of "password" (libargon2's reference vectors): refused even
                // with the right password
                "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
                "$argon2d$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$lV5dWxY6G2C7o1/DbQSWR0+6T2tZrVNihmbwf7L5Pq8",
                // argon2id, but version 1.0, missing or reordered fields, bad numbers, bad base64
                "$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$t=2,m=65536,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=065536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=65536,t=0,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=65536,t=2,p=0$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=4,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=99999999999,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPP=",
                "$argon2id$v=19$m=65536,t=2,p=1$c29t$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
                "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$",
                "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc$extra",
                "$argon2id$v=19$m=65536,t=2,p=1",
                "$argon2id$",
                "",
                "password",
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                "$argon2id$v=19$m=65536,t=2,p=1$" + String(repeating: "A", count: 600) + "$CTFh",
            ]
        )
        func refused(phc: String) async throws {
            #expect(try await hasher.verify(password: "password", phc: phc) == .init(matches: false, needsRehash: true))
        }

        @Test("verify against the dummy hash never matches and costs a verification")
        func dummy() async throws {
            try await hasher.verifyDummy(password: "anything")
            try await hasher.verifyDummy(password: "")
            #expect(PasswordPHC(hasher.dummyPHC)?.parameters == hasher.parameters)
            #expect(PasswordPHC(hasher.dummyPHC)?.isVerifiable == true)
        }

        @Test("hashing runs on the dedicated worker threads, not the caller's")
        func onWorkerThreads() async throws {
            let name = try await hasher.perform { BackgroundThread.currentName }
            #expect(name == "tokend-argon2")
            #expect(BackgroundThread.currentName != "tokend-argon2")
        }

    }
}
