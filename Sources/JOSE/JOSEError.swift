/// Why a token was refused. `description` is safe to log and show: it names the rule that
/// failed and never contains the token, a signature or key material.
public struct JOSEError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The family of a failure, which decides jwt-inspect's exit code (DESIGN §8).
    public enum Category: Int, Sendable, Comparable {
        /// Expired, not yet valid, issued in the future: exit 1.
        case time = 1
        /// Lifetime policy, issuer, audience or type not as required: exit 2.
        case policy = 2
        /// Signature invalid, key unknown, revoked or of another alg, or a header rule
        /// that makes the signature untrustworthy: exit 3.
        case signature = 3
        /// Not a decodable token: exit 4.
        case malformed = 4

        /// Severity order used to pick one exit code: malformed > signature > policy > time.
        var severity: Int {
            switch self {
            case .time: 0
            case .policy: 1
            case .signature: 2
            case .malformed: 3
            }
        }

        public static func < (lhs: Category, rhs: Category) -> Bool { lhs.severity < rhs.severity }
    }

    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public let category: Category
        public var description: String { name }

        // malformed
        public static let tooLarge = Code(name: "token_too_large", category: .malformed)
        public static let segments = Code(name: "bad_segments", category: .malformed)
        public static let encrypted = Code(name: "jwe_not_supported", category: .malformed)
        public static let opaque = Code(name: "opaque_token", category: .malformed)
        public static let base64 = Code(name: "bad_base64url", category: .malformed)
        public static let json = Code(name: "bad_json", category: .malformed)
        public static let duplicateMember = Code(name: "duplicate_member", category: .malformed)
        public static let tooDeep = Code(name: "nesting_too_deep", category: .malformed)
        public static let tooManyMembers = Code(name: "too_many_members", category: .malformed)
        public static let header = Code(name: "bad_header", category: .malformed)
        public static let claimType = Code(name: "bad_claim", category: .malformed)
        // signature
        public static let algNone = Code(name: "alg_none", category: .signature)
        public static let algUnsupported = Code(name: "alg_not_allowed", category: .signature)
        public static let algKeyMismatch = Code(name: "alg_key_mismatch", category: .signature)
        public static let unknownKid = Code(name: "unknown_kid", category: .signature)
        public static let keyRevoked = Code(name: "key_revoked", category: .signature)
        public static let crit = Code(name: "crit_not_understood", category: .signature)
        public static let unencodedPayload = Code(name: "b64_false", category: .signature)
        public static let signatureEncoding = Code(name: "signature_encoding", category: .signature)
        public static let signature = Code(name: "signature_invalid", category: .signature)
        // time
        public static let expired = Code(name: "expired", category: .time)
        public static let notYetValid = Code(name: "not_yet_valid", category: .time)
        public static let issuedInFuture = Code(name: "issued_in_future", category: .time)
        // policy
        public static let missingClaim = Code(name: "missing_claim", category: .policy)
        public static let issuer = Code(name: "issuer_mismatch", category: .policy)
        public static let audience = Code(name: "audience_mismatch", category: .policy)
        public static let type = Code(name: "type_mismatch", category: .policy)
        public static let lifetime = Code(name: "lifetime_policy", category: .policy)
    }

    public let code: Code
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var category: Category { code.category }
    public var description: String { reason }

    public static func == (lhs: JOSEError, rhs: JOSEError) -> Bool { lhs.code == rhs.code }
}
