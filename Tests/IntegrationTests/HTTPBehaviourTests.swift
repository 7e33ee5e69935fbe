import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP surface of the real daemon over its real socket (issue 3 item 1, DESIGN §5): clear
/// 4xx answers, admin routes only on the admin socket, health, metrics, JWKS caching.
@Suite("HTTP behaviour of the daemon's socket")
struct HTTPBehaviourTests {
    @Test("Limits and errors: 404 admin on the API socket, 405 with Allow, 413, 431, 415, 400; keep-alive")
    func errorsAndLimits() async throws {
        try await withTokend("http") { daemon in
            let api = daemon.apiSocket
            for (method, path) in [
                ("GET", "/admin/keys"), ("POST", "/admin/tokens"), ("POST", "/admin/keys/rotate"),
                ("GET", "/admin/status"),
            ] {
                let response = try await http(api, method, path, body: method == "POST" ? .json(#"{"sub":"x"}"#) : nil)
                #expect(response.status == 404, "\(method) \(path) on the API socket answered \(response.status)")
            }
            let unknown = try await http(api, "GET", "/no/such/route")
            #expect(unknown.status == 404)
            #expect(unknown.json?["error"] != nil, "errors are JSON")

            let wrongMethod = try await http(api, "DELETE", "/oauth2/introspect")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("Allow")?.contains("POST") == true)
            let getIntrospect = try await http(api, "GET", "/oauth2/introspect")
            #expect(getIntrospect.status == 405)

            let big = RequestBody.raw(
                contentType: "application/x-www-form-urlencoded",
                Array("token=".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 64 * 1024 + 1)
            )
            let tooLarge = try await http(api, "POST", "/oauth2/introspect", body: big)
            #expect(tooLarge.status == 413)
            let bigHeader = String(repeating: "h", count: 20 * 1024)
            let headerTooLarge = try await http(api, "GET", "/healthz", headers: [("X-Filler", bigHeader)])
            #expect(headerTooLarge.status == 431)

            let textPlain = try await http(
                api,
                "POST",
                "/oauth2/introspect",
                body: .raw(contentType: "text/plain", Array("token=abc".utf8))
            )
            #expect(textPlain.status == 415)
            let malformed = try await http(api, "POST", "/oauth2/introspect", body: .json(#"{"token": "abc""#))
            #expect(malformed.status == 400)
            #expect(malformed.string("error") == "invalid_request")
            let missing = try await http(api, "POST", "/oauth2/introspect", body: .form([("nottoken", "x")]))
            #expect(missing.status == 400)
            let wrongGrant = try await http(api, "POST", "/oauth2/token", body: .form([("grant_type", "password")]))
            #expect(wrongGrant.status == 400)
            #expect(wrongGrant.string("error") == "unsupported_grant_type")

            // Two requests on one keep-alive connection.
            let pair = try await onThread {
                let connection = try UnixConnection(path: api)
                defer { connection.close() }
                try connection.send(requestBytes("GET", "/healthz", keepAlive: true))
                let first = try connection.readResponse()
                try connection.send(requestBytes("GET", "/healthz", keepAlive: true))
                return (first.status, try connection.readResponse().status)
            }
            #expect(pair == (200, 200))

            // The daemon is still fine after all that.
            let health = try await http(api, "GET", "/healthz")
            #expect(health.status == 200)
        }
    }

    @Test(
        "/healthz 200; /metrics counts requests and introspections; JWKS has Cache-Control max-age and an ETag that gives 304"
    )
    func healthMetricsJWKS() async throws {
        try await withTokend("metrics", environment: ["TOKEND_JWKS_MAX_AGE": "120s"]) { daemon in
            let api = daemon.apiSocket
            let health = try await http(api, "GET", "/healthz")
            #expect(health.status == 200)
            let tokens = try await daemon.issue(sub: "metrics")
            #expect(try await daemon.isActive(tokens.accessToken))

            let metrics = try await http(api, "GET", "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.header("Content-Type")?.hasPrefix("text/plain") == true)
            let text = metrics.text
            #expect(text.contains("tokend_http_requests_total"))
            #expect(text.contains("tokend_introspections_total"))
            let activeLine = text.split(separator: "\n").first {
                $0.hasPrefix("tokend_introspections_total") && $0.contains("active") && !$0.contains("inactive")
            }
            #expect(
                activeLine.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 >= 1 } == true,
                "\(activeLine ?? "no line")"
            )

            let jwks = try await http(api, "GET", "/.well-known/jwks.json")
            #expect(jwks.status == 200)
            #expect(
                jwks.header("Cache-Control")?.contains("max-age=120") == true,
                "\(jwks.header("Cache-Control") ?? "no Cache-Control")"
            )
            let etag = try #require(jwks.header("ETag"))
            let keys = try #require(jwks.json?["keys"]?.arrayValue)
            #expect(keys.count >= 2, "current and next are published")
            #expect(keys.contains { $0["kid"]?.stringValue == tokens.accessToken.kid })
            #expect(!keys.contains { $0["d"] != nil }, "the JWKS must hold public keys only")

            let cached = try await http(api, "GET", "/.well-known/jwks.json", headers: [("If-None-Match", etag)])
            #expect(cached.status == 304)
            #expect(cached.body.isEmpty)
            #expect(cached.header("ETag") == etag)
            let stale = try await http(
                api,
                "GET",
                "/.well-known/jwks.json",
                headers: [("If-None-Match", "\"something-else\"")]
            )
            #expect(stale.status == 200)

            // After a rotation the ETag changes.
            let rotated = try await daemon.tokenctl(["keys", "rotate", "--force"])
            #expect(rotated.succeeded)
            let after = try await http(api, "GET", "/.well-known/jwks.json", headers: [("If-None-Match", etag)])
            #expect(after.status == 200)
            #expect(after.header("ETag") != etag)
        }
    }
}

/// DESIGN §5.2/§6: the admin socket's file permission is the authorization; a second daemon never
/// takes over a live daemon's sockets, while a stale socket file (left by kill -9) is reclaimed.
@Suite("Socket files")
struct SocketFileTests {
    @Test("The API socket is mode 0660, the admin socket 0600")
    func modes() async throws {
        try await withTokend("modes") { daemon in
            var info = stat()
            #expect(stat(daemon.apiSocket, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o660, "API socket mode \(String(info.st_mode & 0o777, radix: 8))")
            #expect(stat(daemon.adminSocket, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600, "admin socket mode \(String(info.st_mode & 0o777, radix: 8))")
        }
    }

    @Test("A second tokend on the same socket paths refuses to start; the first keeps serving")
    func secondInstanceRefused() async throws {
        try await withTokend("twice") { first in
            // Its own store and keys, the same sockets.
            let other = try Sandbox("twice-b")
            defer { other.remove() }
            let environment = other.environment([
                "TOKEND_SOCKET": first.apiSocket, "TOKEND_ADMIN_SOCKET": first.adminSocket,
            ])
            let second = try await run(
                try Binaries.tokend(),
                [],
                environment: environment,
                in: other.path,
                timeout: .seconds(30)
            )
            #expect(second.status != .exited(0), "a second daemon started on a live daemon's sockets")
            #expect(second.stderr.contains(first.apiSocket) || second.stderr.contains(first.adminSocket), "\(second)")
            let health = try await http(first.apiSocket, "GET", "/healthz")
            #expect(health.status == 200, "the first daemon lost its API socket")
            let admin = try await http(first.adminSocket, "GET", "/admin/status")
            #expect(admin.status == 200, "the first daemon lost its admin socket")
        }
    }

    @Test("Socket files left by kill -9 are stale: a restart reclaims them")
    func staleSocketsReclaimed() async throws {
        let sandbox = try Sandbox("stale")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox)
        try await daemon.kill9()
        #expect(
            FileManager.default.fileExists(atPath: sandbox.apiSocket),
            "precondition: kill -9 leaves the socket file"
        )
        let restarted = try await Tokend.start(sandbox)
        let health = try await http(restarted.apiSocket, "GET", "/healthz")
        #expect(health.status == 200)
        #expect(await restarted.stop() == .exited(0))
    }
}
