/// The JWS algorithms tokend signs and verifies with (RFC 7518 §3, RFC 8037 §3.1).
/// A key has exactly one algorithm.
public enum SignatureAlgorithm: String, CaseIterable, Sendable, CustomStringConvertible {
    case es256 = "ES256"
    case es384 = "ES384"
    case edDSA = "EdDSA"
    case rs256 = "RS256"
    case ps256 = "PS256"
    case hs256 = "HS256"

    public var description: String { rawValue }

    /// Parses an algorithm name exactly as JOSE spells it (case-sensitive, RFC 7515 §4.1.1).
    public init?(jwsName: some StringProtocol) {
        self.init(rawValue: String(jwsName))
    }

    /// True for the algorithms that use a shared secret rather than a key pair.
    public var isSymmetric: Bool { self == .hs256 }

    /// Length of a raw signature, where it is fixed.
    public var fixedSignatureLength: Int? {
        switch self {
        case .es256: 64
        case .es384: 96
        case .edDSA: 64
        case .hs256: 32
        case .rs256, .ps256: nil
        }
    }

    /// The JWK `kty` a key of this algorithm has.
    public var keyType: String {
        switch self {
        case .es256, .es384: "EC"
        case .edDSA: "OKP"
        case .rs256, .ps256: "RSA"
        case .hs256: "oct"
        }
    }
}
