import Atomics
import CodedErrors
import JOSE
public import Logging
import Metrics
import TokenCrypto
public import TokenStore

/// The domain of tokend (DESIGN §3–§5): issuing, introspecting, revoking and refreshing
/// tokens, and the keys behind them. No HTTP and no sockets: routes call these methods.
///
/// The hot path (`introspect`) reads only memory: the keyring snapshot, the revocation
/// state and the verified-token cache. Everything that writes goes to the store first and
/// changes memory only once the store has made it durable.
public final class TokenService: Sendable {
    public let configuration: ServiceConfiguration
    public let keyring: Keyring
    public let store: any TokenStore
    public let revocations: RevocationState
    let cache: VerifiedTokenCache
    /// The families of refresh tokens this node handed out, so a refresh skips a read.
    let refreshFamilies = RefreshFamilyCache(capacity: 65_536)
    let clock: ServiceClock
    let logger: Logger
    let metrics: ServiceMetrics
    /// The last health report, for STATUS= and for logging each change of reads and keys
    /// once (the store logs its own write failures as they happen).
    let lastHealth = LockedBox(HealthReport())
    /// Why the last SIGHUP reload of the key directory failed, until one succeeds.
    let keyReloadFailure = LockedBox<String?>(nil)
    /// The account layer's hook for refreshes of dialect families.
    let refreshCustomizer: (any RefreshCustomizer)?
    /// This node's place in the shared store's event log; nil when the store is this host's
    /// own (SQLite), whose memory needs no following.
    public let follower: EventFollower?
    /// How current memory is with the shared store (`TOKEND_MAX_STALENESS`).
    public let freshness: FleetFreshness
    /// This node's row in a fleet's registry (heartbeats); nil on a store of its own.
    public let fleet: FleetNode?
    /// Whether the last `noteFreshness()` found this node behind the fleet.
    let fleetBehind = LockedBox(false)

    /// Builds the service over an open store and a loaded keyring, loading the revocation
    /// state from the store. `refreshCustomizer` shapes refreshes of families a dialect
    /// created (`AccountRefresh`); without one they get the native lifetime and claims.
    public static func start(
        configuration: ServiceConfiguration,
        store: any TokenStore,
        keyring: Keyring,
        refreshCustomizer: (any RefreshCustomizer)? = nil,
        clock: ServiceClock = .system,
        version: String = "unknown",
        logger: Logger
    ) async throws -> TokenService {
        // A revoked token whose exp is still inside the leeway would verify again: load its
        // revocation too.
        let freshness = FleetFreshness(
            bound: configuration.maxStaleness > 0 ? configuration.maxStaleness : nil,
            uptime: clock.uptime
        )
        let snapshot: RevocationSnapshot
        var follower: EventFollower?
        if let shared = store as? any FollowableStore {
            // A store the fleet shares: follow its log from the snapshot's position on. The
            // load is this node's first read that caught up.
            let began = freshness.uptime()
            let (loaded, position) = try await shared.loadRevocationsToFollow(now: clock.now() - configuration.leeway)
            snapshot = loaded
            follower = EventFollower(store: shared, position: position)
            freshness.caughtUp(at: began)
        } else {
            snapshot = try await store.loadRevocations(now: clock.now() - configuration.leeway)
        }
        return TokenService(
            configuration: configuration,
            store: store,
            keyring: keyring,
            revocations: RevocationState(snapshot),
            refreshCustomizer: refreshCustomizer,
            clock: clock,
            logger: logger,
            follower: follower,
            freshness: freshness,
            fleet: (store as? any FleetRegistry).map {
                FleetNode(
                    registry: $0,
                    version: version,
                    initialNextKid: keyring.snapshot.document.keys.first { $0.state == .next }?.kid,
                    leeway: configuration.leeway,
                    started: clock.now()
                )
            }
        )
    }

    init(
        configuration: ServiceConfiguration,
        store: any TokenStore,
        keyring: Keyring,
        revocations: RevocationState,
        refreshCustomizer: (any RefreshCustomizer)?,
        clock: ServiceClock,
        logger: Logger,
        follower: EventFollower? = nil,
        freshness: FleetFreshness = FleetFreshness(bound: nil),
        fleet: FleetNode? = nil
    ) {
        self.fleet = fleet
        self.follower = follower
        self.freshness = freshness
        self.configuration = configuration
        self.store = store
        self.keyring = keyring
        self.revocations = revocations
        self.refreshCustomizer = refreshCustomizer
        self.cache = VerifiedTokenCache(capacity: configuration.cacheCapacity)
        self.clock = clock
        self.logger = logger
        self.metrics = ServiceMetrics()
        metrics.updateKeyStates(keyring.snapshot.document)
    }

    public var now: Double { clock.now() }

    /// What works now: store reads and writes, and a current signing key. Logs a change of
    /// reads or keys once; the store logs changes of writes when it sees them.
    public func health() async -> HealthReport {
        let store = await store.health()
        let keys =
            keyring.snapshot.document.keys.contains(where: { $0.state == .current })
            ? nil : "no current signing key; rotate or restore the key directory"
        var report = HealthReport(store: store, keys: keys)
        if freshness.following {
            report.following = true
            report.fleet = freshness.refusal
        }
        if let fleet {
            report.clockOffset = fleet.clockOffset
            report.clockWarning = fleet.clockWarning
        }
        let previous = lastHealth.withLock { last -> HealthReport in
            defer { last = report }
            return last
        }
        if report.reads != previous.reads {
            if let reads = report.reads {
                logger.error("token store reads fail", metadata: ["reason": "\(reads)"])
            } else {
                logger.notice("token store reads work again")
            }
        }
        if report.keys != previous.keys {
            if let keys = report.keys {
                logger.error("cannot sign tokens", metadata: ["reason": "\(keys)"])
            } else {
                logger.notice("a current signing key is back")
            }
        }
        return report
    }

    /// Turns a store failure seen by a caller into the 503 it answers. Not logged here: the
    /// store logs once when its writes start failing, not once per refused request.
    /// Introspection is not affected: it reads only memory.
    func noteStoreFailure(_ error: any Error, during operation: String) -> ServiceError {
        logger.debug("token store failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
        return ServiceError.unavailable("the token store is unavailable; retry shortly")
    }

    /// A one-line summary for systemd's STATUS=: the state of the last health check, then the
    /// keys and revocations.
    public var statusLine: String {
        let snapshot = keyring.snapshot
        let current = snapshot.document.keys.first { $0.state == .current }
        let counts = revocations.counts
        let health = lastHealth.withLock { $0 }
        let line =
            "\(health.reason); current key \(current?.kid.prefix(8) ?? "none") (\(current?.algorithm.rawValue ?? "-")); \(counts.jtis) revoked tokens, \(counts.families) ended sessions"
        guard let failure = keyReloadFailure.withLock({ $0 }) else { return line }
        return line + "; key reload failed, serving with the previous keys: " + failure
    }

    /// Drops revocations and ended families whose tokens have all expired, from memory and
    /// the store (leeway included, as at start-up).
    public func compact() async throws -> Int {
        let now = clock.now()
        let memory = revocations.compact(now: now - configuration.leeway)
        do {
            return try await store.compact(now: now - configuration.leeway) + memory
        } catch {
            throw noteStoreFailure(error, during: "compact")
        }
    }

    /// Retires and rotates keys as due; returns a description of what changed, if anything.
    public func maintainKeys() async throws -> String? {
        let before = keyring.snapshot.revision
        let change = try await keyring.maintain()
        guard change != KeyLifecycle.Change() else {
            // Another process (node) changed the stored keyring, and this one adopted it.
            if keyring.snapshot.revision != before {
                cache.removeAll()
                metrics.updateKeyStates(keyring.snapshot.document)
            }
            return nil
        }
        cache.removeAll()
        metrics.updateKeyStates(keyring.snapshot.document)
        var parts: [String] = []
        if let promoted = change.promoted { parts.append("rotated to \(promoted)") }
        if !change.retired.isEmpty { parts.append("retired \(change.retired.joined(separator: ", "))") }
        let summary = parts.joined(separator: "; ")
        try? await store.appendEvent(kind: "key_maintenance", subject: nil, detail: summary, at: clock.now())
        return summary
    }
}

/// Metric handles created once, so the hot path only increments.
struct ServiceMetrics: Sendable {
    let introspectActive = Counter(label: "tokend_introspections_total", dimensions: [("result", "active")])
    let introspectInactive = Counter(label: "tokend_introspections_total", dimensions: [("result", "inactive")])
    let introspectUnavailable = Counter(label: "tokend_introspections_total", dimensions: [("result", "unavailable")])
    let cacheHit = Counter(label: "tokend_introspection_cache_total", dimensions: [("outcome", "hit")])
    let cacheMiss = Counter(label: "tokend_introspection_cache_total", dimensions: [("outcome", "miss")])
    let revokedAccess = Counter(label: "tokend_revocations_total", dimensions: [("kind", "access_token")])
    let revokedFamily = Counter(label: "tokend_revocations_total", dimensions: [("kind", "refresh_family")])
    let revokedSubject = Counter(label: "tokend_revocations_total", dimensions: [("kind", "subject")])
    let revokedKey = Counter(label: "tokend_revocations_total", dimensions: [("kind", "key")])
    let reuseDetected = Counter(label: "tokend_refresh_reuse_detected_total")
    let refreshRotated = Counter(label: "tokend_refresh_rotations_total")
    let issued = Counter(label: "tokend_tokens_issued_total")
    let keyStates: [KeyState: Gauge] = Dictionary(
        uniqueKeysWithValues: KeyState.allCases.map {
            ($0, Gauge(label: "tokend_keys", dimensions: [("state", $0.rawValue)]))
        }
    )

    func updateKeyStates(_ document: KeyringDocument) {
        for state in KeyState.allCases {
            keyStates[state]?.record(document.keys.filter { $0.state == state }.count)
        }
    }
}
