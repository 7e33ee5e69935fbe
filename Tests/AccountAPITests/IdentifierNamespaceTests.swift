import JOSE
import Testing
import TokenTestSupport

/// Issue 10, finding 6: a sign-up could take another user's email as its username, after
/// which the owner's appmixer sign-in by that address answered 401 and the taker's tokens
/// introspected with the owner's address as `username`. Usernames and emails now share one
/// namespace, compared after NFKC and case folding, and invisible characters are refused.
@Suite("One namespace for usernames and emails", .timeLimit(.minutes(2)))
struct IdentifierNamespaceTests {
    static func signUp(
        _ daemon: Tokend,
        username: String,
        email: String,
        classic: Bool = false
    ) async throws -> Reply {
        try await daemon.api(
            "POST",
            classic ? "/api/user/signup" : "/user",
            json: jsonText([
                classic ? "name" : "username": .string(username), "email": .string(email),
                "password": "namespace-password",
            ])
        )
    }

    @Test("another user's email cannot become a username; the owner still signs in by it")
    func emailAsSomeoneElsesUsername() async throws {
        try await withDaemon("email-as-username") { daemon in
            let alice = try #require(
                try await Self.signUp(daemon, username: "alice", email: "alice@example.com").json?["user"]?["id"]?
                    .stringValue
            )
            for (username, classic) in [
                ("alice@example.com", false), ("ALICE@Example.com", false), ("alice@example.com", true),
            ] {
                let taken = try await Self.signUp(
                    daemon,
                    username: username,
                    email: "evil@example.com",
                    classic: classic
                )
                #expect([400, 409].contains(taken.status), "\(username): \(taken.summary)")
                expectError(taken, taken.status, .message, "\(username) as the username of evil@example.com")
            }
            let byAdmin = try await daemon.admin(
                "POST",
                "/admin/users",
                json: jsonText([
                    "username": "alice@example.com", "email": "evil@example.com", "password": "namespace-password",
                ])
            )
            #expect([400, 409].contains(byAdmin.status), "on the admin socket: \(byAdmin.summary)")
            // Nobody got the address: Alice's sign-in by it, in the username field, is Alice's.
            let signedIn = try await daemon.signedIn(
                .appmixer,
                username: "alice@example.com",
                password: "namespace-password"
            )
            #expect(signedIn["user"]?["id"]?.stringValue == alice)
            #expect(
                try await daemon.signIn(.appmixer, email: "evil@example.com", password: "namespace-password").status
                    == 401
            )

            // Nor can an address be taken as a username before its owner signs up.
            let squat = try await Self.signUp(daemon, username: "bob@example.com", email: "mallory@example.com")
            expectError(squat, 400, .message, "bob@example.com as mallory's username")
            #expect(try await Self.signUp(daemon, username: "bob", email: "bob@example.com").status == 200)
            // A username may be the account's own email, as in the seed documents.
            let own = try await Self.signUp(daemon, username: "Carol@Example.com", email: "carol@example.com")
            #expect(own.status == 200, "\(own.summary)")
            #expect(
                try await daemon.signIn(.v1, username: "carol@example.com", password: "namespace-password").status
                    == 200
            )
        }
    }

    @Test("an address in look-alike @ signs (＠, ﹫) cannot be taken as a username before its owner signs up")
    func lookAlikeAtSign() async throws {
        try await withDaemon("lookalike-at") { daemon in
            for username in ["bob\u{FF20}example.com", "bob\u{FE6B}example.com", "BOB\u{FF20}EXAMPLE.COM"] {
                let taken = try await Self.signUp(daemon, username: username, email: "evil@example.com")
                #expect(
                    taken.status == 400,
                    "\(username.unicodeScalars.map { String($0.value, radix: 16) }): \(taken.summary)"
                )
            }
            // The address is still Bob's to sign up with, and the name is his by it.
            #expect(try await Self.signUp(daemon, username: "bob", email: "bob@example.com").status == 200)
            let signedIn = try await daemon.signedIn(
                .appmixer,
                username: "bob@example.com",
                password: "namespace-password"
            )
            #expect(signedIn["user"]?["username"]?.stringValue == "bob")
        }
    }

    @Test("look-alike usernames and emails are one identifier, for sign-up and for sign-in")
    func lookAlikes() async throws {
        try await withDaemon("look-alikes") { daemon in
            #expect(try await Self.signUp(daemon, username: "dave", email: "dave@example.com").status == 200)
            // Full-width, upper-case, ligature and compatibility forms.
            for (n, username) in ["ｄａｖｅ", "DAVE", "Ｄave", "\u{217E}ave", " dave "].enumerated() {
                let reply = try await Self.signUp(daemon, username: username, email: "other\(n)@example.com")
                let body = expectError(reply, 409, .message, "username \(username)")
                #expect(body?["error"]?.stringValue?.lowercased().contains("username") == true, "\(reply.summary)")
            }
            for email in ["DAVE@EXAMPLE.COM", "dave@ｅxample.com", "ｄave@example.com"] {
                expectError(
                    try await Self.signUp(daemon, username: "someone", email: email),
                    409,
                    .message,
                    "email \(email)"
                )
            }
            #expect(try await Self.signUp(daemon, username: "straße", email: "strasse@example.com").status == 200)
            expectError(
                try await Self.signUp(daemon, username: "STRASSE", email: "s2@example.com"),
                409,
                .message,
                "STRASSE"
            )
            // Sign-in compares the same way.
            #expect(try await daemon.signIn(.appmixer, username: "ＤＡＶＥ", password: "namespace-password").status == 200)
            #expect(
                try await daemon.signIn(.v1, email: "DAVE@ｅxample.com", password: "namespace-password").status == 200
            )
        }
    }

    @Test("usernames with bidi controls or invisible characters are refused in the dialect's validation shape")
    func invisibleCharacters() async throws {
        let usernames = [
            "ali\u{200B}ce", "\u{202E}ecila", "alice\u{200D}", "\u{FEFF}alice", "ali\u{2066}ce\u{2069}",
            "ali\u{00AD}ce",
            "al\u{200E}ice", "alice\u{0007}", "ali\u{3164}ce", "alice\u{E000}",
        ]
        try await withDaemon("invisible") { daemon in
            for username in usernames {
                for classic in [false, true] {
                    let reply = try await Self.signUp(
                        daemon,
                        username: username,
                        email: "inv@example.com",
                        classic: classic
                    )
                    let what =
                        "U+" + username.unicodeScalars.map { String($0.value, radix: 16) }.joined(separator: " U+")
                    let body = expectError(reply, 400, .message, what)
                    #expect(
                        body?["error"]?.stringValue?.contains("username must not contain") == true,
                        "\(what): \(reply.summary)"
                    )
                }
            }
            let email = try await Self.signUp(daemon, username: "inv", email: "inv\u{200B}@example.com")
            expectError(email, 400, .message, "an email with a zero-width space")
            // The same name without the invisible character is fine.
            #expect(try await Self.signUp(daemon, username: "alice", email: "alice@example.com").status == 200)
        }
    }

    @Test("concurrent sign-ups for one identifier: exactly one wins")
    func concurrentSignUps() async throws {
        try await withDaemon("namespace-race") { daemon in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<8 {
                    let username = n % 2 == 0 ? "erin" : "ERIN"
                    group.addTask {
                        try await Self.signUp(daemon, username: username, email: "erin\(n)@example.com").status
                    }
                }
                var statuses: [Int] = []
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(statuses.filter { $0 == 200 }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == 409 }.count == 7, "\(statuses)")
        }
    }
}
