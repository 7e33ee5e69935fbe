import NIOCore
import Testing

@testable import TokenServer

@Suite("Router")
struct RouterTests {
    private func router() -> Router {
        var router = Router()
        let ok = RouteHandler.sync { _ in HTTPResponse(status: 200) }
        router.add("GET", "/admin/keys", name: "keys_list", ok)
        router.add("POST", "/admin/keys/rotate", name: "keys_rotate", ok)
        router.add("GET", "/admin/keys/{kid}", name: "key_show", ok)
        router.add("POST", "/admin/keys/{kid}/revoke", name: "key_revoke", ok)
        router.add("POST", "/admin/users/{id}/logout", name: "user_logout", ok)
        router.add("GET", "/admin/users/{id}", name: "user_show", ok)
        router.add("DELETE", "/admin/users/{id}", name: "user_delete", ok)
        return router
    }

    private func name(_ resolution: Router.Resolution) -> String? {
        if case .matched(let route, _) = resolution { return route.name }
        return nil
    }

    @Test("captures {param} segments into path parameters")
    func capturesParameters() {
        guard
            case .matched(let route, let parameters) = router().resolve(method: "POST", path: "/admin/keys/k-1/revoke")
        else {
            Issue.record("no match")
            return
        }
        #expect(route.name == "key_revoke")
        #expect(parameters == ["kid": "k-1"])
    }

    @Test("a literal segment wins over a parameter, and the parameter route still serves other methods")
    func literalBeforeParameter() {
        let router = router()
        #expect(name(router.resolve(method: "POST", path: "/admin/keys/rotate")) == "keys_rotate")
        #expect(name(router.resolve(method: "GET", path: "/admin/keys/rotate")) == "key_show")
    }

    @Test("an unknown path is 404, an extra or missing segment too")
    func notFound() {
        let router = router()
        for path in ["/nope", "/admin/keys/k1/revoke/extra", "/admin", "/admin/keys/", "/admin/users//logout"] {
            guard case .notFound = router.resolve(method: "GET", path: path) else {
                Issue.record("\(path) should be 404")
                continue
            }
        }
    }

    @Test("a known path with another method is 405 listing the methods, HEAD beside GET")
    func methodNotAllowed() {
        guard case .methodNotAllowed(let allowed) = router().resolve(method: "PUT", path: "/admin/users/u1") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["DELETE", "GET", "HEAD"])
    }

    @Test("HEAD is served by the GET route")
    func headUsesGet() {
        #expect(name(router().resolve(method: "HEAD", path: "/admin/keys")) == "keys_list")
    }

    @Test("parameters are matched on decoded segments, so an encoded slash stays inside its segment")
    func decodedSegments() throws {
        let target = try RequestTarget.parse("/admin/keys/a%2Fb/revoke?x=1").get()
        #expect(target.segments == ["admin", "keys", "a/b", "revoke"])
        guard case .matched(_, let parameters) = router().resolve(method: "POST", segments: target.segments) else {
            Issue.record("no match")
            return
        }
        #expect(parameters["kid"] == "a/b")
    }

    @Test("a raw request target routes as its parsed, decoded form does")
    func rawTargetsRouteAsParsed() throws {
        let router = router()
        let targets = [
            "/admin/keys", "/admin/keys?x=1", "/admin/keys/rotate", "/admin/%6Beys/rotate", "/admin/keys/rotate#f",
            "/admin/keys/k1", "/admin/keys/a%2Fb/revoke", "/admin%2Fkeys", "/admin/users/u1", "/admin//keys", "/",
            "/nothing",
        ]
        func describe(_ resolution: Router.Resolution) -> String {
            switch resolution {
            case .matched(let route, let parameters): "\(route.name) \(parameters.sorted { $0.key < $1.key })"
            case .notFound: "404"
            case .methodNotAllowed(let allowed): "405 \(allowed)"
            }
        }
        for method in ["GET", "HEAD", "POST", "DELETE", "PUT"] {
            for target in targets {
                let parsed = try RequestTarget.parse(target).get()
                let routed = try router.route(method: method, target: target).get()
                #expect(routed.path == parsed.path, "\(method) \(target)")
                #expect(routed.query.map(\.name) == parsed.query.map(\.name), "\(method) \(target)")
                #expect(
                    describe(routed.resolution) == describe(router.resolve(method: method, segments: parsed.segments)),
                    "\(method) \(target)"
                )
            }
        }
        // The encoded slash is one segment: it does not reach the literal route.
        #expect(name(try router.route(method: "GET", target: "/admin%2Fkeys").get().resolution) == nil)
        #expect(name(try router.route(method: "GET", target: "/admin/keys").get().resolution) == "keys_list")
    }

    @Test(
        "request targets that are not an absolute path or do not decode are refused",
        arguments: [
            "http://example.com/hello", "*", "/bad%zz", "/bad%e9", "/nul%00", "/q?a=%",
        ]
    )
    func badTargets(_ uri: String) {
        #expect(throws: HTTPError.self) { try RequestTarget.parse(uri).get() }
    }
}

@Suite("Constant response headers")
struct ConstantHeaderTests {
    @Test("headers the routes mark as constant pass the check the server skips for them")
    func constantHeadersAreValid() {
        #expect(HTTPResponseWriter.headersAreValid(TokenRoutes.jsonHeaders))
        #expect(!HTTPResponseWriter.headersAreValid([("X-Bad", "a\r\nInjected: 1")]))
    }

    @Test("a response with constant headers is framed byte for byte as one with the same headers given plainly")
    func constantHeadersFrameAlike() {
        let fieldSets: [[(name: String, value: String)]] = [
            TokenRoutes.jsonHeaders,
            [("Content-Type", "text/plain"), ("Cache-Control", "max-age=5"), ("X-A", "b")],
            [("Connection", "close"), ("Content-Length", "999"), ("Content-Type", "application/json")],
            [],
        ]
        for fields in fieldSets {
            for (minor, keepAlive, isHead, status, body) in [
                (1, true, false, 200, Array(#"{"active":true}"#.utf8)), (0, true, false, 200, []),
                (1, false, true, 404, [0x41]),
                (1, true, false, 204, []),
            ] {
                var plain = ByteBufferAllocator().buffer(capacity: 0)
                var constant = ByteBufferAllocator().buffer(capacity: 0)
                let plainKeeps = HTTPResponseWriter.write(
                    HTTPResponse(status: status, headers: fields, body: body),
                    minorVersion: minor,
                    keepAlive: keepAlive,
                    isHead: isHead,
                    into: &plain
                )
                let constantKeeps = HTTPResponseWriter.write(
                    HTTPResponse(status: status, constantHeaders: ConstantHeaders(fields), body: body),
                    minorVersion: minor,
                    keepAlive: keepAlive,
                    isHead: isHead,
                    into: &constant
                )
                #expect(plain == constant)
                #expect(plainKeeps == constantKeeps)
            }
        }
    }

    @Test("Content-Length is written in decimal for any length")
    func decimal() {
        for value in [0, 7, 10, 99, 100, 65_536, Int.max] {
            var out = ByteBufferAllocator().buffer(capacity: 0)
            HTTPResponseWriter.writeDecimal(value, into: &out)
            #expect(out.readString(length: out.readableBytes) == String(value))
        }
    }
}
