import JOSE
import Testing
import TokenCrypto
import TokenService
import TokenTestSupport

/// `explain(token:)` for `POST /admin/tokens/explain`: every check with its result, the
/// verdict, and never the token's signature or key material.
@Suite("Explain")
struct ExplainTests {
    struct Report {
        let json: JSONObject

        var active: Bool? { json["active"]?.boolValue }
        var verdict: String { json["verdict"]?.stringValue ?? "" }
        var text: String { JSONValue.object(json).compactText }

        /// name → status ("ok", "fail", "warn", "skip") of each check; the last one of a name wins.
        var statuses: [String: String] {
            var result: [String: String] = [:]
            for check in json["checks"]?.arrayValue ?? [] {
                if let name = check["name"]?.stringValue { result[name] = check["status"]?.stringValue }
            }
            return result
        }

        var failed: Set<String> { Set(statuses.filter { $0.value == "fail" }.keys) }
    }

    static func explain(_ harness: Harness, _ token: String) async -> Report {
        Report(json: await harness.service.explain(token: token))
    }

    /// What must never appear: the signature segment and every private key of the directory.
    static func expectNoSecrets(_ report: Report, token: String, harness: Harness) throws {
        let text = report.text
        let parts = Compact.segments(token)
        if parts.count == 3, !parts[2].isEmpty { #expect(!text.contains(parts[2]), "explain shows the signature") }
        #expect(!text.contains(token), "explain shows the token")
        for kid in harness.storage.storedKids {
            let key = try #require(harness.storage.key(kid))
            if let secret = key.secretBytes {
                #expect(!text.contains(Base64URL.encode(secret)), "explain shows an HS256 secret")
            } else {
                let d = try #require(try JWK.privateJSON(key, kid: kid)["d"]?.stringValue)
                #expect(!text.contains(d), "explain shows a private key")
                let pem = try key.pkcs8PEM().split(separator: "\n").dropFirst().first.map(String.init) ?? ""
                #expect(!text.contains(pem), "explain shows a PEM key")
            }
        }
    }

    @Test("an active token passes every check, names them all, and shows no secret")
    func activeToken() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue(refresh: true)
        let report = await Self.explain(harness, issued.accessToken)
        #expect(report.active == true)
        #expect(report.verdict == "active")
        let names = Set(report.statuses.keys)
        let expected: Set<String> = [
            "structure", "header", "claims", "signature", "exp", "nbf", "iat", "iss", "aud", "typ", "key state",
            "jti revoked", "subject cutoff", "refresh family",
        ]
        #expect(expected.isSubset(of: names), "missing: \(expected.subtracting(names))")
        #expect(report.failed.isEmpty, "\(report.failed)")
        #expect(report.statuses.values.allSatisfy { $0 == "ok" }, "\(report.statuses)")
        #expect(report.json["key"]?["kid"]?.stringValue == harness.currentKid)
        #expect(report.json["key"]?["state"]?.stringValue == "current")
        #expect(report.json["family"]?["state"]?.stringValue == "active")
        #expect(report.json["claims"]?["sub"]?.stringValue == "user-1")
        #expect(report.json["expires_in"]?.numberValue?.int64Value == 3600)
        try Self.expectNoSecrets(report, token: issued.accessToken, harness: harness)
    }

    @Test("a token without a refresh family has no family check")
    func withoutFamily() async throws {
        let harness = try await Harness.make()
        let report = await Self.explain(harness, try await harness.issue().accessToken)
        #expect(report.active == true)
        #expect(report.statuses["refresh family"] == nil)
        #expect(report.statuses["jti revoked"] == "ok")
    }

    @Test("a revoked token fails the jti check and is inactive")
    func revokedToken() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue()
        try await harness.service.revoke(token: issued.accessToken, hint: nil)
        let report = await Self.explain(harness, issued.accessToken)
        #expect(report.active == false)
        #expect(report.failed == ["jti revoked"])
        #expect(report.verdict.hasPrefix("inactive"))
        try Self.expectNoSecrets(report, token: issued.accessToken, harness: harness)
    }

    @Test("a token of a signed-out subject fails the subject cutoff check")
    func signedOut() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue("alice")
        harness.clock.advance(by: 1)
        try await harness.service.logout(subject: "alice")
        let report = await Self.explain(harness, issued.accessToken)
        #expect(report.active == false)
        #expect(report.failed == ["subject cutoff"])
    }

    @Test("a token of an ended family fails the refresh family check")
    func endedFamily() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue(refresh: true)
        try await harness.service.revoke(token: try issued.requiredRefreshToken(), hint: nil)
        let report = await Self.explain(harness, issued.accessToken)
        #expect(report.active == false)
        #expect(report.failed == ["refresh family"])
        #expect(report.json["family"]?["state"]?.stringValue == "revoked")
    }

    @Test("a token of a revoked key fails the key state and signature checks")
    func revokedKey() async throws {
        let harness = try await Harness.make()
        let kid = harness.currentKid
        let issued = try await harness.issue()
        _ = try await harness.service.revokeKey(kid: kid)
        let report = await Self.explain(harness, issued.accessToken)
        #expect(report.active == false)
        #expect(report.failed.contains("key state"))
        #expect(report.failed.contains("signature"))
        #expect(report.json["key"]?["state"]?.stringValue == "revoked")
        try Self.expectNoSecrets(report, token: issued.accessToken, harness: harness)
    }

    @Test("an expired token fails exp and says inactive")
    func expired() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue()
        harness.clock.set(issued.expiresAt + 31)
        let report = await Self.explain(harness, issued.accessToken)
        #expect(report.active == false)
        #expect(report.failed == ["exp"])
        #expect(report.verdict.hasPrefix("inactive"))
    }

    @Test("a token with a broken signature fails the signature check and never shows it")
    func badSignature() async throws {
        let harness = try await Harness.make()
        let issued = try await harness.issue()
        let parts = Compact.segments(issued.accessToken)
        var signature = try Base64URL.decode(parts[2])
        signature[0] ^= 0x80
        let forged = "\(parts[0]).\(parts[1]).\(Base64URL.encode(signature))"
        let report = await Self.explain(harness, forged)
        #expect(report.active == false)
        #expect(report.failed.contains("signature"))
        try Self.expectNoSecrets(report, token: forged, harness: harness)
    }

    @Test("a refresh token or garbage is not a JWS: the structure check fails and the input is not echoed")
    func notAJWS() async throws {
        let harness = try await Harness.make()
        let refresh = try await harness.issue(refresh: true).requiredRefreshToken()
        for text in [refresh, "not.a.token", "hello"] {
            let report = await Self.explain(harness, text)
            #expect(report.active == false)
            #expect(report.failed.contains("structure"), "\(report.statuses)")
        }
        #expect(!(await Self.explain(harness, refresh)).text.contains(refresh))
    }

    @Test("an HS256 deployment's explain never shows the shared secret")
    func hs256() async throws {
        let harness = try await Harness.make(.test(signingAlgorithm: .hs256))
        let issued = try await harness.issue()
        let report = await Self.explain(harness, issued.accessToken)
        #expect(report.active == true)
        try Self.expectNoSecrets(report, token: issued.accessToken, harness: harness)
    }

    @Test("while the store is down, explain does not call a valid token revoked")
    func storeDown() async throws {
        let store = OutageStore()
        let harness = try await Harness.make(store: store)
        let issued = try await harness.issue()
        store.failing = true
        _ = await harness.service.health()
        let report = await Self.explain(harness, issued.accessToken)
        #expect(!report.verdict.contains("revoked"), "\(report.verdict)")
    }
}
