import CodedErrors
import JOSE
import Testing
import TokenService

@testable import TokenServer

/// The HTTP answer to a refused grant is decided in TokenServer, from the error's code (the
/// other domain errors' answers are held by the account API and integration tests).
@Suite("Refused grants on the wire")
struct ErrorStatusTests {
    @Test(
        "a refused grant answers with its RFC 6749 status and error code",
        arguments: [
            (OAuthError.invalidGrant("spent"), 400, "invalid_grant"),
            (OAuthError.invalidScope("wider"), 400, "invalid_scope"),
            (OAuthError.accountInactive("Account is inactive. Contact administrator."), 403, "account_inactive"),
            (OAuthError.temporarilyUnavailable("the store is down"), 503, "temporarily_unavailable"),
        ]
    )
    func refusedGrant(error: OAuthError, status: Int, code: String) {
        let (answered, body) = error.response
        #expect(answered == status)
        #expect(body["error"]?.stringValue == code)
        #expect(body["error_description"]?.stringValue == error.reason)
    }

}
