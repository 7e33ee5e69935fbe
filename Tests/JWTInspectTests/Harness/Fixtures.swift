import Foundation
import JOSE
import Testing
import TokenCrypto

/// Sample tokens from the seed documents (HS256, long expired). Embedded: the seeds live
/// outside the package.
enum Seed {
    /// 000 (Appmixer sign-in): iat 2019-03-13T15:56:49Z, exp 2019-04-12T15:56:49Z, 30 days.
    static let appmixer =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjVjODhjN2NjMDRhOTE3MjU2YzcyNmMzZCIsInNjb3BlIjpbInVzZXIiXSwiaWF0IjoxNTUyNDkyNjA5LCJleHAiOjE1NTUwODQ2MDl9.9jVcqY0qo9Q_1GeK9Fg14v7OrdpWvzmqnv4jDMZfqnI"
    /// A moment inside the Appmixer token's validity.
    static let appmixerValidNow = "2019-03-20T00:00:00Z"
    static let appmixerUserID = "5c88c7cc04a917256c726c3d"

    /// 003 (classic login): iat 2020-07-17T06:31:21Z, exp one hour later.
    static let classic =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOiI1ZWY1YjRkMmI1NmFhZDgyNDBkYjIyOWMiLCJ1c2VyTmFtZSI6ImFkbWluMSIsImVtYWlsIjoiYWRtaW4xQHVzZXIuY29tIiwiaWF0IjoxNTk0OTY3MDgxLCJleHAiOjE1OTQ5NzA2ODF9.DoHgM4XbGD94HHV-wFdL1vu__aAjs05oEAVMjB8gpS8"
    static let classicValidNow = "2020-07-17T07:00:00Z"

    /// Seed 000's sign-in response body, verbatim.
    static let appmixerSignInBody = """
        {
            "user": {
                "id": "5c88c7cc04a917256c726c3d",
                "username":"abc@example.com",
                "isActive": false,
                "email": "abc@example.com", 
                "plan":"free",
                "vendor": null
            },
            "token":"\(appmixer)"
        }
        """
}

/// A fixed clock for generated tokens, so no test depends on the machine's time.
enum Clock {
    /// 2023-11-14T22:13:20Z.
    static let t0: Int64 = 1_700_000_000
    static let t0ISO = "2023-11-14T22:13:20Z"
}

/// Claims issued at `iat` that expire `lifetime` seconds later.
func claims(
    iat: Int64 = Clock.t0,
    lifetime: Int64 = 3_600,
    extra: [(String, JSONValue)] = []
) -> JSONObject {
    var object = JSONObject()
    object["iss"] = "https://tokend.test"
    object["sub"] = "user-42"
    object["aud"] = "api"
    object["iat"] = .number(JSONNumber(iat))
    object["exp"] = .number(JSONNumber(iat + lifetime))
    for (name, value) in extra { object[name] = value }
    return object
}

/// A signed compact JWS over `claims`.
func sign(_ claims: JSONObject, with key: SigningKey, kid: String? = nil, type: String? = "at+jwt") throws -> String {
    try JWSSigner(key: key, kid: kid).sign(claims: claims, type: type)
}

/// A token whose header and payload are given as JSON text, with a made-up signature.
func unsignedToken(header: String, payload: String, signature: String = "c2lnbmF0dXJl") -> String {
    Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8)) + "." + signature
}

/// The token with one bit of its signature flipped (still canonical base64url).
func flippingSignatureBit(_ token: String) throws -> String {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    var signature = try Base64URL.decode(parts[2])
    signature[signature.count / 2] ^= 0x01
    return parts[0] + "." + parts[1] + "." + Base64URL.encode(signature)
}

/// The token with its payload replaced and the original signature kept.
func replacingPayload(_ token: String, with claims: JSONObject) -> String {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    return parts[0] + "." + Base64URL.encode(JSONValue.object(claims).compactBytes) + "." + parts[2]
}

/// Parses `--json` output into a dictionary, recording an issue when it is not one object.
func parseJSONObject(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Any]? {
    guard let data = text.data(using: .utf8),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else {
        Issue.record("--json output is not one JSON object:\n\(text)", sourceLocation: sourceLocation)
        return nil
    }
    return object
}

extension String {
    /// The lines that contain `needle`.
    func lines(containing needle: String) -> [Substring] {
        split(separator: "\n").filter { $0.contains(needle) }
    }
}
