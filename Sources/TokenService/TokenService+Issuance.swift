import CoreMetrics
public import JOSE
import TokenCrypto
import TokenStore

/// What `POST /admin/tokens`, sign-in and refresh hand back (RFC 6749 §5.1 shape).
public struct IssuedTokens: Sendable, Equatable {
    public var accessToken: String
    public var tokenType: String
    public var expiresIn: Int
    public var scope: String
    public var refreshToken: String?
    public var jti: String
    public var expiresAt: Double
    public var familyID: String?
    /// The access token's `iat`.
    public var issuedAt: Double = 0

    /// The RFC 6749 §5.1 JSON body.
    public var oauthBody: JSONObject {
        var body = JSONObject()
        body["access_token"] = .string(accessToken)
        body["token_type"] = .string(tokenType)
        body["expires_in"] = .number(JSONNumber(expiresIn))
        body["scope"] = .string(scope)
        if let refreshToken { body["refresh_token"] = .string(refreshToken) }
        return body
    }
}

/// A request to mint tokens for a subject.
public struct IssueRequest: Sendable {
    public var subject: String
    public var scope: [String]
    public var clientID: String
    public var policy: LifetimePolicy?
    public var withRefresh: Bool
    /// Claims of the dialect that issued the token (DESIGN §5.3); a dialect's form wins over
    /// the standard claim of the same name (appmixer's `scope` array).
    public var extraClaims: JSONObject
    /// Response-shape tag stored with a refresh family.
    public var dialect: String

    public init(
        subject: String,
        scope: [String] = [],
        clientID: String = "tokend",
        policy: LifetimePolicy? = nil,
        withRefresh: Bool = false,
        extraClaims: JSONObject = JSONObject(),
        dialect: String = "native"
    ) {
        self.subject = subject
        self.scope = scope
        self.clientID = clientID
        self.policy = policy
        self.withRefresh = withRefresh
        self.extraClaims = extraClaims
        self.dialect = dialect
    }
}

extension TokenService {
    /// Mints an access token (and a refresh family when asked). The family is durable
    /// before this returns.
    ///
    /// With a `ticket` (taken before the caller checked the subject, e.g. before hashing a
    /// password), throws `signedOut` instead when a cutoff for the subject was set or begun
    /// since: a token issued here is either refused or covered by every such cutoff.
    public func issue(_ request: IssueRequest, ticket: IssuanceTicket? = nil) async throws -> IssuedTokens {
        guard !request.subject.isEmpty, request.subject.utf8.count <= 256 else {
            throw ServiceError.invalidRequest("sub must be a non-empty string of at most 256 bytes")
        }
        // A subject travels in headers (/v1/verify's X-Token-Subject) and log lines.
        guard !request.subject.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ServiceError.invalidRequest("sub must not contain control characters (CR, LF, tab, NUL, …)")
        }
        let policy = request.policy ?? configuration.accessPolicy
        guard Double(policy.seconds) <= configuration.maxTokenLifetime else {
            throw ServiceError.invalidRequest(
                "policy \(policy.name) is longer than the longest lifetime this tokend issues (\(DurationText.describe(configuration.maxTokenLifetime)))"
            )
        }
        let now = clock.now()
        guard request.withRefresh else {
            return try mintAccess(request, policy: policy, familyID: nil, now: now, ticket: ticket)
        }
        let familyID = Base64URL.encode(SecureRandom.bytes(16))
        let refresh = RefreshSecret.generate(inIssueOrder: store.keysRefreshTokensInIssueOrder, now: now)
        var tokens = try mintAccess(request, policy: policy, familyID: familyID, now: now, ticket: ticket)
        let family = RefreshFamily(
            id: familyID,
            subject: request.subject,
            clientID: request.clientID,
            scope: tokens.scope,
            dialect: request.dialect,
            // The access token's iat: a cutoff that covers the token covers the family too.
            createdAt: tokens.issuedAt,
            expiresAt: now + Double(configuration.refreshPolicy.seconds),
            lastAccessJTI: tokens.jti,
            lastAccessExpiresAt: tokens.expiresAt
        )
        let record = RefreshTokenRecord(hash: refresh.hash, familyID: familyID, state: .active, createdAt: now)
        do {
            try await store.createRefreshFamily(family, firstToken: record)
        } catch {
            throw noteStoreFailure(error, during: "create refresh family")
        }
        refreshFamilies.remember(refresh.hash, family: family)
        tokens.refreshToken = refresh.text
        return tokens
    }

    /// Signs an access token for `request` with the current key; throws `signedOut` when
    /// `ticket` is given and the subject's cutoff moved since (see `reserveIssuance`).
    func mintAccess(
        _ request: IssueRequest,
        policy: LifetimePolicy,
        familyID: String?,
        now: Double,
        ticket: IssuanceTicket? = nil
    ) throws -> IssuedTokens {
        guard let issuedAt = revocations.reserveIssuance(subject: request.subject, ticket: ticket, now: now) else {
            throw ServiceError.signedOut("\(request.subject) was signed out while the token was being issued")
        }
        let exp = issuedAt + policy.seconds
        let jti = Base64URL.encode(SecureRandom.bytes(16))
        let scope = request.scope.joined(separator: " ")
        var claims = JSONObject()
        claims["iss"] = .string(configuration.issuer)
        claims["sub"] = .string(request.subject)
        if let audience = configuration.audience { claims["aud"] = .string(audience) }
        claims["iat"] = .number(JSONNumber(issuedAt))
        claims["nbf"] = .number(JSONNumber(issuedAt))
        claims["exp"] = .number(JSONNumber(exp))
        claims["jti"] = .string(jti)
        claims["scope"] = .string(scope)
        claims["client_id"] = .string(request.clientID)
        if let familyID { claims["sid"] = .string(familyID) }
        for (name, value) in request.extraClaims where !["iss", "jti", "exp", "iat", "nbf", "sid"].contains(name) {
            claims[name] = value
        }
        let token: String
        do {
            token = try keyring.snapshot.signer.sign(claims: claims, type: "at+jwt")
        } catch {
            throw ServiceError.keyring("signing failed: \(error)")
        }
        metrics.issued.increment()
        return IssuedTokens(
            accessToken: token,
            tokenType: "Bearer",
            expiresIn: Int(Double(exp) - now),
            scope: scope,
            refreshToken: nil,
            jti: jti,
            expiresAt: Double(exp),
            familyID: familyID,
            issuedAt: Double(issuedAt)
        )
    }
}

/// An opaque refresh token (`RefreshTokenText`: 256 random bits, after its issue time where
/// the store keys in issue order). Only its key (`key(of:)`, from its SHA-256) is stored.
struct RefreshSecret: Sendable {
    let text: String
    /// What the store keys it by (`key(of:)`); the token itself is never stored.
    let hash: [UInt8]

    /// A new token; `inIssueOrder`, it begins with the issue time `now`.
    static func generate(inIssueOrder: Bool, now: Double) -> RefreshSecret {
        let text = RefreshTokenText.make(issuedAt: inIssueOrder ? now : nil)
        return RefreshSecret(text: text, hash: key(of: text))
    }

    /// The store's 32-byte key for `text`: its SHA-256; for a token with its issue time, that
    /// time's 6 bytes and then the first 26 bytes of the SHA-256. Keys of the second kind
    /// grow with time, so a new one goes at the end of the store's index, where the keys of
    /// other recent tokens are, rather than on a random page of it. The time is no secret
    /// (the store keeps it anyway); 208 bits of digest still identify the token.
    static func key(of text: String) -> [UInt8] {
        let digest = SHA256.hash(Array(text.utf8))
        guard let time = RefreshTokenText.timeBytes(of: text) else { return digest }
        return time + digest.prefix(32 - time.count)
    }

    /// Whether `text` could be one of ours; anything else is refused before touching the store.
    static func plausible(_ text: String) -> Bool { RefreshTokenText.isWellFormed(text) }

    /// The key that seals this token's successor: derived from the token itself, so only
    /// its holder can read what was stored.
    static func sealingKey(_ text: String) -> [UInt8] {
        SHA256.hash(Array("tokend refresh successor v1\u{0}".utf8) + Array(text.utf8))
    }
}
