import JOSE
import Logging
import Testing
import TokenCrypto
import TokenService
import TokenStore
import TokenTestSupport

extension ServiceConfiguration {
    /// The configuration most tests run with: the defaults of DESIGN §3–§4 (1h access, 30d
    /// refresh, 10s grace, 30s leeway, 300s JWKS max-age) under a test issuer and audience.
    static func test(
        issuer: String = Harness.issuer,
        audience: String? = Harness.audience,
        signingAlgorithm: SignatureAlgorithm = .es256,
        accessPolicy: LifetimePolicy = .oneHour,
        refreshPolicy: LifetimePolicy = .thirtyDays,
        refreshGrace: Double = 10,
        leeway: Double = 30,
        maxTokenLifetime: Double = Double(LifetimePolicy.thirtyDays.seconds)
    ) -> ServiceConfiguration {
        ServiceConfiguration(
            issuer: issuer,
            audience: audience,
            signingAlgorithm: signingAlgorithm,
            accessPolicy: accessPolicy,
            refreshPolicy: refreshPolicy,
            refreshGrace: refreshGrace,
            leeway: leeway,
            jwksMaxAge: 300,
            maxTokenLifetime: maxTokenLifetime,
            cacheCapacity: 1024
        )
    }
}

/// A TokenService over memory: a hand-moved clock, an in-memory key directory and a store.
struct Harness: Sendable {
    static let issuer = "https://tokend.test"
    static let audience = "orders-api"

    let clock: TestClock
    let storage: MemoryKeyringStorage
    let store: any TokenStore
    let keyring: Keyring
    let service: TokenService

    var configuration: ServiceConfiguration { service.configuration }

    static func make(
        _ configuration: ServiceConfiguration = .test(),
        store: (any TokenStore)? = nil,
        clock: TestClock = TestClock(),
        storage: MemoryKeyringStorage = MemoryKeyringStorage(),
        logger: Logger = StoreFixtures.quietLogger
    ) async throws -> Harness {
        let store = store ?? InMemoryTokenStore()
        let keyring = try await Keyring(
            storage: storage,
            configuration: configuration,
            clock: clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
        let service = try await TokenService.start(
            configuration: configuration,
            store: store,
            keyring: keyring,
            clock: clock.serviceClock,
            logger: logger
        )
        return Harness(clock: clock, storage: storage, store: store, keyring: keyring, service: service)
    }

    /// The daemon restarted: the same key directory, store and clock, everything in memory anew.
    func restarted() async throws -> Harness {
        try await Harness.make(configuration, store: store, clock: clock, storage: storage)
    }

    var currentKid: String { KeyringState.kid(.current, in: keyring.snapshot.document)! }
    var nextKid: String { KeyringState.kid(.next, in: keyring.snapshot.document)! }

    /// Issues an access token (and a refresh token when `refresh`).
    func issue(
        _ subject: String = "user-1",
        scope: [String] = ["read", "write"],
        clientID: String = "client-1",
        policy: LifetimePolicy? = nil,
        refresh: Bool = false
    ) async throws -> IssuedTokens {
        try await service.issue(
            IssueRequest(subject: subject, scope: scope, clientID: clientID, policy: policy, withRefresh: refresh)
        )
    }

    /// Signs `claims` with one of this keyring's own private keys (the current one by
    /// default), so a test can vary a single rule and keep the signature good.
    func sign(_ claims: JSONObject, type: String? = "at+jwt", kid: String? = nil) throws -> String {
        let kid = kid ?? currentKid
        let key = try #require(storage.key(kid))
        return try JWSSigner(key: key, kid: kid).sign(claims: claims, type: type)
    }

    /// The claims this service would put in a token for `subject` issued now.
    func claims(subject: String = "user-1", lifetime: Int64 = 3600) -> JSONObject {
        let iat = Int64(clock.now.rounded(.down))
        var claims = JSONObject()
        claims["iss"] = .string(configuration.issuer)
        claims["sub"] = .string(subject)
        if let audience = configuration.audience { claims["aud"] = .string(audience) }
        claims["iat"] = .number(JSONNumber(iat))
        claims["nbf"] = .number(JSONNumber(iat))
        claims["exp"] = .number(JSONNumber(iat + lifetime))
        claims["jti"] = .string(Base64URL.encode(SecureRandom.bytes(16)))
        claims["scope"] = "read"
        claims["client_id"] = "client-1"
        return claims
    }
}

/// Reads a compact JWS without verifying it.
enum Compact {
    static func segments(_ token: String) -> [Substring] {
        token.split(separator: ".", omittingEmptySubsequences: false)
    }

    static func header(_ token: String) throws -> JSONObject {
        try object(segments(token)[0])
    }

    static func claims(_ token: String) throws -> JSONObject {
        try object(segments(token)[1])
    }

    static func signature(_ token: String) -> String { String(segments(token)[2]) }

    private static func object(_ segment: Substring) throws -> JSONObject {
        try #require(try JSONParser().parse(Base64URL.decode(segment)).objectValue)
    }
}

extension IntrospectionResult {
    var activeToken: VerifiedToken? {
        if case .active(let token) = self { return token }
        return nil
    }

    var isActive: Bool { activeToken != nil }

    var inactiveReason: InactiveReason? {
        if case .inactive(let reason) = self { return reason }
        return nil
    }

    var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }
}

extension Result where Success == IssuedTokens, Failure == OAuthError {
    var tokens: IssuedTokens? { try? get() }

    var oauthError: OAuthError? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

extension IssuedTokens {
    /// The refresh token; fails the test when there is none.
    func requiredRefreshToken(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try #require(refreshToken, sourceLocation: sourceLocation)
    }

    /// The refresh family; fails the test when there is none.
    func requiredFamilyID(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try #require(familyID, sourceLocation: sourceLocation)
    }
}

extension KeyLifecycle.Change {
    /// A change that changed nothing (the memberwise initializer is internal to TokenService).
    static var none: KeyLifecycle.Change {
        var lifecycle = KeyLifecycle(entries: [])
        return lifecycle.retireExpired(now: NumericDate(integer: 0), maxTokenLifetime: 0, leeway: 0)
    }
}
