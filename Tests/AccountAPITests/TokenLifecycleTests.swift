import JOSE
import Testing
import TokenTestSupport

/// Tokens of each dialect: the seed's claim names and lifetime as jwt-inspect decodes them,
/// active at introspection until the user is deactivated through the admin socket, then
/// inactive at once; sign-in refused with 403 in each dialect's shape, v1 refresh refused.
@Suite("Dialect tokens and deactivation", .timeLimit(.minutes(2)))
struct TokenLifecycleTests {
    /// The claims each dialect's consumers read: the seed's sample tokens' claims (appmixer,
    /// classic) and DESIGN §5.3's for v1, with their JSON types.
    static func expectedClaims(_ dialect: Dialect) throws -> [String: String] {
        switch dialect {
        case .appmixer: try payloadClaims(Seed.appmixerToken).reduce(into: [:]) { $0[$1.key] = $1.value.typeName }
        case .classic: try payloadClaims(Seed.classicToken).reduce(into: [:]) { $0[$1.key] = $1.value.typeName }
        case .v1:
            [
                "id": "number", "username": "string", "email": "string", "rol": "string", "iat": "number",
                "exp": "number",
            ]
        }
    }

    @Test("the seed's sample tokens have the lifetimes the dialects use")
    func seedLifetimes() throws {
        for (token, dialect) in [(Seed.appmixerToken, Dialect.appmixer), (Seed.classicToken, .classic)] {
            let claims = try payloadClaims(token)
            let lifetime =
                try #require(claims["exp"]?.numberValue?.int64Value)
                - (try #require(claims["iat"]?.numberValue?.int64Value))
            #expect(lifetime == dialect.lifetime.seconds, "\(dialect)")
        }
    }

    @Test("claims, lifetimes, introspection, deactivation and reactivation in every dialect")
    func lifecycle() async throws {
        try await withDaemon("lifecycle") { daemon in
            let user = try await daemon.createUser(
                "alice",
                "alice@example.com",
                "alice-password",
                extra: ["role": "author"]
            )
            var tokens: [Dialect: String] = [:]
            var bodies: [Dialect: JSONValue] = [:]
            for dialect in Dialect.allCases {
                let body = try await daemon.signedIn(
                    dialect,
                    email: "alice@example.com",
                    username: dialect == .appmixer ? "alice" : nil,
                    password: "alice-password"
                )
                bodies[dialect] = body
                tokens[dialect] = dialect.accessToken(body)
            }
            let v1Refresh = try #require(bodies[.v1]?["refreshToken"]?.stringValue)

            for dialect in Dialect.allCases {
                let token = try #require(tokens[dialect])
                let (exit, report) = try await daemon.inspect(token)
                #expect(exit == .exited(0), "\(dialect): jwt-inspect verdict \(report["verdict"]?.stringValue ?? "?")")
                #expect(report["signature"]?.stringValue == "verified", "\(dialect)")
                #expect(report["fits_policy"]?.stringValue == dialect.lifetime.policy, "\(dialect): fits_policy")
                #expect(
                    report["lifetime_seconds"]?.numberValue?.int64Value == dialect.lifetime.seconds,
                    "\(dialect): lifetime"
                )
                let claims = try #require(
                    report["claims"]?.objectValue,
                    "\(dialect): no claims in jwt-inspect's report"
                )
                for (name, type) in try Self.expectedClaims(dialect) {
                    #expect(claims[name]?.typeName == type, "\(dialect): claim \(name) is a \(type)")
                }
                // DESIGN §3: the standard claims too, sub being the public id.
                #expect(claims["sub"]?.stringValue == user.id, "\(dialect): sub")
                for name in ["iss", "jti", "nbf"] { #expect(claims[name] != nil, "\(dialect): claim \(name)") }
                switch dialect {
                case .appmixer:
                    #expect(claims["id"]?.stringValue == user.id)
                    #expect(claims["scope"] == .array(["user"]), "appmixer scope is the array [\"user\"]")
                case .classic:
                    #expect(claims["userId"]?.stringValue == user.id)
                    #expect(claims["userName"]?.stringValue == "alice")
                    #expect(claims["email"]?.stringValue == "alice@example.com")
                case .v1:
                    #expect(claims["id"]?.numberValue?.int64Value == user.numericID)
                    #expect(claims["username"]?.stringValue == "alice")
                    #expect(claims["email"]?.stringValue == "alice@example.com")
                    #expect(claims["rol"]?.stringValue == "author")
                }
                #expect(try await daemon.isActive(token), "\(dialect): introspects active")
            }
            let appmixerToken = try #require(tokens[.appmixer])
            #expect(
                try await daemon.api("GET", "/user", headers: [("Authorization", "Bearer \(appmixerToken)")]).status
                    == 200
            )

            // Deactivate: every token inactive at once, sign-in 403 in each shape, refresh refused.
            let deactivated = try await daemon.admin("POST", "/admin/users/\(user.id)/deactivate")
            #expect(deactivated.status == 200, "\(deactivated.summary)")
            #expect(deactivated.json?["status"]?.stringValue == "inactive")
            for dialect in Dialect.allCases {
                let active = try await daemon.isActive(try #require(tokens[dialect]))
                #expect(!active, "\(dialect): inactive right after deactivation")
            }
            let info = try await daemon.api("GET", "/user", headers: [("Authorization", "Bearer \(appmixerToken)")])
            expectError(info, 401, .message, "GET /user of a deactivated user")
            for dialect in Dialect.allCases {
                let reply = try await daemon.signIn(
                    dialect,
                    email: "alice@example.com",
                    username: dialect == .appmixer ? "alice" : nil,
                    password: "alice-password"
                )
                let body = expectError(reply, 403, dialect.errorShape, "\(dialect): inactive sign-in")
                if dialect == .v1 { #expect(reply.text == Seed.v1Inactive) }
                #expect(
                    body?.errorTexts.first?.contains("inactive") == true,
                    "\(dialect): says the account is inactive"
                )
            }
            // A wrong password for an inactive account is still just 401 (nothing revealed).
            expectError(
                try await daemon.signIn(.v1, email: "alice@example.com", password: "wrong-password"),
                401,
                .statusCode
            )
            let refused = try await daemon.v1Refresh(v1Refresh)
            expectError(refused, refused.status, .statusCode, "v1 refresh of a deactivated user")
            #expect([401, 403].contains(refused.status), "v1 refresh of a deactivated user: \(refused.summary)")
            #expect(!(refused.json?["accessToken"] != nil), "no token for a deactivated user")

            // Reactivate: sign-in works again with fresh tokens; the old ones stay dead.
            let activated = try await daemon.admin("POST", "/admin/users/\(user.numericID)/activate")
            #expect(activated.status == 200, "\(activated.summary)")
            #expect(activated.json?["status"]?.stringValue == "active")
            for dialect in Dialect.allCases {
                let body = try await daemon.signedIn(dialect, email: "alice@example.com", password: "alice-password")
                let fresh = try #require(dialect.accessToken(body))
                #expect(try await daemon.isActive(fresh), "\(dialect): a token issued after reactivation is active")
                #expect(
                    !(try await daemon.isActive(try #require(tokens[dialect]))),
                    "\(dialect): an old token stays inactive"
                )
            }
        }
    }
}
