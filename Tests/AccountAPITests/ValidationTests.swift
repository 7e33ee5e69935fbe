import JOSE
import Testing
import TokenTestSupport

/// Bad input in each dialect: every answer is the dialect's error shape with a 4xx status,
/// never a crash, a hang, or another dialect's body.
@Suite("Validation in each dialect's error shape", .timeLimit(.minutes(2)))
struct ValidationTests {
    /// One account route: its path, error shape and a valid body (members that are strings).
    struct Route: Sendable, CustomTestStringConvertible {
        let name: String
        let path: String
        let shape: ErrorShape
        let body: [String: String]
        /// The members without which the request is incomplete, one at a time.
        let required: [String]
        /// Whether a password rule applies (sign-in and sign-up routes).
        var hasPassword: Bool { body["password"] != nil }
        var testDescription: String { name }

        func json(_ changes: [String: JSONValue?] = [:]) -> String {
            var members = body.mapValues { JSONValue.string($0) }
            for (name, value) in changes { members[name] = value }
            return jsonText(members)
        }
    }

    static let routes: [Route] = [
        Route(
            name: "appmixer sign-in",
            path: "/user/auth",
            shape: .message,
            body: ["username": "val@example.com", "password": "val-password"],
            required: ["password"]
        ),
        Route(
            name: "appmixer sign-up",
            path: "/user",
            shape: .message,
            body: ["username": "fresh", "email": "fresh@example.com", "password": "val-password"],
            required: ["username", "email", "password"]
        ),
        Route(
            name: "classic login",
            path: "/api/user/login",
            shape: .message,
            body: ["email": "val@example.com", "password": "val-password"],
            required: ["email", "password"]
        ),
        Route(
            name: "classic signup",
            path: "/api/user/signup",
            shape: .message,
            body: ["name": "fresh2", "email": "fresh2@example.com", "password": "val-password"],
            required: ["name", "email", "password"]
        ),
        Route(
            name: "v1 sign-in",
            path: "/api/v1/auths/sign-in",
            shape: .statusCode,
            body: ["email": "val@example.com", "password": "val-password"],
            required: ["password"]
        ),
        Route(
            name: "v1 refresh",
            path: "/api/v1/auths/refresh",
            shape: .statusCode,
            body: ["refreshToken": "x"],
            required: ["refreshToken"]
        ),
    ]

    @Test("missing fields, wrong types, short and long passwords, malformed JSON, media type, huge bodies")
    func badInput() async throws {
        try await withDaemon("validation") { daemon in
            try await daemon.createUser("val", "val@example.com", "val-password")
            for route in Self.routes {
                func check(_ what: String, _ reply: Reply, _ status: Int = 400) -> JSONValue? {
                    expectError(reply, status, route.shape, "\(route.name): \(what)")
                }
                // Missing fields, one at a time, and an empty object.
                for member in route.required {
                    let body = check(
                        "without \(member)",
                        try await daemon.api("POST", route.path, json: route.json([member: nil]))
                    )
                    #expect(
                        body?.errorTexts.joined().contains(member) == true,
                        "\(route.name): the error names \(member)"
                    )
                }
                _ = check("{}", try await daemon.api("POST", route.path, json: "{}"))
                if route.name == "appmixer sign-in" || route.name == "v1 sign-in" {
                    let body = check(
                        "no identifier",
                        try await daemon.api("POST", route.path, json: #"{"password":"val-password"}"#)
                    )
                    #expect(
                        body?.errorTexts.joined().contains("email or username") == true,
                        "\(route.name): names the identifiers"
                    )
                }
                // Wrong JSON types.
                for (member, value) in [
                    ("password", JSONValue.number(JSONNumber(123456))), ("email", .array(["val@example.com"])),
                ]
                where route.body[member] != nil {
                    let body = check(
                        "\(member) as \(value.typeName)",
                        try await daemon.api("POST", route.path, json: route.json([member: value]))
                    )
                    #expect(
                        body?.errorTexts.joined().contains(member) == true,
                        "\(route.name): the error names \(member)"
                    )
                }
                if route.name == "v1 refresh" {
                    _ = check(
                        "refreshToken as number",
                        try await daemon.api("POST", route.path, json: #"{"refreshToken":42}"#)
                    )
                }
                if route.name == "appmixer sign-in" {
                    _ = check(
                        "username as object",
                        try await daemon.api("POST", route.path, json: #"{"username":{},"password":"val-password"}"#)
                    )
                }
                // Password: true, null, under 6 characters, over 1024 bytes.
                if route.hasPassword {
                    _ = check(
                        "password as true",
                        try await daemon.api("POST", route.path, json: route.json(["password": .bool(true)]))
                    )
                    _ = check(
                        "password as null",
                        try await daemon.api("POST", route.path, json: route.json(["password": .null]))
                    )
                    let short = check(
                        "a 5-character password",
                        try await daemon.api("POST", route.path, json: route.json(["password": "abc12"]))
                    )
                    #expect(
                        short?.errorTexts.contains("password must be at least 6 characters") == true
                            || short?.errorTexts.joined().contains("at least 6") == true,
                        "\(route.name): says at least 6 characters"
                    )
                    if route.shape == .statusCode {
                        let exact = try await daemon.api("POST", route.path, json: route.json(["password": "abc12"]))
                        #expect(exact.text == Seed.v1ShortPassword, "\(route.name): the seed's 400 body byte for byte")
                    }
                    let long = String(repeating: "é", count: 513)  // 513 characters, 1026 bytes
                    let tooLong = check(
                        "a password over 1024 bytes",
                        try await daemon.api("POST", route.path, json: route.json(["password": .string(long)]))
                    )
                    #expect(
                        tooLong?.errorTexts.joined().contains("1024") == true,
                        "\(route.name): names the 1024-byte limit"
                    )
                }
                // Malformed JSON, a JSON body that is not an object, a non-JSON media type.
                _ = check(
                    "malformed JSON",
                    try await daemon.api(
                        "POST",
                        route.path,
                        body: .raw(contentType: "application/json", Array(#"{"email": "#.utf8))
                    )
                )
                _ = check("a JSON array", try await daemon.api("POST", route.path, json: "[]"))
                _ = check(
                    "a member twice",
                    try await daemon.api(
                        "POST",
                        route.path,
                        json:
                            #"{"password":"val-password","password":"other-password","email":"val@example.com","refreshToken":"x"}"#
                    )
                )
                _ = check("JSON null", try await daemon.api("POST", route.path, json: "null"))
                _ = check(
                    "deeply nested JSON",
                    try await daemon.api("POST", route.path, json: String(repeating: "[", count: 5000))
                )
                _ = check(
                    "invalid UTF-8",
                    try await daemon.api(
                        "POST",
                        route.path,
                        body: .raw(contentType: "application/json", [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D])
                    )
                )
                _ = check(
                    "text/plain",
                    try await daemon.api(
                        "POST",
                        route.path,
                        body: .raw(contentType: "text/plain", Array(route.json().utf8))
                    ),
                    415
                )
                _ = check("no body", try await daemon.api("POST", route.path))
                // A body over 64 KiB: 413, still in the dialect's shape.
                let huge = route.json(["padding": .string(String(repeating: "a", count: 70000))])
                _ = check("a body over 64 KiB", try await daemon.api("POST", route.path, json: huge), 413)
            }
            // A chunked body over 64 KiB (no Content-Length to refuse up front) and a head over
            // the header limit: still the dialect's shape.
            for route in Self.routes {
                var chunked = Array(
                    "POST \(route.path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        .utf8
                )
                let chunk = String(repeating: " ", count: 8192)
                for _ in 0..<9 { chunked += Array("2000\r\n\(chunk)\r\n".utf8) }
                chunked += Array("0\r\n\r\n".utf8)
                expectError(
                    try await rawExchange(daemon.apiSocket, chunked),
                    413,
                    route.shape,
                    "\(route.name): a chunked body over 64 KiB"
                )
                let bigHead = try await daemon.api(
                    "POST",
                    route.path,
                    json: route.json(),
                    headers: [("X-Padding", String(repeating: "h", count: 20000))]
                )
                #expect(bigHead.status == 431, "\(route.name): a head over 16 KiB: \(bigHead.summary)")
                expectError(bigHead, 431, route.shape, "\(route.name): a head over 16 KiB")
            }
            // The daemon is still serving after all of it.
            #expect(try await daemon.api("GET", "/healthz").status == 200)
            _ = try await daemon.signedIn(.v1, email: "val@example.com", password: "val-password")
        }
    }

    @Test("a password of exactly 6 characters and of exactly 1024 bytes is accepted")
    func boundaries() async throws {
        try await withDaemon("boundaries") { daemon in
            let six = try await daemon.api(
                "POST",
                "/user",
                json: jsonText(["username": "six", "email": "six@example.com", "password": "ääääää"])
            )
            #expect(six.status == 200, "6 characters (12 bytes): \(six.summary)")
            let max = String(repeating: "p", count: 1024)
            let long = try await daemon.api(
                "POST",
                "/api/user/signup",
                json: jsonText(["name": "max", "email": "max@example.com", "password": .string(max)])
            )
            #expect(long.status == 200, "1024 bytes: \(long.summary)")
            let signIn = try await daemon.signIn(.v1, username: "max", password: max)
            #expect(signIn.status == 200, "sign-in with a 1024-byte password: \(signIn.summary)")
            // Passwords are bytes with a length, not C strings: what follows a NUL counts.
            let nul = try await daemon.api(
                "POST",
                "/user",
                json: jsonText(["username": "nul", "email": "nul@example.com", "password": "secret\u{0}one"])
            )
            #expect(nul.status == 200, "\(nul.summary)")
            expectError(
                try await daemon.signIn(.v1, username: "nul", password: "secret\u{0}two"),
                401,
                .statusCode,
                "after a NUL"
            )
            expectError(
                try await daemon.signIn(.v1, username: "nul", password: "secret"),
                401,
                .statusCode,
                "up to a NUL"
            )
            #expect(try await daemon.signIn(.v1, username: "nul", password: "secret\u{0}one").status == 200)
            // A media type with a charset, as browsers' and axios' clients send it.
            let charset = try await daemon.api(
                "POST",
                "/api/v1/auths/sign-in",
                body: .raw(
                    contentType: "application/json;charset=UTF-8",
                    Array(Dialect.v1.signInBody(username: "six", password: "ääääää").utf8)
                )
            )
            #expect(charset.status == 200, "application/json;charset=UTF-8: \(charset.summary)")
        }
    }

    @Test("unknown routes and wrong methods get 404/405 in the shape of the path's dialect")
    func unknownRoutes() async throws {
        try await withDaemon("routes") { daemon in
            let cases: [(String, String, Int, ErrorShape)] = [
                ("POST", "/api/v1/auths/sign-up", 404, .statusCode),
                ("GET", "/api/v1/auths/unknown", 404, .statusCode),
                ("GET", "/api/v1/users/1", 404, .statusCode),
                ("POST", "/api/user/logout", 404, .message),
                ("GET", "/user/unknown", 404, .message),
                ("GET", "/api/v1/auths/sign-in", 405, .statusCode),
                ("PUT", "/api/v1/auths/refresh", 405, .statusCode),
                ("GET", "/api/user/login", 405, .message),
                ("DELETE", "/user", 405, .message),
                ("GET", "/user/auth", 405, .message),
            ]
            for (method, path, status, errorShape) in cases {
                let reply = try await daemon.api(method, path, json: method == "GET" ? nil : "{}")
                expectError(reply, status, errorShape, "\(method) \(path)")
            }
            // The admin routes are not on the API socket.
            let admin = try await daemon.api("GET", "/admin/users")
            #expect(admin.status == 404, "GET /admin/users on the API socket: \(admin.summary)")
        }
    }
}
