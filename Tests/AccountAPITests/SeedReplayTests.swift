import JOSE
import Testing
import TokenTestSupport

/// Every request example of the seed documents, replayed over the socket (with `curl
/// --unix-socket` and the host `localhost`, as the issue's acceptance list says), the answers
/// compared with the documents' shapes: member names, nesting, JSON types, status codes, and
/// the documented error bodies byte for byte.
@Suite("Seed documents replayed", .timeLimit(.minutes(2)))
struct SeedReplayTests {
    @Test("appmixer 000–002: POST /user, POST /user/auth, GET /user")
    func appmixer() async throws {
        try await withDaemon("seed-appmixer") { daemon in
            // POST /user — the document's curl example.
            let created = try await daemon.curl([
                "-XPOST", "https://api.appmixer.com/user", "-H", "Content-type: application/json", "-d",
                #"{ "username": "abc@example.com", "email": "abc@example.com", "password": "abc321" }"#,
            ])
            expectShape(created, 200, like: try seedJSON(Seed.appmixerCreate), allow: Seed.appmixerAllow)
            let createdBody = try json(created)
            // 002 shows only the token: every member it shows is there, with its type.
            for member in try seedJSON(Seed.appmixerCreate002).objectValue!.keys {
                #expect(createdBody[member]?.typeName == "string", "002's \(member)")
            }
            let id = createdBody["user"]?["id"]?.stringValue
            #expect(isHex24(id), "user.id is 24 lowercase hex characters")
            #expect(createdBody["user"]?["username"]?.stringValue == "abc@example.com")
            #expect(createdBody["user"]?["email"]?.stringValue == "abc@example.com")
            #expect(createdBody["user"]?["isActive"]?.boolValue == true, "a new user is active")
            #expect(createdBody["user"]?["vendor"] == .null)
            #expect(createdBody["user"]?["plan"]?.stringValue?.isEmpty == false)

            // POST /user/auth with username — the document's curl example.
            let signedIn = try await daemon.curl([
                "-XPOST", "https://api.appmixer.com/user/auth", "-H", "Content-type: application/json", "-d",
                #"{ "username": "abc@example.com", "password": "abc321" }"#,
            ])
            expectShape(signedIn, 200, like: try seedJSON(Seed.appmixerSignIn), allow: Seed.appmixerAllow)
            let signInBody = try json(signedIn)
            #expect(signInBody["user"]?["id"]?.stringValue == id)
            // 002's revision of the example: every member it shows is there with its type.
            let example002 = try seedJSON(Seed.appmixerSignIn002)
            for member in example002["user"]!.objectValue!.keys {
                #expect(
                    signInBody["user"]?[member]?.typeName == example002["user"]?[member]?.typeName,
                    "002's user.\(member)"
                )
            }

            // … and with email, which the document allows as well.
            let byEmail = try await daemon.curl([
                "-XPOST", "https://api.appmixer.com/user/auth", "-H", "Content-type: application/json", "-d",
                #"{ "email": "abc@example.com", "password": "abc321" }"#,
            ])
            expectShape(byEmail, 200, like: try seedJSON(Seed.appmixerSignIn), allow: Seed.appmixerAllow)

            // GET /user with the token — the document's curl example.
            let token = try #require(signInBody["token"]?.stringValue)
            let info = try await daemon.curl(["https://api.appmixer.com/user", "-H", "Authorization: Bearer \(token)"])
            expectShape(info, 200, like: try seedJSON(Seed.appmixerUser))
            let infoBody = try json(info)
            #expect(infoBody["id"]?.stringValue == id)
            #expect(infoBody["scope"] == .array(["user"]))
            #expect(infoBody["isActive"]?.boolValue == true)
            #expect(infoBody["username"]?.stringValue == "abc@example.com")

            // GET /user without a token, or with a bad one: 401 in the dialect's shape.
            expectError(
                try await daemon.curl(["https://api.appmixer.com/user"]),
                401,
                .message,
                "GET /user without a token"
            )
            expectError(
                try await daemon.curl(["https://api.appmixer.com/user", "-H", "Authorization: Bearer not-a-token"]),
                401,
                .message,
                "GET /user with a bad token"
            )

            // The 002 sample has no `vendor`; a sign-up with the later sample's create answer.
            let second = try await daemon.curl([
                "-XPOST", "https://api.appmixer.com/user", "-H", "Content-type: application/json", "-d",
                #"{ "username": "abc", "email": "abc2@example.com", "password": "abc321" }"#,
            ])
            expectShape(second, 200, like: try seedJSON(Seed.appmixerCreate), allow: Seed.appmixerAllow)
            #expect(try json(second)["user"]?["username"]?.stringValue == "abc")
        }
    }

    @Test("classic 003: POST /api/user/signup, POST /api/user/login")
    func classic() async throws {
        try await withDaemon("seed-classic") { daemon in
            let example = try seedJSON(Seed.classic)
            let signedUp = try await daemon.curl([
                "-XPOST", "https://api.example.com/api/user/signup", "-H", "Content-Type: application/json", "-d",
                #"{"name": "admin1", "email": "admin1@user.com", "password": "admin1-secret"}"#,
            ])
            expectShape(signedUp, 200, like: example)
            let signUpBody = try json(signedUp)
            let id = signUpBody["userId"]?.stringValue
            #expect(isHex24(id), "userId is 24 lowercase hex characters")
            #expect(signUpBody["userName"]?.stringValue == "admin1", "name is the username")
            #expect(signUpBody["email"]?.stringValue == "admin1@user.com")

            let loggedIn = try await daemon.curl([
                "-XPOST", "https://api.example.com/api/user/login", "-H", "Content-Type: application/json", "-d",
                #"{"email": "admin1@user.com", "password": "admin1-secret"}"#,
            ])
            expectShape(loggedIn, 200, like: example)
            let loginBody = try json(loggedIn)
            #expect(loginBody["userId"]?.stringValue == id)
            #expect(loginBody["userName"]?.stringValue == "admin1")

            // One user table for all dialects: the classic user signs in through appmixer too.
            let appmixer = try await daemon.signIn(.appmixer, username: "admin1", password: "admin1-secret")
            expectShape(appmixer, 200, like: try seedJSON(Seed.appmixerSignIn), allow: Seed.appmixerAllow)
            #expect(try json(appmixer)["user"]?["id"]?.stringValue == id)

            // Errors are `{"error": …}` with the right status.
            let wrong = try await daemon.signIn(.classic, email: "admin1@user.com", password: "not-the-password")
            expectError(wrong, 401, .message, "wrong password")
            let taken = try await daemon.api(
                "POST",
                "/api/user/signup",
                json: #"{"name":"admin1","email":"other@user.com","password":"admin1-secret"}"#
            )
            expectError(taken, 409, .message, "taken username")
        }
    }

    @Test("v1 004: POST /api/v1/auths/sign-in with both, email only, username only; 400/401/403; refresh")
    func v1() async throws {
        try await withDaemon("seed-v1") { daemon in
            let user = try await daemon.createUser(
                "johndoe",
                "john@example.com",
                "password123",
                extra: ["firstName": "John", "lastName": "Doe", "role": "editor"]
            )
            let example = try seedJSON(Seed.v1SignIn)
            // The document's curl example (both identifiers), then its two usages.
            let both = try await daemon.curl([
                "--request", "POST", "--url", "https://api.example.com/api/v1/auths/sign-in", "--header",
                "Content-Type: application/json", "--data",
                "\n{\n\"email\": \"john@example.com\",\n\"username\": \"johndoe\",\n\"password\": \"password123\"\n}\n",
            ])
            expectShape(both, 200, like: example, allow: Seed.v1Allow)
            let byEmail = try await daemon.signIn(.v1, email: "john@example.com", password: "password123")
            expectShape(byEmail, 200, like: example, allow: Seed.v1Allow)
            let byUsername = try await daemon.signIn(.v1, username: "johndoe", password: "password123")
            expectShape(byUsername, 200, like: example, allow: Seed.v1Allow)

            let body = try json(byUsername)
            let v1User = try #require(body["user"])
            let id = v1User["id"]?.numberValue
            #expect(id?.int64Value == user.numericID, "user.id is the numeric id, an integer")
            #expect(v1User["username"]?.stringValue == "johndoe")
            #expect(v1User["email"]?.stringValue == "john@example.com")
            #expect(v1User["firstName"]?.stringValue == "John")
            #expect(v1User["lastName"]?.stringValue == "Doe")
            #expect(v1User["rol"]?.stringValue == "editor", "role is `rol` (the document's spelling)")
            #expect(v1User["status"]?.stringValue == "active")
            #expect(isISO8601(v1User["lastLogin"]?.stringValue), "lastLogin is a date-time string")
            #expect(isISO8601(v1User["createdAt"]?.stringValue), "createdAt is a date-time string")
            #expect(body["refreshToken"]?.stringValue?.isEmpty == false)

            // The documented errors, byte for byte.
            expectBody(
                try await daemon.signIn(.v1, email: "john@example.com", password: "password124"),
                401,
                Seed.v1Unauthorized
            )
            expectBody(
                try await daemon.signIn(.v1, email: "nobody@example.com", password: "password123"),
                401,
                Seed.v1Unauthorized
            )
            expectBody(
                try await daemon.signIn(.v1, email: "john@example.com", password: "pass"),
                400,
                Seed.v1ShortPassword
            )
            let noIdentifier = try await daemon.api(
                "POST",
                "/api/v1/auths/sign-in",
                json: #"{"password":"password123"}"#
            )
            let noIdentifierBody = expectError(noIdentifier, 400, .statusCode, "no identifier")
            #expect(noIdentifierBody?["message"]?.stringValue == "Validation failed")
            #expect(noIdentifierBody?.errorTexts == [Seed.v1NoIdentifier])

            // Refresh: the same shape as sign-in.
            let refreshToken = try #require(body["refreshToken"]?.stringValue)
            let refreshed = try await daemon.v1Refresh(refreshToken)
            expectShape(refreshed, 200, like: example, allow: Seed.v1Allow)
            #expect(try json(refreshed)["user"]?["id"]?.numberValue?.int64Value == user.numericID)

            // 403 for an inactive account, byte for byte.
            let deactivated = try await daemon.admin("POST", "/admin/users/\(user.id)/deactivate")
            #expect(deactivated.status == 200, "\(deactivated.summary)")
            expectBody(try await daemon.signIn(.v1, username: "johndoe", password: "password123"), 403, Seed.v1Inactive)
        }
    }
}
