import CodedErrors
import JOSE
import TokenService

// The HTTP answer to each domain error is decided here, from its code, and nowhere else:
// TokenService says what went wrong, the routes say how that sounds on the wire.

extension AccountError.Code {
    /// The status of an account error, in every dialect and on the admin socket.
    var status: Int {
        switch self {
        case .validation: 400
        case .invalidCredentials, .unauthorized: 401
        case .inactive: 403
        case .notFound: 404
        case .conflict: 409
        case .signUpLimitedPerEmail, .signUpLimitedPerAddress, .signInLimited: 429
        case .overloaded, .unavailable: 503
        default: 500
        }
    }
}

extension ServiceError.Code {
    /// The status and the OAuth-style error code (RFC 6749 §5.2) of a service error.
    var answer: (status: Int, error: String) {
        switch self {
        case .invalidRequest: (400, "invalid_request")
        case .notFound: (404, "not_found")
        case .rotationTooEarly: (409, "rotation_too_early")
        case .unavailable: (503, "temporarily_unavailable")
        case .keyring: (500, "keyring_error")
        default: (500, "server_error")
        }
    }
}

extension OAuthError.Code {
    /// The status and the error code (RFC 6749 §5.2) of a refused grant.
    var answer: (status: Int, error: String) {
        switch self {
        case .invalidGrant: (400, "invalid_grant")
        case .invalidScope: (400, "invalid_scope")
        case .accountInactive: (403, "account_inactive")
        case .temporarilyUnavailable: (503, "temporarily_unavailable")
        default: (500, "server_error")
        }
    }
}

extension OAuthError {
    /// The RFC 6749 §5.2 body: `{"error": …, "error_description": …}`.
    var response: (status: Int, body: JSONObject) {
        let answer = code.answer
        return (answer.status, JSONObject([("error", .string(answer.error)), ("error_description", .string(reason))]))
    }
}
