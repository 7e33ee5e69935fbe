public import JOSE
public import TokenCrypto

/// What TokenService needs to know about the deployment (DESIGN §7). The daemon builds it
/// from the environment and flags; tests build it directly.
public struct ServiceConfiguration: Sendable {
    /// `iss` of every token tokend signs, and required on every token it accepts.
    public var issuer: String
    /// `aud` put in tokens and required when set.
    public var audience: String?
    /// Algorithm of newly generated keys.
    public var signingAlgorithm: SignatureAlgorithm
    /// Lifetime of access tokens from the native API and `POST /admin/tokens` by default.
    public var accessPolicy: LifetimePolicy
    /// Absolute lifetime of a refresh family.
    public var refreshPolicy: LifetimePolicy
    /// A retry of a just-spent refresh token inside this window gets the same successor.
    public var refreshGrace: Double
    /// Clock skew tolerated on exp, nbf and iat.
    public var leeway: Double
    /// `Cache-Control: max-age` of the JWKS; also how long a `next` key is published
    /// before it may sign.
    public var jwksMaxAge: Double
    /// Scheduled rotation interval; nil for manual rotation only.
    public var keyRotation: Double?
    /// The longest lifetime of any token tokend issues (dialects included): how long a
    /// `previous` key stays published.
    public var maxTokenLifetime: Double
    /// Entries in the verified-token cache.
    public var cacheCapacity: Int
    /// Seconds a node of a fleet may go without catching up with the shared store before it
    /// answers token checks with 503 (`TOKEND_MAX_STALENESS`); 0 never refuses. Unused with
    /// a store of this host's own.
    public var maxStaleness: Double

    public init(
        issuer: String = "tokend",
        audience: String? = nil,
        signingAlgorithm: SignatureAlgorithm = .es256,
        accessPolicy: LifetimePolicy = .oneHour,
        refreshPolicy: LifetimePolicy = .thirtyDays,
        refreshGrace: Double = 10,
        leeway: Double = 30,
        jwksMaxAge: Double = 300,
        keyRotation: Double? = nil,
        maxTokenLifetime: Double = Double(LifetimePolicy.thirtyDays.seconds),
        cacheCapacity: Int = 65_536,
        maxStaleness: Double = 30
    ) {
        precondition(maxStaleness >= 0, "maxStaleness must be 0 (never refuse) or positive")
        self.maxStaleness = maxStaleness
        self.issuer = issuer
        self.audience = audience
        self.signingAlgorithm = signingAlgorithm
        self.accessPolicy = accessPolicy
        self.refreshPolicy = refreshPolicy
        self.refreshGrace = refreshGrace
        self.leeway = leeway
        self.jwksMaxAge = jwksMaxAge
        self.keyRotation = keyRotation
        self.maxTokenLifetime = max(maxTokenLifetime, Double(accessPolicy.seconds))
        self.cacheCapacity = cacheCapacity
    }
}

/// A clock in seconds since the epoch; injected so tests control time.
public struct ServiceClock: Sendable {
    public let now: @Sendable () -> Double
    /// A clock that never steps (seconds from an arbitrary start), for how long ago this node
    /// last caught up with a fleet (`FleetFreshness`).
    public let uptime: @Sendable () -> Double

    public init(
        now: @escaping @Sendable () -> Double,
        uptime: @escaping @Sendable () -> Double = FleetFreshness.monotonic
    ) {
        self.now = now
        self.uptime = uptime
    }

    /// The system's real-time clock.
    public static let system = ServiceClock {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

#if canImport(Glibc)
import Glibc
#endif
