import JOSE
import Testing
import TokenTestSupport

/// Issue 10 finding 3: a JSON body of thousands of members cost quadratic time on an event
/// loop. The daemon refuses an object over the member limit with a 400 that names the limit,
/// still refuses duplicates in a large body, and serves a body at the limit.
@Suite("Hostile JSON bodies against the real daemon")
struct HostileJSONTests {
    /// `{"token":…,"0":"",…}`: the token and `filler` more string members, then `extra`.
    static func body(token: String, filler: Int, then extra: String? = nil) throws -> RequestBody {
        let members = [#""token":"# + token.jsonQuoted] + (0..<filler).map { #""\#($0)":"""# }
        let text = "{" + (members + (extra.map { [$0] } ?? [])).joined(separator: ",") + "}"
        // Under the 64 KiB body limit, so the JSON parser (not the 413) is what answers.
        try #require(text.utf8.count < 65536)
        return .json(text)
    }

    @Test("POST /oauth2/introspect with 5,000 members: 400 naming the limit; 1,000 members: answered; duplicates: 400")
    func manyMembers() async throws {
        try await withTokend("json-members") { daemon in
            let token = try await daemon.issue(sub: "many-members").accessToken

            let flood = try await daemon.api(
                "POST",
                "/oauth2/introspect",
                body: try HostileJSONTests.body(token: token, filler: 5000)
            )
            #expect(flood.status == 400, "\(flood.summary)")
            #expect(flood.string("error") == "invalid_request")
            let reason = flood.string("error_description") ?? ""
            #expect(reason.contains("more than 1000 members"), "\(flood.summary)")

            let justOver = try await daemon.api(
                "POST",
                "/oauth2/introspect",
                body: try HostileJSONTests.body(token: token, filler: 1000)
            )
            #expect(justOver.status == 400, "\(justOver.summary)")
            #expect(justOver.string("error_description")?.contains("more than 1000 members") == true)

            // At the limit the body is read; its members are all strings, so introspection answers.
            let atLimit = try await daemon.api(
                "POST",
                "/oauth2/introspect",
                body: try HostileJSONTests.body(token: token, filler: 999)
            )
            #expect(atLimit.status == 200, "\(atLimit.summary)")
            #expect(atLimit.json?["active"]?.boolValue == true)

            let duplicate = try await daemon.api(
                "POST",
                "/oauth2/introspect",
                body: try HostileJSONTests.body(token: token, filler: 900, then: #""\u0074oken":"x""#)
            )
            #expect(duplicate.status == 400, "\(duplicate.summary)")
            #expect(duplicate.string("error_description")?.contains("duplicate member name") == true)

            #expect(try await daemon.isActive(token))
        }
    }
}
