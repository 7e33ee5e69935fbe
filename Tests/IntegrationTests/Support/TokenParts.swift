import Foundation
import TokenCrypto
import TokenTestSupport

/// The three segments of a compact JWS and its decoded header and claims (no verification:
/// the daemon does that; tests only read what a token says).
struct TokenParts: Sendable {
    let header: [String: any Sendable]
    let claims: [String: any Sendable]
    let headerSegment: String
    let payloadSegment: String
    let signatureSegment: String

    init(_ token: String) throws {
        let segments = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard segments.count == 3 else { throw HarnessError("not a compact JWS (\(segments.count) segments)") }
        (headerSegment, payloadSegment, signatureSegment) = (segments[0], segments[1], segments[2])
        func object(_ segment: String) throws -> [String: any Sendable] {
            let bytes = try Base64URL.decode(segment)
            guard let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: any Sendable] else {
                throw HarnessError("a token segment is not a JSON object")
            }
            return object
        }
        header = try object(headerSegment)
        claims = try object(payloadSegment)
    }

    var kid: String? { header["kid"] as? String }
    var jti: String? { claims["jti"] as? String }
}

extension String {
    /// The `kid` in this JWS's header (public: safe to print).
    var kid: String? { (try? TokenParts(self))?.kid }
}
