import Testing
import TokenTestSupport

/// `POST /admin/tokens` refuses a member of the wrong type with 400, as openapi.yaml says:
/// schemathesis found a `client_id` that was a number, an array or an object silently
/// replaced by the default `tokend-admin`.
@Suite("POST /admin/tokens: the type of client_id")
struct AdminIssueTypeTests {
    @Test("a client_id that is not a string is a 400; a string is kept; null is the default")
    func clientIDType() async throws {
        try await withTokend("admin-issue-type") { daemon in
            for body in [
                #"{"sub":"alice","client_id":5}"#, #"{"sub":"alice","client_id":["ci"]}"#,
                #"{"sub":"alice","client_id":{}}"#, #"{"sub":"alice","client_id":true}"#,
            ] {
                let reply = try await daemon.admin("POST", "/admin/tokens", json: body)
                #expect(reply.status == 400, "\(body): \(reply.status) \(reply.text.redactingSecrets)")
                #expect(reply.string("error") == "invalid_request")
                #expect(reply.string("error_description")?.contains("client_id") == true)
            }
            for (body, expected) in [
                (#"{"sub":"alice","client_id":"ci"}"#, "ci"), (#"{"sub":"alice","client_id":null}"#, "tokend-admin"),
                (#"{"sub":"alice"}"#, "tokend-admin"),
            ] {
                let reply = try await daemon.admin("POST", "/admin/tokens", json: body)
                #expect(reply.status == 200, "\(body): \(reply.status) \(reply.text.redactingSecrets)")
                let token = try #require(reply.string("access_token"))
                #expect(try await daemon.introspect(token).string("client_id") == expected, "\(body)")
            }
        }
    }
}

/// `POST /admin/keys/rotate` likewise: a `force` that is neither a boolean nor "true"/"false"
/// was read as false, so `{"force":"yes"}` or `{"force":1}` quietly did not force.
@Suite("POST /admin/keys/rotate: the type of force")
struct AdminRotateTypeTests {
    @Test("a force that is not a boolean is a 400 and rotates nothing; true forces")
    func forceType() async throws {
        try await withTokend("admin-rotate-type") { daemon in
            let before = try await daemon.admin("GET", "/admin/keys")
            for body in [#"{"force":"yes"}"#, #"{"force":1}"#, #"{"force":[true]}"#, #"{"force":{}}"#] {
                let reply = try await daemon.admin("POST", "/admin/keys/rotate", json: body)
                #expect(reply.status == 400, "\(body): \(reply.status) \(reply.text)")
                #expect(reply.string("error") == "invalid_request")
            }
            #expect(try await daemon.admin("GET", "/admin/keys").text == before.text, "nothing rotated")
            let early = try await daemon.admin("POST", "/admin/keys/rotate", json: #"{"force":null}"#)
            #expect(early.status == 409, "\(early.status) \(early.text)")
            let forced = try await daemon.admin("POST", "/admin/keys/rotate", json: #"{"force":"true"}"#)
            #expect(forced.status == 200, "\(forced.status) \(forced.text)")
        }
    }
}
