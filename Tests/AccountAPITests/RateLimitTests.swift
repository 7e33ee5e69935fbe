import JOSE
import Testing
import TokenTestSupport

/// Seed 002's sign-up limits (per email, per IP, 429 with Retry-After and the documented
/// bodies), their bypass by admins, API_USER_CREATE_SCOPE, and the sign-in brute-force limits.
@Suite("Rate limits", .timeLimit(.minutes(2)))
struct RateLimitTests {
    static func signUp(
        _ daemon: Tokend,
        _ username: String,
        _ email: String,
        headers: [(String, String)],
        path: String = "/user"
    ) async throws -> Reply {
        let name = path == "/user" ? "username" : "name"
        return try await daemon.api(
            "POST",
            path,
            json: jsonText([name: .string(username), "email": .string(email), "password": "signup-password"]),
            headers: headers
        )
    }

    /// `Retry-After` is a whole number of seconds within the window.
    static func expectRetryAfter(_ reply: Reply, within window: Int, sourceLocation: SourceLocation = #_sourceLocation)
    {
        let value = reply.header("Retry-After").flatMap { Int($0) }
        #expect(
            value.map { (1...window).contains($0) } == true,
            "Retry-After \(reply.header("Retry-After") ?? "missing")",
            sourceLocation: sourceLocation
        )
    }

    @Test("sign-up per email and per IP exactly as seed 002; admins bypass both")
    func signupLimits() async throws {
        let limits = ["USER_SIGNUP_RATE_LIMIT_EMAIL": "2", "USER_SIGNUP_RATE_LIMIT_IP": "3"]
        try await withDaemon("signup-limits", environment: limits) { daemon in
            let ip: [(String, String)] = [("X-Real-IP", "198.51.100.1")]
            #expect(try await Self.signUp(daemon, "u1", "e1@example.com", headers: ip).status == 200)
            // A second attempt for e1 (the username is taken: 409) still counts for the email.
            expectError(try await Self.signUp(daemon, "u1", "e1@example.com", headers: ip), 409, .message, "taken")
            // The third for e1 (written differently; the same address): the email limit.
            let byEmail = try await Self.signUp(daemon, "u1c", "E1@Example.com", headers: ip)
            expectBody(byEmail, 429, Seed.signupLimitEmail)
            Self.expectRetryAfter(byEmail, within: 3600)
            // The email limit holds from any address.
            expectBody(
                try await Self.signUp(daemon, "u1d", "e1@example.com", headers: [("X-Real-IP", "192.0.2.50")]),
                429,
                Seed.signupLimitEmail
            )

            // The IP has made 2 counted attempts: one more is allowed, then the IP limit.
            #expect(try await Self.signUp(daemon, "u2", "e2@example.com", headers: ip).status == 200)
            let byIP = try await Self.signUp(daemon, "u3", "e3@example.com", headers: ip)
            expectBody(byIP, 429, Seed.signupLimitIP)
            Self.expectRetryAfter(byIP, within: 3600)
            // X-Forwarded-For: the last hop is the client.
            let otherLastHop = try await Self.signUp(
                daemon,
                "u3",
                "e3@example.com",
                headers: [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")]
            )
            #expect(otherLastHop.status == 200, "another last X-Forwarded-For hop: \(otherLastHop.summary)")
            expectBody(
                try await Self.signUp(
                    daemon,
                    "u4",
                    "e4@example.com",
                    headers: [("X-Forwarded-For", "203.0.113.9, 198.51.100.1")]
                ),
                429,
                Seed.signupLimitIP
            )
            // The classic sign-up is limited the same way (one sign-up, two doors).
            expectBody(
                try await Self.signUp(daemon, "u5", "e5@example.com", headers: ip, path: "/api/user/signup"),
                429,
                Seed.signupLimitIP
            )

            // The admin socket bypasses both: e1 is limited (and taken), e7 gets limited here.
            for _ in 0..<2 {
                _ = try await Self.signUp(daemon, "u1", "e7@example.com", headers: [("X-Real-IP", "192.0.2.77")])
            }
            expectBody(
                try await Self.signUp(daemon, "u7", "e7@example.com", headers: [("X-Real-IP", "192.0.2.78")]),
                429,
                Seed.signupLimitEmail
            )
            try await daemon.createUser("u7", "e7@example.com", "signup-password")
            for n in 0..<4 { try await daemon.createUser("bulk\(n)", "bulk\(n)@example.com", "signup-password") }
            // So does an admin-scoped bearer token on POST /user (seed 002: "an authenticated admin").
            let admin = try await daemon.issue(sub: "ops", scope: "admin").accessToken
            let byAdmin = try await Self.signUp(
                daemon,
                "u8",
                "e8@example.com",
                headers: ip + [("Authorization", "Bearer \(admin)")]
            )
            expectShape(byAdmin, 200, like: try seedJSON(Seed.appmixerCreate), allow: Seed.appmixerAllow)
            // Users created by admins sign in like any other.
            _ = try await daemon.signedIn(.appmixer, username: "u7", password: "signup-password")
        }
    }

    @Test("API_USER_CREATE_SCOPE=admin: POST /user needs an admin token, which bypasses the limits")
    func createScope() async throws {
        let environment = [
            "API_USER_CREATE_SCOPE": "admin", "USER_SIGNUP_RATE_LIMIT_IP": "1", "USER_SIGNUP_RATE_LIMIT_EMAIL": "1",
        ]
        try await withDaemon("create-scope", environment: environment) { daemon in
            let ip: [(String, String)] = [("X-Real-IP", "198.51.100.2")]
            expectError(
                try await Self.signUp(daemon, "anon", "anon@example.com", headers: ip),
                401,
                .message,
                "no token"
            )
            expectError(
                try await Self.signUp(daemon, "anon", "anon@example.com", headers: ip, path: "/api/user/signup"),
                401,
                .message,
                "classic sign-up without a token"
            )
            expectError(
                try await Self.signUp(
                    daemon,
                    "anon",
                    "anon@example.com",
                    headers: ip + [("Authorization", "Bearer garbage")]
                ),
                401,
                .message,
                "a bad token"
            )
            // A user's own token lacks the scope: refused.
            try await daemon.createUser("plain", "plain@example.com", "plain-password")
            let userToken = try #require(
                Dialect.appmixer.accessToken(
                    try await daemon.signedIn(.appmixer, username: "plain", password: "plain-password")
                )
            )
            let withUserToken = try await Self.signUp(
                daemon,
                "anon",
                "anon@example.com",
                headers: ip + [("Authorization", "Bearer \(userToken)")]
            )
            #expect(
                [401, 403].contains(withUserToken.status),
                "a token without the admin scope: \(withUserToken.summary)"
            )
            expectError(withUserToken, withUserToken.status, .message, "a token without the admin scope")

            // An admin token: created, three times from one IP with a limit of 1.
            let admin = try await daemon.issue(sub: "ops", scope: "admin").accessToken
            for n in 0..<3 {
                let reply = try await Self.signUp(
                    daemon,
                    "made\(n)",
                    "made\(n)@example.com",
                    headers: ip + [("Authorization", "Bearer \(admin)")]
                )
                expectShape(reply, 200, like: try seedJSON(Seed.appmixerCreate), allow: Seed.appmixerAllow)
            }
            // Sign-in stays open.
            _ = try await daemon.signedIn(.appmixer, username: "made2", password: "signup-password")
        }
    }

    @Test("sign-in brute force counts per account, whatever the identifier form, and under concurrency")
    func signinLimitsPerAccount() async throws {
        let environment = ["TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT": "3", "TOKEND_SIGNIN_RATE_LIMIT_IP": "1000"]
        try await withDaemon("signin-account", environment: environment) { daemon in
            try await daemon.createUser("vera", "vera@example.com", "vera-password")
            try await daemon.createUser("walt", "walt@example.com", "walt-password")
            // Three wrong passwords by email; the fourth try names the same account by username.
            let ip = "203.0.113.60"
            for n in 1...3 {
                expectError(
                    try await daemon.signIn(.v1, email: "vera@example.com", password: "guess-\(n)", ip: ip),
                    401,
                    .statusCode,
                    "guess \(n)"
                )
            }
            let byUsername = try await daemon.signIn(.v1, username: "vera", password: "guess-4", ip: ip)
            #expect(
                byUsername.status == 429,
                "the 4th wrong password for one account, by its username: \(byUsername.summary)"
            )

            // Twelve wrong passwords at once for one account from one address: at most 3 are tried.
            let burst = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<12 {
                    group.addTask {
                        try await daemon.signIn(
                            .classic,
                            email: "walt@example.com",
                            password: "burst-\(n)",
                            ip: "203.0.113.61"
                        ).status
                    }
                }
                var statuses: [Int] = []
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(burst.allSatisfy { [401, 429].contains($0) }, "\(burst)")
            let tried = burst.filter { $0 == 401 }.count
            #expect(tried <= 3, "\(tried) of 12 concurrent wrong passwords were checked (limit 3)")
            // Afterwards the account is blocked from that address.
            expectError(
                try await daemon.signIn(
                    .classic,
                    email: "walt@example.com",
                    password: "walt-password",
                    ip: "203.0.113.61"
                ),
                429,
                .message,
                "after the burst"
            )
        }
    }

    @Test("sign-in brute force: per account and IP, and per IP, 429 with Retry-After in each dialect")
    func signinLimits() async throws {
        let environment = ["TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT": "3", "TOKEND_SIGNIN_RATE_LIMIT_IP": "8"]
        try await withDaemon("signin-limits", environment: environment) { daemon in
            try await daemon.createUser("bruce", "bruce@example.com", "bruce-password")
            for (n, dialect) in Dialect.allCases.enumerated() {
                let ip = "203.0.113.\(10 + n)"
                for attempt in 1...3 {
                    let wrong = try await daemon.signIn(
                        dialect,
                        email: "bruce@example.com",
                        password: "guess-\(attempt)",
                        ip: ip
                    )
                    expectError(wrong, 401, dialect.errorShape, "\(dialect): wrong password \(attempt)")
                }
                // The 4th attempt is refused even with the right password.
                let limited = try await daemon.signIn(
                    dialect,
                    email: "bruce@example.com",
                    password: "bruce-password",
                    ip: ip
                )
                expectError(limited, 429, dialect.errorShape, "\(dialect): 4th attempt")
                Self.expectRetryAfter(limited, within: 900)
                #expect(
                    limited.json?.objectValue?.keys.contains("token") != true && limited.json?["accessToken"] == nil
                )
                // Another address is not blocked for the account.
                let elsewhere = try await daemon.signIn(
                    dialect,
                    email: "bruce@example.com",
                    password: "bruce-password",
                    ip: ip + "1"
                )
                #expect(elsewhere.status == 200, "\(dialect): another address: \(elsewhere.summary)")
            }
            // A success resets the account's count: 2 wrong, 1 right, 2 wrong → still 401.
            let ip = "203.0.113.40"
            for password in ["guess-a", "guess-b", "bruce-password", "guess-c", "guess-d"] {
                let reply = try await daemon.signIn(.v1, username: "bruce", password: password, ip: ip)
                #expect(reply.status == (password == "bruce-password" ? 200 : 401), "\(reply.status)")
            }
            // Per IP: 8 attempts on different (unknown) accounts, then 429.
            let sprayer = "203.0.113.50"
            for n in 1...8 {
                expectError(
                    try await daemon.signIn(
                        .classic,
                        email: "nobody\(n)@example.com",
                        password: "spray-password",
                        ip: sprayer
                    ),
                    401,
                    .message,
                    "spray \(n)"
                )
            }
            let sprayed = try await daemon.signIn(
                .classic,
                email: "nobody9@example.com",
                password: "spray-password",
                ip: sprayer
            )
            expectError(sprayed, 429, .message, "the 9th attempt from one address")
            Self.expectRetryAfter(sprayed, within: 900)
        }
    }
}
