/// A request the server refuses, as an HTTP status plus an OAuth-style error code
/// (RFC 6749 §5.2) and a sentence for people. Thrown by the request helpers and turned into
/// `{"error": …, "error_description": …}` by ``response``.
///
/// The description is safe to log and to send: it names what was wrong and what is accepted,
/// never quoting a token, a password or other parameter values.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status code (400, 413, 415, …).
    public var status: Int
    /// The OAuth-style error code (`invalid_request`, `unsupported_media_type`, …).
    public var error: String
    /// What was wrong and what is accepted.
    public var errorDescription: String
    /// Extra response headers (`Allow`, `Retry-After`, `WWW-Authenticate`, …).
    public var headers: [(name: String, value: String)]

    public init(
        status: Int,
        error: String,
        description: String,
        headers: [(name: String, value: String)] = []
    ) {
        self.status = status
        self.error = error
        self.errorDescription = description
        self.headers = headers
    }

    /// The JSON error response for this error.
    public var response: HTTPResponse {
        .error(status: status, error: error, description: errorDescription, headers: headers)
    }

    public var description: String { "\(status) \(error): \(errorDescription)" }

    /// Equality on the status and the error code, not the wording.
    public static func == (lhs: HTTPError, rhs: HTTPError) -> Bool {
        lhs.status == rhs.status && lhs.error == rhs.error
    }
}

extension HTTPError {
    /// 400 `invalid_request`.
    public static func invalidRequest(_ description: String) -> HTTPError {
        HTTPError(status: 400, error: "invalid_request", description: description)
    }

    /// 404 `not_found`.
    public static func notFound(_ description: String = "no such resource") -> HTTPError {
        HTTPError(status: 404, error: "not_found", description: description)
    }

    /// 405 `method_not_allowed` with the `Allow` header.
    public static func methodNotAllowed(_ method: String, allowed: [String]) -> HTTPError {
        let list = allowed.joined(separator: ", ")
        return HTTPError(
            status: 405,
            error: "method_not_allowed",
            description: "method \(printableToken(method)) is not allowed here; allowed: \(list)",
            headers: [("Allow", list)]
        )
    }

    /// 413 `request_too_large`.
    public static func payloadTooLarge(limit: Int) -> HTTPError {
        HTTPError(
            status: 413,
            error: "request_too_large",
            description: "the request body is larger than \(limit) bytes"
        )
    }

    /// 415 `unsupported_media_type`.
    public static func unsupportedMediaType(_ description: String) -> HTTPError {
        HTTPError(status: 415, error: "unsupported_media_type", description: description)
    }

    /// 431 `request_header_fields_too_large`.
    public static func headersTooLarge(limit: Int) -> HTTPError {
        HTTPError(
            status: 431,
            error: "request_header_fields_too_large",
            description: "the request line and headers are larger than \(limit) bytes"
        )
    }

    /// 408 `request_timeout`: a request head or body did not arrive within its deadline.
    public static func requestTimeout(_ description: String) -> HTTPError {
        HTTPError(status: 408, error: "request_timeout", description: description)
    }

    /// 503 `temporarily_unavailable` with `Retry-After`.
    public static func unavailable(_ description: String, retryAfterSeconds: Int = 1) -> HTTPError {
        HTTPError(
            status: 503,
            error: "temporarily_unavailable",
            description: description,
            headers: [("Retry-After", String(retryAfterSeconds))]
        )
    }
}

/// A method or similar token shown in a message: printable ASCII only, at most 32 characters.
func printableToken(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars.prefix(32) {
        out.unicodeScalars.append(scalar.value >= 0x21 && scalar.value < 0x7F ? scalar : "?")
    }
    return text.unicodeScalars.count > 32 ? out + "…" : out
}
