import JOSE
import Testing

@testable import TokenService

/// The verified-token cache stays within its capacity however many distinct tokens pass
/// through it, evicting the oldest first, and a token inserted again is not counted twice.
@Suite("Verified-token cache")
struct VerifiedTokenCacheTests {
    private static func token(_ i: Int) -> (String, VerifiedToken) {
        let text = "header.payload.signature-\(i)"
        let verified = VerifiedToken(
            subject: "user-\(i)",
            scope: "read",
            clientID: nil,
            username: nil,
            issuer: "https://issuer.example",
            audience: nil,
            jti: "jti-\(i)",
            kid: "k1",
            familyID: nil,
            exp: 2_000_000_000,
            iat: 1_900_000_000,
            nbf: nil
        )
        return (text, verified)
    }

    @Test("a stream of distinct tokens never holds more than the capacity")
    func bounded() {
        let cache = VerifiedTokenCache(capacity: 64)
        for i in 0..<10_000 {
            let (text, verified) = Self.token(i)
            cache.insert(text, verified)
        }
        #expect(cache.count <= 64)
        #expect(cache.count >= 32)
        // The newest token is there; the oldest ones are gone.
        #expect(cache.lookup(Self.token(9_999).0)?.jti == "jti-9999")
        #expect(cache.lookup(Self.token(0).0) == nil)
    }

    @Test("re-inserting a cached token replaces it without taking a second place")
    func reinsert() {
        let cache = VerifiedTokenCache(capacity: 16)  // one place per shard
        let (text, verified) = Self.token(1)
        for _ in 0..<100 { cache.insert(text, verified) }
        #expect(cache.count == 1)
        #expect(cache.lookup(text)?.subject == "user-1")
    }

    @Test("the introspection answer is the JSON serialiser's text for every shape of token")
    func activeIntrospectionShapes() {
        let audiences: [[String]?] = [nil, [], ["api"], ["api", "b\"q\\"]]
        for audience in audiences {
            for (clientID, username, nbf) in [(nil, nil, nil), ("cli\u{2028}", "Zoë \n", 1_900_000_001.0)]
                as [(String?, String?, Double?)]
            {
                let verified = VerifiedToken(
                    subject: "sub\u{1}",
                    scope: "read write",
                    clientID: clientID,
                    username: username,
                    issuer: "https://issuer.example/",
                    audience: audience,
                    jti: "j",
                    kid: "k",
                    familyID: nil,
                    exp: 2_000_000_000,
                    iat: 1_900_000_000,
                    nbf: nbf
                )
                var body = JSONObject()
                body["active"] = .bool(true)
                body["sub"] = .string(verified.subject)
                body["scope"] = .string(verified.scope)
                if let clientID { body["client_id"] = .string(clientID) }
                if let username { body["username"] = .string(username) }
                body["token_type"] = "Bearer"
                body["exp"] = .number(JSONNumber(Int64(2_000_000_000)))
                body["iat"] = .number(JSONNumber(Int64(1_900_000_000)))
                if let nbf { body["nbf"] = .number(JSONNumber(Int64(nbf))) }
                if let audience {
                    body["aud"] = audience.count == 1 ? .string(audience[0]) : .array(audience.map { .string($0) })
                }
                body["iss"] = .string(verified.issuer)
                body["jti"] = .string("j")
                #expect(verified.activeIntrospection == JSONValue.object(body).compactBytes)
                // And it parses back to the same members.
                #expect((try? JSONParser().parse(verified.activeIntrospection)) == JSONValue.object(body))
            }
        }
    }

    @Test("the introspection answer of a verified token is built once, RFC 7662 members only")
    func activeIntrospection() {
        let (_, verified) = Self.token(7)
        let text = String(decoding: verified.activeIntrospection, as: UTF8.self)
        #expect(
            text
                == #"{"active":true,"sub":"user-7","scope":"read","token_type":"Bearer","exp":2000000000,"iat":1900000000,"iss":"https://issuer.example","jti":"jti-7"}"#
        )
    }
}
