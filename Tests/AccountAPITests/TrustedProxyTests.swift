import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10, finding 5: `X-Real-IP` / `X-Forwarded-For` were believed from any peer, so a
/// client could spread guesses over made-up addresses and spend a victim's budget by naming
/// the victim's address. Now only `TOKEND_TRUSTED_PROXIES` are believed.
@Suite("Trusted proxies", .timeLimit(.minutes(2)))
struct TrustedProxyTests {
    static func login(_ email: String, _ password: String) -> String {
        jsonText(["email": .string(email), "password": .string(password)])
    }

    @Test("an untrusted peer's X-Real-IP and X-Forwarded-For are ignored: it cannot lock out the address it names")
    func untrustedHeadersIgnored() async throws {
        let port = try freeLoopbackPort()
        let environment = [
            "TOKEND_LISTEN": "127.0.0.1:\(port)", "TOKEND_TRUSTED_PROXIES": "127.0.0.1",
            "TOKEND_SIGNIN_RATE_LIMIT_IP": "5", "TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT": "100000",
        ]
        try await withDaemon("untrusted", environment: environment) { daemon in
            try await daemon.createUser("vic", "vic@example.com", "vic-password")
            let victim = "198.51.100.7"
            // On the Unix socket this process is no trusted proxy: whatever it claims, its
            // failures count against its own peer identity.
            for n in 1...5 {
                let reply = try await daemon.api(
                    "POST",
                    "/api/user/login",
                    json: Self.login("nobody\(n)@example.com", "guess-password"),
                    headers: [("X-Real-IP", victim), ("X-Forwarded-For", "192.0.2.\(n), \(victim)")]
                )
                expectError(reply, 401, .message, "failure \(n) claiming the victim's address")
            }
            let sixth = try await daemon.api(
                "POST",
                "/api/user/login",
                json: Self.login("nobody6@example.com", "guess-password"),
                headers: [("X-Real-IP", "203.0.113.200")]
            )
            expectError(sixth, 429, .message, "a 6th failure under yet another claimed address")
            // The victim, through the trusted proxy (TCP from 127.0.0.1), signs in.
            let signedIn = try await tcpRequest(
                port: port,
                "POST",
                "/api/user/login",
                json: Self.login("vic@example.com", "vic-password"),
                headers: [("X-Real-IP", victim)]
            )
            #expect(signedIn.status == 200, "the victim behind the proxy: \(signedIn.summary)")
            // Through the proxy, failures count per forwarded address.
            for n in 1...5 {
                let reply = try await tcpRequest(
                    port: port,
                    "POST",
                    "/api/user/login",
                    json: Self.login("vic@example.com", "wrong-\(n)"),
                    headers: [("X-Real-IP", "198.51.100.8")]
                )
                expectError(reply, 401, .message, "proxied failure \(n)")
            }
            let limited = try await tcpRequest(
                port: port,
                "POST",
                "/api/user/login",
                json: Self.login("vic@example.com", "vic-password"),
                headers: [("X-Real-IP", "198.51.100.8")]
            )
            expectError(limited, 429, .message, "the 6th attempt from one forwarded address")
            let other = try await tcpRequest(
                port: port,
                "POST",
                "/api/user/login",
                json: Self.login("vic@example.com", "vic-password"),
                headers: [("X-Real-IP", "198.51.100.9")]
            )
            #expect(other.status == 200, "another forwarded address: \(other.summary)")
        }
    }

    @Test(
        "from a trusted proxy, the client is the right-most X-Forwarded-For hop that is not a trusted proxy",
        arguments: ["uid:\(getuid())", "unix"]
    )
    func forwardedFor(gateway: String) async throws {
        let environment = [
            "TOKEND_TRUSTED_PROXIES": "\(gateway), 10.0.0.0/8", "TOKEND_SIGNIN_RATE_LIMIT_IP": "3",
            "TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT": "100000",
        ]
        try await withDaemon("forwarded", environment: environment) { daemon in
            try await daemon.createUser("fay", "fay@example.com", "fay-password")
            func attempt(_ password: String, _ forwardedFor: String) async throws -> Reply {
                try await daemon.api(
                    "POST",
                    "/api/user/login",
                    json: Self.login("fay@example.com", password),
                    headers: [("X-Forwarded-For", forwardedFor)]
                )
            }
            // Client 203.0.113.9 behind an inner proxy 10.1.2.3; what it wrote to the left of its
            // own hop changes every time and proves nothing.
            for n in 1...3 {
                expectError(
                    try await attempt("wrong-\(n)", "192.0.2.\(n), 203.0.113.9, 10.1.2.3"),
                    401,
                    .message,
                    "failure \(n)"
                )
            }
            expectError(try await attempt("fay-password", "203.0.113.9"), 429, .message, "the same client, directly")
            // Split over two header lines, the list is one list.
            let split = try await daemon.api(
                "POST",
                "/api/user/login",
                json: Self.login("fay@example.com", "fay-password"),
                headers: [("X-Forwarded-For", "192.0.2.99"), ("X-Forwarded-For", "203.0.113.9, 10.9.9.9")]
            )
            expectError(split, 429, .message, "X-Forwarded-For over two header lines")
            #expect(try await attempt("fay-password", "203.0.113.9, 203.0.113.10").status == 200, "another client")
            // Every hop a trusted proxy: the left-most is the client.
            #expect(try await attempt("fay-password", "10.0.0.1, 10.0.0.2").status == 200)
        }
    }

    @Test(
        "a TOKEND_TRUSTED_PROXIES that is not a list of proxies stops tokend at start, naming the variable",
        arguments: ["uid:alice", "10.0.0.1/8", "300.1.2.3", "uid:65534", "10.0.0.0/33"]
    )
    func invalidValueStopsTheStart(value: String) async throws {
        let sandbox = try Sandbox("proxies-invalid")
        defer { sandbox.remove() }
        // As the variable, and as the flag laid over a valid variable.
        let starts: [([String], [String: String])] = [
            ([], ["TOKEND_TRUSTED_PROXIES": value]),
            (["--trusted-proxies", value], ["TOKEND_TRUSTED_PROXIES": "uid:0"]),
        ]
        for (arguments, environment) in starts {
            let result = try await Tokend.refusedStart(sandbox, environment: environment, arguments: arguments)
            #expect(result.status == .exited(78), "\(arguments): \(result.status)")
            #expect(result.output.contains("TOKEND_TRUSTED_PROXIES"), "\(result.output.prefix(400))")
            #expect(result.output.contains("expected uid:N"), "\(result.output.prefix(400))")
        }
    }
}
