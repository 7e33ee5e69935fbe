import CodedErrors
import JOSE
import Testing
import TokenCrypto
import TokenService
import TokenStore
import TokenTestSupport

/// `issue(_:)` for `POST /admin/tokens` (DESIGN §3, §5.2): what it refuses and what the
/// signed token carries.
@Suite("Issuance")
struct IssuanceTests {
    @Test("an empty or oversized subject is refused with a message saying what is accepted")
    func badSubject() async throws {
        let harness = try await Harness.make()
        for subject in ["", String(repeating: "s", count: 257)] {
            let error = await #expect(throws: ServiceError.self) { try await harness.issue(subject) }
            #expect(error?.code == .invalidRequest)
            #expect(error?.reason.contains("sub") == true)
        }
        _ = try await harness.issue(String(repeating: "s", count: 256))
    }

    @Test("a policy longer than the longest lifetime this tokend issues is refused")
    func policyTooLong() async throws {
        let harness = try await Harness.make(.test(maxTokenLifetime: 3600))
        let error = await #expect(throws: ServiceError.self) { try await harness.issue(policy: .oneDay) }
        #expect(error?.code == .invalidRequest)
        #expect(error?.reason.contains("24h") == true, "\(error?.reason ?? "")")
        #expect(error?.reason.contains("1h") == true, "\(error?.reason ?? "")")
        _ = try await harness.issue(policy: .oneHour)
        let custom: LifetimePolicy = try #require(LifetimePolicy(parsing: "15m"))
        _ = try await harness.issue(policy: custom)
    }

    @Test(
        "the token carries the RFC 9068 header and claims: iss, sub, aud, iat = nbf, exp = iat + policy, jti, scope, client_id"
    )
    func claims() async throws {
        let harness = try await Harness.make()
        harness.clock.advance(by: 0.75)
        let issued = try await harness.issue("user-42", scope: ["orders:read", "orders:write"], clientID: "cli-7")
        let header = try Compact.header(issued.accessToken)
        #expect(header["alg"]?.stringValue == "ES256")
        #expect(header["kid"]?.stringValue == harness.currentKid)
        #expect(header["typ"]?.stringValue == "at+jwt")

        let claims = try Compact.claims(issued.accessToken)
        let iat = Int64(StoreFixtures.now)
        #expect(claims["iss"]?.stringValue == Harness.issuer)
        #expect(claims["sub"]?.stringValue == "user-42")
        #expect(claims["aud"]?.stringValue == Harness.audience)
        #expect(claims["iat"]?.numberValue?.int64Value == iat)
        #expect(claims["nbf"]?.numberValue?.int64Value == iat)
        #expect(claims["exp"]?.numberValue?.int64Value == iat + 3600)
        #expect(claims["scope"]?.stringValue == "orders:read orders:write")
        #expect(claims["client_id"]?.stringValue == "cli-7")
        #expect(claims["sid"] == nil)
        let jti = try #require(claims["jti"]?.stringValue)
        #expect(jti == issued.jti)
        #expect(try Base64URL.decode(jti).count >= 16)
        #expect(jti.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })

        #expect(issued.tokenType == "Bearer")
        #expect(issued.scope == "orders:read orders:write")
        #expect(issued.expiresAt == Double(iat + 3600))
        #expect(issued.refreshToken == nil)
        let body = issued.oauthBody
        #expect(body["access_token"]?.stringValue == issued.accessToken)
        #expect(body["token_type"]?.stringValue == "Bearer")
        #expect(body["scope"]?.stringValue == "orders:read orders:write")
        #expect(body["refresh_token"] == nil)
        #expect(body["expires_in"]?.numberValue != nil)
    }

    @Test("a named or custom policy sets exp = iat + its length", arguments: ["1h", "24h", "30d", "15m", "7d"])
    func policyLength(name: String) async throws {
        let harness = try await Harness.make()
        let policy = try #require(LifetimePolicy(parsing: name))
        let issued = try await harness.issue(policy: policy)
        let claims = try Compact.claims(issued.accessToken)
        let iat = try #require(claims["iat"]?.numberValue?.int64Value)
        #expect(claims["exp"]?.numberValue?.int64Value == iat + policy.seconds)
        #expect(issued.expiresIn == Int(policy.seconds))
        #expect(harness.service.introspect(issued.accessToken).isActive)
    }

    @Test("every jti is fresh")
    func uniqueJTI() async throws {
        let harness = try await Harness.make()
        var seen: Set<String> = []
        for _ in 0..<50 { seen.insert(try await harness.issue().jti) }
        #expect(seen.count == 50)
    }

    @Test("no aud claim when no audience is configured")
    func noAudience() async throws {
        let harness = try await Harness.make(.test(audience: nil))
        let issued = try await harness.issue()
        #expect(try Compact.claims(issued.accessToken)["aud"] == nil)
        #expect(harness.service.introspect(issued.accessToken).activeToken?.audience == nil)
    }

    @Test("a dialect's claims are carried and its scope array wins; introspection still answers scope as a string")
    func dialectClaims() async throws {
        let harness = try await Harness.make()
        let extra = JSONObject([
            ("scope", .array(["flows:read", "flows:write"])), ("id", "u-9"),
            // Claims tokend owns cannot be replaced by a dialect.
            ("iss", "https://evil.test"), ("exp", .number(JSONNumber(Int64(9_999_999_999)))), ("jti", "fixed"),
            ("iat", .number(JSONNumber(Int64(1)))), ("nbf", .number(JSONNumber(Int64(1)))), ("sid", "stolen"),
        ])
        let issued = try await harness.service.issue(
            IssueRequest(
                subject: "user-9",
                scope: ["flows:read", "flows:write"],
                extraClaims: extra,
                dialect: "appmixer"
            )
        )
        let claims = try Compact.claims(issued.accessToken)
        #expect(claims["scope"] == .array(["flows:read", "flows:write"]))
        #expect(claims["id"]?.stringValue == "u-9")
        #expect(claims["iss"]?.stringValue == Harness.issuer)
        #expect(claims["exp"]?.numberValue?.int64Value == Int64(StoreFixtures.now) + 3600)
        #expect(claims["jti"]?.stringValue == issued.jti)
        #expect(claims["iat"]?.numberValue?.int64Value == Int64(StoreFixtures.now))
        #expect(claims["sid"] == nil)
        let token = try #require(harness.service.introspect(issued.accessToken).activeToken)
        #expect(token.scope == "flows:read flows:write")
    }

    @Test("sid appears only with a refresh token, naming its family")
    func sidWithRefresh() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue(refresh: true)
        let refresh = try issued.requiredRefreshToken()
        // 32 random bytes after 6 of the issue time.
        #expect(try Base64URL.decode(refresh).count == 38)
        let family = try issued.requiredFamilyID()
        #expect(try Compact.claims(issued.accessToken)["sid"]?.stringValue == family)
        #expect(issued.oauthBody["refresh_token"]?.stringValue == refresh)
        let stored = try #require(await harness.store.refreshFamily(id: family))
        #expect(stored.subject == "user-1")
        #expect(stored.scope == "read write")
        #expect(stored.lastAccessJTI == issued.jti)
        #expect(stored.expiresAt == StoreFixtures.now + 2_592_000)
        // The store never holds the refresh token itself.
        #expect(!String(describing: stored).contains(refresh))
    }
}
