import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// The three account dialects of DESIGN §5.3, as a client of each sees them.
enum Dialect: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case appmixer
    case classic
    case v1

    var testDescription: String { rawValue }

    var signInPath: String {
        switch self {
        case .appmixer: "/user/auth"
        case .classic: "/api/user/login"
        case .v1: "/api/v1/auths/sign-in"
        }
    }

    var errorShape: ErrorShape { self == .v1 ? .statusCode : .message }

    /// The access token lifetime the seed documents give (30 days, 1 hour, 24 hours).
    var lifetime: (seconds: Int64, policy: String) {
        switch self {
        case .appmixer: (2_592_000, "30d")
        case .classic: (3600, "1h")
        case .v1: (86400, "24h")
        }
    }

    /// A sign-in body: appmixer and v1 take `username` or `email`, classic only `email`.
    func signInBody(email: String? = nil, username: String? = nil, password: String) -> String {
        var members: [String: JSONValue] = ["password": .string(password)]
        if let email { members["email"] = .string(email) }
        if let username, self != .classic { members["username"] = .string(username) }
        return jsonText(members)
    }

    /// The access token in a sign-in answer.
    func accessToken(_ body: JSONValue) -> String? {
        self == .v1 ? body["accessToken"]?.stringValue : body["token"]?.stringValue
    }
}

extension Tokend {
    /// A sign-in request in `dialect`, from client address `ip` (X-Real-IP) when given.
    func signIn(
        _ dialect: Dialect,
        email: String? = nil,
        username: String? = nil,
        password: String,
        ip: String? = nil
    ) async throws -> Reply {
        try await api(
            "POST",
            dialect.signInPath,
            json: dialect.signInBody(email: email, username: username, password: password),
            headers: ip.map { [("X-Real-IP", $0)] } ?? []
        )
    }

    /// Signs in and returns the whole answer's JSON; throws (without secrets) unless 200.
    func signedIn(
        _ dialect: Dialect,
        email: String? = nil,
        username: String? = nil,
        password: String
    ) async throws -> JSONValue {
        let reply = try await signIn(dialect, email: email, username: username, password: password)
        guard reply.status == 200, let body = reply.json, dialect.accessToken(body) != nil else {
            throw HarnessError("\(dialect) sign-in answered \(reply.summary)")
        }
        return body
    }

    /// `POST /api/v1/auths/refresh {refreshToken}`.
    func v1Refresh(_ refreshToken: String) async throws -> Reply {
        try await api("POST", "/api/v1/auths/refresh", json: jsonText(["refreshToken": .string(refreshToken)]))
    }
}

/// 24 lowercase hexadecimal characters (the appmixer/classic user id).
func isHex24(_ text: String?) -> Bool {
    guard let text else { return false }
    return text.utf8.count == 24 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

/// A date-time string a JavaScript client can parse (ISO 8601).
func isISO8601(_ text: String?) -> Bool {
    guard let text, !text.isEmpty else { return false }
    return NumericDate(parsing: text) != nil && text.contains("T")
}

/// The claims of a JWS's payload, decoded without verification (the seed's sample tokens).
func payloadClaims(_ token: String) throws -> JSONObject {
    let segments = token.split(separator: ".", omittingEmptySubsequences: false)
    guard segments.count == 3 else { throw HarnessError("not a compact JWS") }
    guard let object = try JSONParser().parse(try Base64URL.decode(segments[1])).objectValue else {
        throw HarnessError("the payload is not a JSON object")
    }
    return object
}
