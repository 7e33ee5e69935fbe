import CodedErrors
import JOSE
import Testing
import TokenCrypto
import TokenService
import TokenStore
import TokenTestSupport

/// RFC 7662 introspection (DESIGN §3, §5.1, §9): what is active, what is not, and that the
/// verified-token cache never outlives expiry, revocation or a key's revocation.
@Suite("Introspection")
struct IntrospectionTests {
    @Test("an issued token is active with the RFC 7662 members")
    func activeToken() async throws {
        let harness = try await Harness.make()
        let issuedAt = Double(Int64(harness.clock.now))
        harness.clock.advance(by: 0.4)
        let issued = try await harness.issue("user-42", scope: ["read", "write"], clientID: "cli-7")
        #expect(issued.tokenType == "Bearer")
        let token = try #require(harness.service.introspect(issued.accessToken).activeToken)
        #expect(token.subject == "user-42")
        #expect(token.scope == "read write")
        #expect(token.clientID == "cli-7")
        #expect(token.issuer == Harness.issuer)
        #expect(token.audience == [Harness.audience])
        #expect(token.iat == issuedAt)
        #expect(token.nbf == issuedAt)
        #expect(token.exp == issuedAt + 3600)
        #expect(token.jti == issued.jti)
        #expect(token.kid == harness.currentKid)
        #expect(token.familyID == nil)
    }

    @Test("a token expires at exp plus the leeway, whether cached or seen for the first time")
    func expiry() async throws {
        let harness = try await Harness.make()
        let cached = try await harness.issue()
        let fresh = try await harness.issue()
        #expect(harness.service.introspect(cached.accessToken).isActive)

        harness.clock.set(cached.expiresAt + 30 - 0.5)
        #expect(harness.service.introspect(cached.accessToken).isActive, "inside the leeway")
        harness.clock.set(cached.expiresAt + 30)
        #expect(harness.service.introspect(cached.accessToken).inactiveReason == .expired)
        #expect(harness.service.introspect(fresh.accessToken).inactiveReason == .expired)
    }

    @Test("a token of another tokend (another issuer and key) is inactive")
    func foreignToken() async throws {
        let harness = try await Harness.make()
        let other = try await Harness.make(.test(issuer: "https://elsewhere.test"))
        let foreign = try await other.issue()
        #expect(other.service.introspect(foreign.accessToken).isActive)
        let reason = harness.service.introspect(foreign.accessToken).inactiveReason
        #expect(reason != nil && reason != .malformed)

        // Same issuer, another key directory: still unknown here.
        let twin = try await Harness.make()
        #expect(harness.service.introspect(try await twin.issue().accessToken).inactiveReason != nil)
    }

    @Test("a token signed with our own key but naming another issuer or audience is inactive")
    func wrongIssuerOrAudience() async throws {
        let harness = try await Harness.make()
        #expect(harness.service.introspect(try harness.sign(harness.claims())).isActive, "the control token")

        var claims = harness.claims()
        claims["iss"] = "https://elsewhere.test"
        #expect(harness.service.introspect(try harness.sign(claims)).inactiveReason != nil)

        claims = harness.claims()
        claims["aud"] = "billing-api"
        #expect(harness.service.introspect(try harness.sign(claims)).inactiveReason != nil)
    }

    @Test("a good signature with a typ other than at+jwt is inactive (RFC 9068)", arguments: ["JWT", "id+jwt", nil])
    func wrongType(type: String?) async throws {
        let harness = try await Harness.make()
        let claims = harness.claims()
        #expect(harness.service.introspect(try harness.sign(claims, type: "at+jwt")).isActive, "the control token")
        #expect(harness.service.introspect(try harness.sign(claims, type: type)).inactiveReason != nil)
    }

    @Test(
        "garbage is inactive, never an error",
        arguments: ["", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJub25lIn0.e30.", "Bearer x.y.z"]
    )
    func garbage(text: String) async throws {
        let harness = try await Harness.make()
        #expect(harness.service.introspect(text).inactiveReason != nil)
    }

    @Test("a well-signed token over the 16 KiB limit is inactive")
    func oversized() async throws {
        let harness = try await Harness.make()
        var claims = harness.claims()
        claims["pad"] = .string(String(repeating: "x", count: 8 * 1024))
        #expect(harness.service.introspect(try harness.sign(claims)).isActive, "the control token")
        claims["pad"] = .string(String(repeating: "x", count: 17 * 1024))
        #expect(harness.service.introspect(try harness.sign(claims)).inactiveReason == .malformed)
    }

    @Test("a well-signed token without exp, sub, jti or iat is inactive", arguments: ["exp", "sub", "jti", "iat"])
    func missingClaim(name: String) async throws {
        let harness = try await Harness.make()
        let claims = JSONObject(harness.claims().filter { $0.key != name })
        #expect(harness.service.introspect(try harness.sign(claims)).inactiveReason != nil)
    }

    @Test("a well-signed token without nbf is active; one issued or valid only in the future is not yet valid")
    func timeClaims() async throws {
        let harness = try await Harness.make()
        let now = Int64(harness.clock.now)
        #expect(
            harness.service.introspect(try harness.sign(JSONObject(harness.claims().filter { $0.key != "nbf" })))
                .isActive
        )
        var claims = harness.claims()
        claims["nbf"] = .number(JSONNumber(now + 120))
        #expect(harness.service.introspect(try harness.sign(claims)).inactiveReason == .notYetValid)
        claims = harness.claims()
        claims["iat"] = .number(JSONNumber(now + 120))
        #expect(harness.service.introspect(try harness.sign(claims)).inactiveReason == .notYetValid)
        // Inside the leeway is fine.
        claims = harness.claims()
        claims["nbf"] = .number(JSONNumber(now + 20))
        #expect(harness.service.introspect(try harness.sign(claims)).isActive)
    }

    @Test("a token with a flipped signature bit or an edited payload is inactive")
    func tampered() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue()
        let parts = Compact.segments(issued.accessToken)
        var signature = try Base64URL.decode(parts[2])
        signature[5] ^= 0x01
        let flipped = "\(parts[0]).\(parts[1]).\(Base64URL.encode(signature))"
        #expect(harness.service.introspect(flipped).inactiveReason != nil)

        var claims = try Compact.claims(issued.accessToken)
        claims["sub"] = "admin"
        let edited = "\(parts[0]).\(Base64URL.encode(JSONValue.object(claims).compactBytes)).\(parts[2])"
        #expect(harness.service.introspect(edited).inactiveReason != nil)
        #expect(harness.service.introspect(issued.accessToken).isActive)
    }

    @Test("after revoke(token:) the token is inactive; other tokens stay active")
    func revokeToken() async throws {
        let harness = try await Harness.make()
        let revoked = try await harness.issue()
        let other = try await harness.issue()
        try await harness.service.revoke(token: revoked.accessToken, hint: "access_token")
        #expect(harness.service.introspect(revoked.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(other.accessToken).isActive)
        // RFC 7009: unknown and foreign tokens are accepted silently.
        try await harness.service.revoke(token: "not-a-token", hint: nil)
        try await harness.service.revoke(token: try await Harness.make().issue().accessToken, hint: nil)
    }

    @Test("logout ends every earlier token of the subject; a token issued right after, in the same second, is active")
    func logout() async throws {
        let harness = try await Harness.make()
        harness.clock.set(StoreFixtures.now + 0.1)
        let first = try await harness.issue("alice")
        let second = try await harness.issue("alice", policy: .oneDay)
        let bob = try await harness.issue("bob")
        harness.clock.set(StoreFixtures.now + 0.5)
        try await harness.service.logout(subject: "alice")

        #expect(harness.service.introspect(first.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(second.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(bob.accessToken).isActive)

        harness.clock.set(StoreFixtures.now + 0.7)
        let after = try await harness.issue("alice")
        let token = try #require(harness.service.introspect(after.accessToken).activeToken)
        #expect(token.iat > StoreFixtures.now + 0.5)
        // The bumped iat still gets the whole lifetime.
        #expect(token.exp - token.iat == 3600)
    }

    @Test("a second logout in the same second also ends the token issued between the two")
    func twoLogoutsInOneSecond() async throws {
        let harness = try await Harness.make()
        harness.clock.set(StoreFixtures.now + 0.2)
        try await harness.service.logout(subject: "alice")
        harness.clock.set(StoreFixtures.now + 0.4)
        let between = try await harness.issue("alice")
        #expect(harness.service.introspect(between.accessToken).isActive)
        harness.clock.set(StoreFixtures.now + 0.6)
        try await harness.service.logout(subject: "alice", reason: "deactivated")
        let result = harness.service.introspect(between.accessToken)
        #expect(result.inactiveReason == .revoked, "\(result)")
    }

    @Test("logout with no leeway: a token issued right after, in the same second, is active at once")
    func logoutWithoutLeeway() async throws {
        let harness = try await Harness.make(.test(leeway: 0))
        harness.clock.set(StoreFixtures.now + 0.5)
        try await harness.service.logout(subject: "alice")
        harness.clock.set(StoreFixtures.now + 0.7)
        let after = try await harness.issue("alice")
        let result = harness.service.introspect(after.accessToken)
        #expect(result.isActive, "\(result)")
        harness.clock.set(StoreFixtures.now + 1)
        #expect(harness.service.introspect(after.accessToken).isActive)
    }

    @Test("revoking a key ends its tokens at once, even cached ones; new tokens carry the promoted key")
    func revokeKey() async throws {
        let harness = try await Harness.make()
        let old = harness.currentKid
        let next = harness.nextKid
        let issued = try await harness.issue()
        #expect(harness.service.introspect(issued.accessToken).isActive)
        #expect(harness.service.introspect(issued.accessToken).isActive)

        let change = try await harness.service.revokeKey(kid: old)
        #expect(change.promoted == next)
        #expect(harness.service.introspect(issued.accessToken).inactiveReason == .keyRevoked)

        let fresh = try await harness.issue()
        #expect(try Compact.header(fresh.accessToken)["kid"]?.stringValue == next)
        #expect(harness.service.introspect(fresh.accessToken).isActive)
        // Unknown kids are refused.
        await #expect(throws: ServiceError.self) { try await harness.service.revokeKey(kid: "no-such-kid") }
    }

    @Test("after rotation the previous key's tokens stay active and new tokens carry the new kid")
    func rotation() async throws {
        let harness = try await Harness.make()
        let old = harness.currentKid
        let next = harness.nextKid
        let before = try await harness.issue()

        let early = await #expect(throws: ServiceError.self) { try await harness.service.rotateKeys(force: false) }
        #expect(early?.code == .rotationTooEarly)

        harness.clock.advance(by: 300)
        let change = try await harness.service.rotateKeys(force: false)
        #expect(change.promoted == next)
        #expect(harness.service.keyList.first { $0.kid == old }?.state == .previous)

        #expect(harness.service.introspect(before.accessToken).activeToken?.kid == old)
        let after = try await harness.issue()
        #expect(try Compact.header(after.accessToken)["kid"]?.stringValue == next)
        #expect(harness.service.introspect(after.accessToken).activeToken?.kid == next)
    }

    @Test("once the previous key is retired, its tokens are inactive")
    func retiredKey() async throws {
        // A 24h token under a 1h access policy: still unexpired when its key is retired early by
        // a configuration whose longest lifetime is shorter than the token's.
        let harness = try await Harness.make(.test(maxTokenLifetime: 3600))
        let old = harness.currentKid
        let token = try harness.sign(harness.claims(lifetime: 86_400))
        #expect(harness.service.introspect(token).isActive)
        harness.clock.advance(by: 300)
        _ = try await harness.service.rotateKeys(force: false)
        harness.clock.advance(by: 3600 + 30)
        let summary = try await harness.service.maintainKeys()
        #expect(summary?.contains(old) == true)
        #expect(harness.service.introspect(token).inactiveReason != nil)
    }

    @Test("a cache hit still re-checks revocation and expiry")
    func cacheRechecks() async throws {
        let harness = try await Harness.make()
        let revoked = try await harness.issue()
        let kept = try await harness.issue()
        for _ in 0..<2 {
            #expect(harness.service.introspect(revoked.accessToken).isActive)
            #expect(harness.service.introspect(kept.accessToken).isActive)
        }
        try await harness.service.revoke(token: revoked.accessToken, hint: nil)
        #expect(harness.service.introspect(revoked.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(kept.accessToken).isActive)

        harness.clock.set(kept.expiresAt + 30)
        #expect(harness.service.introspect(kept.accessToken).inactiveReason == .expired)
    }

    @Test(
        "a hit skips the revocation checks only while nothing was revoked: each kind of revocation still ends a cached token"
    )
    func cachedChecksFollowEveryRevocation() async throws {
        let harness = try await Harness.make()
        let byToken = try await harness.issue("ann")
        let bySubject = try await harness.issue("bea")
        let byFamily = try await harness.issue("cid", refresh: true)
        let bystander = try await harness.issue("dan")
        let all = [byToken, bySubject, byFamily, bystander]
        // Twice each: verified and cached, then a hit that records the checks it passed.
        for _ in 0..<2 { for issued in all { #expect(harness.service.introspect(issued.accessToken).isActive) } }

        try await harness.service.revoke(token: byToken.accessToken, hint: nil)
        #expect(harness.service.introspect(byToken.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(bystander.accessToken).isActive)

        harness.clock.advance(by: 1)
        try await harness.service.logout(subject: "bea")
        #expect(harness.service.introspect(bySubject.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(bystander.accessToken).isActive)

        try await harness.service.revoke(token: try byFamily.requiredRefreshToken(), hint: "refresh_token")
        #expect(harness.service.introspect(byFamily.accessToken).inactiveReason == .revoked)
        #expect(harness.service.introspect(bystander.accessToken).isActive)

        // A key change (a new keyring snapshot) is seen too.
        _ = try await harness.service.revokeKey(kid: harness.currentKid)
        #expect(harness.service.introspect(bystander.accessToken).inactiveReason == .keyRevoked)
    }

    @Test("revocations survive a restart: revoked tokens, signed-out subjects, ended families and revoked keys")
    func restart() async throws {
        let harness = try await Harness.make()
        let oldKid = harness.currentKid
        let keyRevoked = try await harness.issue("dave")
        _ = try await harness.service.revokeKey(kid: oldKid)

        let revoked = try await harness.issue()
        let signedOut = try await harness.issue("alice")
        let family = try await harness.issue("carol", refresh: true)
        let kept = try await harness.issue("bob")
        try await harness.service.revoke(token: revoked.accessToken, hint: nil)
        harness.clock.advance(by: 1)
        try await harness.service.logout(subject: "alice")
        try await harness.service.revoke(token: try family.requiredRefreshToken(), hint: "refresh_token")

        let restarted = try await harness.restarted()
        #expect(restarted.currentKid == harness.currentKid)
        #expect(restarted.currentKid != oldKid)
        #expect(restarted.service.introspect(keyRevoked.accessToken).inactiveReason == .keyRevoked)
        #expect(restarted.service.introspect(revoked.accessToken).inactiveReason == .revoked)
        #expect(restarted.service.introspect(signedOut.accessToken).inactiveReason == .revoked)
        #expect(restarted.service.introspect(family.accessToken).inactiveReason == .revoked)
        #expect(restarted.service.introspect(kept.accessToken).isActive)
        #expect(await restarted.service.refresh(token: try family.requiredRefreshToken()).oauthError != nil)
    }

    @Test("a revoked family's last access token stays inactive across a restart while it is inside the leeway")
    func restartInsideLeeway() async throws {
        // Default policies: refresh near the end of the 30d family, so the newest access token
        // outlives the family; then end the family and restart within 30s after that token's exp.
        let harness = try await Harness.make()
        let first = try await harness.issue(refresh: true)
        harness.clock.advance(by: 2_592_000 - 100)
        let last = try #require(await harness.service.refresh(token: try first.requiredRefreshToken()).tokens)
        try await harness.service.revoke(token: try last.requiredRefreshToken(), hint: nil)
        harness.clock.set(last.expiresAt + 10)
        #expect(harness.service.introspect(last.accessToken).inactiveReason == .revoked)

        // Compaction (which also runs with the leeway) must not drop it either.
        _ = try await harness.service.compact()
        let restarted = try await harness.restarted()
        let result = restarted.service.introspect(last.accessToken)
        #expect(result.inactiveReason == .revoked, "\(result)")
    }

    @Test("a service cannot start when its store cannot load revocations")
    func startWithoutStore() async throws {
        let clock = TestClock()
        let keyring = try await Keyring(
            storage: MemoryKeyringStorage(),
            configuration: .test(),
            clock: clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
        await #expect(throws: TokenStoreError.self) {
            try await TokenService.start(
                configuration: .test(),
                store: FailingTokenStore(),
                keyring: keyring,
                clock: clock.serviceClock,
                logger: StoreFixtures.quietLogger
            )
        }
    }

    @Test("with the store down, health says so and introspection keeps answering from memory")
    func storeDown() async throws {
        let store = OutageStore()
        let harness = try await Harness.make(store: store)
        let issued = try await harness.issue()
        let revoked = try await harness.issue()
        try await harness.service.revoke(token: revoked.accessToken, hint: nil)
        #expect(harness.service.introspect(issued.accessToken).isActive)
        #expect(await harness.service.health().status == .serving)

        store.failing = true
        let health = await harness.service.health()
        #expect(health.status == .unavailable)
        #expect(health.writes != nil && health.reads != nil)
        #expect(harness.service.introspect(issued.accessToken).isActive)
        #expect(!harness.service.introspect(revoked.accessToken).isActive, "an acknowledged revocation holds")
        #expect(harness.service.introspect(try await Harness.make().issue().accessToken).inactiveReason != nil)

        store.failing = false
        #expect(await harness.service.health().status == .serving)
        #expect(harness.service.introspect(issued.accessToken).isActive)
    }

    @Test("a revocation the store could not make durable is refused and not applied; token checks go on")
    func failedRevocation() async throws {
        let store = OutageStore()
        let harness = try await Harness.make(store: store)
        let issued = try await harness.issue("alice")
        store.failing = true
        let logout = await #expect(throws: ServiceError.self) { try await harness.service.logout(subject: "alice") }
        #expect(logout?.code == .unavailable)
        let revoke = await #expect(throws: ServiceError.self) {
            try await harness.service.revoke(token: issued.accessToken, hint: nil)
        }
        #expect(revoke?.code == .unavailable)
        #expect(harness.service.introspect(issued.accessToken).isActive)

        store.failing = false
        #expect(await harness.service.health().healthy)
        #expect(harness.service.introspect(issued.accessToken).isActive)
    }
}
