public import JOSE

/// One request of tokend's admin API (DESIGN §5.2) as `tokenctl` sends it: the method, the
/// path with its segments percent-encoded, and a JSON body when the route takes one.
public struct AdminRequest: Sendable {
    public let method: String
    public let path: String
    public let body: JSONObject?

    init(_ method: String, _ path: String, body: JSONObject? = nil) {
        self.method = method
        self.path = path
        self.body = body
    }

    /// `GET /admin/status`: whether tokend serves, its keys and revocation counts.
    public static let status = AdminRequest("GET", "/admin/status")

    /// `GET /admin/keys`: the keyring with each key's algorithm, state and times.
    public static let keys = AdminRequest("GET", "/admin/keys")

    /// `POST /admin/keys/rotate`: promotes the next key to current; `force` rotates even
    /// before verifiers can have fetched the next key.
    public static func rotateKeys(force: Bool) -> AdminRequest {
        AdminRequest("POST", "/admin/keys/rotate", body: JSONObject([("force", .bool(force))]))
    }

    /// `POST /admin/keys/{kid}/revoke`: every token the key signed is refused at once; with
    /// `wait`, answers once every live node of the fleet has applied it.
    public static func revokeKey(_ kid: String, wait: String? = nil) -> AdminRequest {
        AdminRequest("POST", "/admin/keys/\(pathSegment(kid))/revoke" + waitQuery(wait))
    }

    /// `GET /admin/fleet`: every node's heartbeat, lag and clock offset.
    public static let fleet = AdminRequest("GET", "/admin/fleet")

    /// `?wait=DURATION`, or nothing.
    static func waitQuery(_ wait: String?) -> String {
        wait.map { "?wait=" + pathSegment($0) } ?? ""
    }

    /// `POST /admin/tokens`: an access token (and a refresh token when `refresh`) for `subject`.
    public static func issueToken(
        subject: String,
        scope: String?,
        policy: String?,
        clientID: String?,
        refresh: Bool
    ) -> AdminRequest {
        var body = JSONObject([("sub", .string(subject)), ("refresh", .bool(refresh))])
        if let scope { body["scope"] = .string(scope) }
        if let policy { body["policy"] = .string(policy) }
        if let clientID { body["client_id"] = .string(clientID) }
        return AdminRequest("POST", "/admin/tokens", body: body)
    }

    /// `POST /oauth2/introspect` (RFC 7662): whether the token is active, and its claims.
    public static func introspect(_ token: String) -> AdminRequest {
        AdminRequest("POST", "/oauth2/introspect", body: JSONObject([("token", .string(token))]))
    }

    /// `POST /oauth2/revoke` (RFC 7009): revokes an access or refresh token.
    public static func revokeToken(_ token: String, wait: String? = nil) -> AdminRequest {
        AdminRequest("POST", "/oauth2/revoke" + waitQuery(wait), body: JSONObject([("token", .string(token))]))
    }

    /// `POST /admin/tokens/explain`: every check tokend makes on the token, and its result.
    public static func explain(_ token: String) -> AdminRequest {
        AdminRequest("POST", "/admin/tokens/explain", body: JSONObject([("token", .string(token))]))
    }

    /// `POST /admin/users` without the sign-up rate limits.
    public static func createUser(
        username: String,
        email: String,
        password: String,
        firstName: String?,
        lastName: String?,
        role: String?
    ) -> AdminRequest {
        var body = JSONObject([
            ("username", .string(username)), ("email", .string(email)), ("password", .string(password)),
        ])
        if let firstName { body["firstName"] = .string(firstName) }
        if let lastName { body["lastName"] = .string(lastName) }
        if let role { body["role"] = .string(role) }
        return AdminRequest("POST", "/admin/users", body: body)
    }

    /// `GET /admin/users?…`: at most `limit` users, optionally searched by email, username or
    /// status.
    public static func users(email: String?, username: String?, status: String?, limit: Int) -> AdminRequest {
        var query = ["limit=\(limit)"]
        if let email { query.append("email=\(pathSegment(email))") }
        if let username { query.append("username=\(pathSegment(username))") }
        if let status { query.append("status=\(pathSegment(status))") }
        return AdminRequest("GET", "/admin/users?" + query.joined(separator: "&"))
    }

    /// `GET /admin/users/{id}`: one user, by public or numeric id.
    public static func user(_ id: String) -> AdminRequest {
        AdminRequest("GET", "/admin/users/\(pathSegment(id))")
    }

    /// `POST /admin/users/{id}/activate`: the user may sign in again.
    public static func activateUser(_ id: String) -> AdminRequest {
        AdminRequest("POST", "/admin/users/\(pathSegment(id))/activate")
    }

    /// `POST /admin/users/{id}/deactivate`: refuses the user's sign-ins and revokes their tokens.
    public static func deactivateUser(_ id: String, wait: String? = nil) -> AdminRequest {
        AdminRequest("POST", "/admin/users/\(pathSegment(id))/deactivate" + waitQuery(wait))
    }

    /// `POST /admin/users/{id}/logout`: every token issued to the user (or subject) until now
    /// stops working.
    public static func logout(_ id: String, wait: String? = nil) -> AdminRequest {
        AdminRequest("POST", "/admin/users/\(pathSegment(id))/logout" + waitQuery(wait))
    }

    /// `POST /admin/users/{id}/password`: a new password; the user's existing tokens stop working.
    public static func setPassword(_ id: String, password: String) -> AdminRequest {
        AdminRequest(
            "POST",
            "/admin/users/\(pathSegment(id))/password",
            body: JSONObject([("password", .string(password))])
        )
    }

    /// `text` percent-encoded for a path segment or a query value: everything but ASCII letters,
    /// digits and `-_.~` (RFC 3986 unreserved) becomes `%XX`.
    static func pathSegment(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                encoded += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return encoded
    }
}

/// tokend's answer to an ``AdminRequest``: the status and the JSON object of the body.
public struct AdminAnswer: Sendable {
    public let status: Int
    /// The body as a JSON object; empty when the body is not one.
    public let object: JSONObject

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.object = (try? JSONParser().parse(body))?.objectValue ?? JSONObject()
    }

    /// Whether tokend did what was asked (a 2xx status).
    public var succeeded: Bool { (200..<300).contains(status) }

    /// What tokend said was wrong: its `error_description`, else its `error`, else the status.
    public var refusal: String {
        object["error_description"]?.stringValue ?? object["error"]?.stringValue ?? "HTTP \(status)"
    }
}

extension UnixHTTPClient {
    /// Sends an admin request (JSON body, if any, as `application/json`) and reads the answer.
    public func send(_ request: AdminRequest) throws(HTTPClientError) -> AdminAnswer {
        let response = try send(
            method: request.method,
            path: request.path,
            headers: request.body == nil ? [] : [("Content-Type", "application/json")],
            body: request.body.map { JSONValue.object($0).compactBytes } ?? []
        )
        return AdminAnswer(status: response.status, body: response.body)
    }
}
