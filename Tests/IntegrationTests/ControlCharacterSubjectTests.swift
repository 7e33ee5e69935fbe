import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// A subject travels in `/v1/verify`'s `X-Token-Subject` header: one holding CR or LF could
/// split the answer, so tokend refuses to issue such a token and refuses to vouch for one.
@Suite("Control characters in a token's sub")
struct ControlCharacterSubjectTests {
    @Test("issuing a sub with CR/LF is a 400 that says why")
    func issuanceRefused() async throws {
        let sandbox = try Sandbox("sub-ctl-issue")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox)
        let reply = try await http(
            daemon.adminSocket,
            "POST",
            "/admin/tokens",
            body: .json(#"{"sub":"alice\r\nX-Injected: 1"}"#)
        )
        #expect(await daemon.stop() == .exited(0))
        #expect(reply.status == 400, "\(reply.status) \(reply.text.redactingSecrets)")
        #expect(reply.text.contains("control characters"), "\(reply.text.redactingSecrets)")
    }

    @Test("/v1/verify answers 401 invalid_token, not 500, for a token of tokend's key whose sub holds CR/LF")
    func verifyRefused() async throws {
        let sandbox = try Sandbox("sub-ctl-verify")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox)
        // A token signed with tokend's current key, as one issued before the refusal could be.
        let keyring = try JSONParser().parse(
            Array(try Data(contentsOf: URL(fileURLWithPath: sandbox.keysDirectory + "/keyring.json")))
        )
        let current = try #require(
            keyring["keys"]?.arrayValue?.first { $0["state"]?.stringValue == "current" },
            "no current key in keyring.json"
        )
        let kid = try #require(current["kid"]?.stringValue)
        let pem = try String(contentsOfFile: "\(sandbox.keysDirectory)/\(kid).pem", encoding: .utf8)
        let now = Int64(Date().timeIntervalSince1970)
        var claims = JSONObject()
        claims["iss"] = .string("tokend")
        claims["sub"] = .string("alice\r\nX-Injected: 1")
        claims["scope"] = .string("read")
        claims["client_id"] = .string("test")
        claims["jti"] = .string(Base64URL.encode(SecureRandom.bytes(16)))
        claims["iat"] = .number(JSONNumber(now))
        claims["nbf"] = .number(JSONNumber(now))
        claims["exp"] = .number(JSONNumber(now + 600))
        let token = try JWSSigner(key: SigningKey(pem: pem), kid: kid).sign(claims: claims)

        let introspected = try await http(
            daemon.apiSocket,
            "POST",
            "/oauth2/introspect",
            body: .form([("token", token)])
        )
        let verified = try await http(
            daemon.apiSocket,
            "GET",
            "/v1/verify",
            headers: [("Authorization", "Bearer \(token)")]
        )
        let healthy = try await http(daemon.apiSocket, "GET", "/healthz")
        #expect(await daemon.stop() == .exited(0))
        // The token itself is valid: introspection (JSON, which escapes CR/LF) says so.
        #expect(introspected.json?["active"] == .bool(true), "\(introspected.text)")
        #expect(verified.status == 401, "\(verified.status) \(verified.text)")
        #expect(verified.header("WWW-Authenticate")?.contains(#"error="invalid_token""#) == true)
        #expect(verified.header("X-Injected") == nil)
        #expect(healthy.status == 200)
    }
}
