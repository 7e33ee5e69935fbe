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
    let clock: ServiceClock
    let logger: Logger
    let metrics: ServiceMetrics
    /// False while the store fails its health check: introspection answers 503 rather than
    /// guessing.
    let storeHealthy = ManagedAtomic<Bool>(true)
    /// Why the last SIGHUP reload of the key directory failed, until one succeeds.
    let keyReloadFailure = LockedBox<String?>(nil)
    /// The account layer's hook for refreshes of dialect families.
    let refreshCustomizer: (any RefreshCustomizer)?

    /// Builds the service over an open store and a loaded keyring, loading the revocation
    /// state from the store. `refreshCustomizer` shapes refreshes of families a dialect
    /// created (`AccountRefresh`); without one they get the native lifetime and claims.
    public static func start(
        configuration: ServiceConfiguration,
        store: any TokenStore,
        keyring: Keyring,
        refreshCustomizer: (any RefreshCustomizer)? = nil,
        clock: ServiceClock = .system,
        logger: Logger
    ) async throws -> TokenService {
        // A revoked token whose exp is still inside the leeway would verify again: load its
        // revocation too.
        let snapshot = try await store.loadRevocations(now: clock.now() - configuration.leeway)
        return TokenService(
            configuration: configuration,
            store: store,
            keyring: keyring,
            revocations: RevocationState(snapshot),
            refreshCustomizer: refreshCustomizer,
            clock: clock,
            logger: logger
        )
    }

    init(
        configuration: ServiceConfiguration,
        store: any TokenStore,
        keyring: Keyring,
        revocations: RevocationState,
        refreshCustomizer: (any RefreshCustomizer)?,
        clock: ServiceClock,
        logger: Logger
    ) {
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

    /// Whether the service can answer: the store responds and a current key exists.
    public func health() async -> (healthy: Bool, reason: String) {
        do {
            try await store.checkHealth()
            storeHealthy.store(true, ordering: .relaxed)
        } catch {
            storeHealthy.store(false, ordering: .relaxed)
            // The reason goes to /healthz: the store's code and reason, not where it was raised.
            let failure = (error as? TokenStoreError).map { "\($0.code): \($0.reason)" } ?? "\(error)"
            return (false, "the token store does not answer: \(failure)")
        }
        guard keyring.snapshot.document.keys.contains(where: { $0.state == .current }) else {
            return (false, "no current signing key")
        }
        return (true, "serving")
    }

    /// Records a store failure seen by a caller so introspection stops answering until the
    /// next successful health check.
    func noteStoreFailure(_ error: any Error, during operation: String) -> ServiceError {
        storeHealthy.store(false, ordering: .relaxed)
        logger.error("token store failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
        return ServiceError.unavailable("the token store is unavailable; retry shortly")
    }

    /// A one-line summary for systemd's STATUS=.
    public var statusLine: String {
        let snapshot = keyring.snapshot
        let current = snapshot.document.keys.first { $0.state == .current }
        let counts = revocations.counts
        let line =
            "serving; current key \(current?.kid.prefix(8) ?? "none") (\(current?.algorithm.rawValue ?? "-")); \(counts.jtis) revoked tokens, \(counts.families) ended sessions"
        guard let failure = keyReloadFailure.withLock({ $0 }) else { return line }
        return line + "; key reload failed, serving with the previous keys: " + failure
    }

    /// Drops expired revocations from memory and the store.
    public func compact() async throws -> Int {
        let now = clock.now()
        let memory = revocations.compact(now: now)
        do {
            return try await store.compact(now: now - configuration.leeway) + memory
        } catch {
            throw noteStoreFailure(error, during: "compact")
        }
    }

    /// Retires and rotates keys as due; returns a description of what changed, if anything.
    public func maintainKeys() async throws -> String? {
        let change = try await keyring.maintain()
        guard change != KeyLifecycle.Change() else { return nil }
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
