public import Atomics
public import JOSE
public import Logging
import Synchronization
import TokenCrypto
public import TokenStore

/// An immutable view of the keyring, swapped atomically on every change so the hot path
/// reads it without a lock.
public final class KeyringSnapshot: AtomicReference, Sendable {
    public let document: KeyringDocument
    /// Signs with the current key.
    public let signer: JWSSigner
    /// next, current and previous keys, by kid.
    public let keySet: KeySet
    /// Kids that are revoked: their tokens are refused at once.
    public let revokedKids: Set<String>
    /// Kids whose tokens still verify (next, current, previous).
    public let verifyingKids: Set<String>
    /// `GET /.well-known/jwks.json` body and its ETag.
    public let jwks: [UInt8]
    public let etag: String
    /// Distinct for every snapshot this process makes (a check that passed against one
    /// snapshot is known to hold for as long as it is the current one).
    public let revision: UInt64

    private static let revisions = Atomic<UInt64>(0)

    init(document: KeyringDocument, keys: [String: SigningKey]) throws {
        self.document = document
        revision = KeyringSnapshot.revisions.add(1, ordering: .relaxed).newValue
        guard let current = document.keys.first(where: { $0.state == .current }), let signing = keys[current.kid] else {
            throw ServiceError.keyring("the keyring has no usable current key")
        }
        signer = JWSSigner(key: signing, kid: current.kid)
        var set = KeySet()
        var published: [JSONValue] = []
        for entry in document.keys where entry.state.verifies {
            guard let key = keys[entry.kid] else {
                throw ServiceError.keyring("key \(entry.kid) is \(entry.state.rawValue) but its file is missing")
            }
            set.add(KeySet.Entry(kid: entry.kid, key: key.verifyingKey, state: entry.state, source: "keyring"))
            if let jwk = entry.publicJWK { published.append(.object(jwk)) }
        }
        keySet = set
        revokedKids = Set(document.keys.filter { $0.state == .revoked }.map(\.kid))
        verifyingKids = Set(document.keys.filter { $0.state.verifies }.map(\.kid))
        let body = JSONValue.object(JSONObject([("keys", .array(published))])).compactBytes
        jwks = body
        etag = "\"" + String(Base64URL.encode(SHA256.hash(body)).prefix(22)) + "\""
    }
}

/// The signing keys: loads or creates them, rotates and revokes them, and publishes a
/// lock-free snapshot for signing and verification.
///
/// Every change is a transaction on the stored keyring (`KeyringStorage.update`): it is
/// decided from what is stored, under the storage's lock, not from this process's memory,
/// so several processes (nodes) sharing one storage never overwrite each other's changes;
/// two rotating at once give one rotation (the second finds a next key too young and is
/// refused, unless forced). Each transaction also adopts what it found stored, so a change
/// another process made is picked up by the next rotation, revocation, maintenance pass or
/// reload.
public actor Keyring {
    private let storage: any KeyringStorage
    private let configuration: ServiceConfiguration
    private let clock: ServiceClock
    private let logger: Logger
    private nonisolated let reference: ManagedAtomic<KeyringSnapshot>

    /// The current view; never blocks.
    public nonisolated var snapshot: KeyringSnapshot { reference.load(ordering: .acquiring) }

    /// Loads the keyring, or creates a current and a next key when the storage is empty.
    /// Several processes opening one empty storage at once create one keyring: the keys are
    /// written only if the storage is still empty under its lock, else the stored keyring is
    /// loaded.
    public init(
        storage: any KeyringStorage,
        configuration: ServiceConfiguration,
        clock: ServiceClock,
        logger: Logger
    ) async throws {
        self.storage = storage
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        var stored = try await storage.load()
        if stored.document.keys.isEmpty {
            let time = clock.now()
            let now = Keyring.date(time)
            let (current, currentKey) = try Keyring.makeEntry(configuration.signingAlgorithm, at: time)
            let (next, nextKey) = try Keyring.makeEntry(configuration.signingAlgorithm, at: time)
            var lifecycle = KeyLifecycle(entries: [])
            _ = lifecycle.bootstrap(current: current, next: next, now: now)
            let bootstrap = KeyringChange(
                document: KeyringDocument(keys: lifecycle.entries),
                newKeys: [(current.kid, currentKey), (next.kid, nextKey)]
            )
            let created = LockedBox(false)
            stored = try await storage.update { stored in
                let empty = stored.document.keys.isEmpty
                created.withLock { $0 = empty }
                return empty ? bootstrap : nil
            }
            if created.withLock({ $0 }) {
                logger.notice(
                    "generated a new keyring",
                    metadata: [
                        "current_kid": "\(current.kid)", "next_kid": "\(next.kid)",
                        "alg": "\(configuration.signingAlgorithm)",
                    ]
                )
            }
        }
        self.reference = ManagedAtomic(try Keyring.snapshot(of: stored))
    }

    /// Re-reads the stored keyring (SIGHUP), its key files too even when the document is
    /// unchanged. The old snapshot stays if the stored one is invalid, and the error says why.
    public func reload() async throws {
        _ = try await transact(writing: false, rereadKeys: true) { _ in nil }
    }

    /// Manual or scheduled rotation of the stored keyring; refused while unsafe unless
    /// `force`.
    public func rotate(force: Bool) async throws -> KeyLifecycle.Change {
        let publication = force ? nil : try await fleetPublication()
        let time = clock.now()
        let now = Keyring.date(time)
        let (entry, key) = try Keyring.makeEntry(configuration.signingAlgorithm, at: time)
        let jwksMaxAge = configuration.jwksMaxAge
        return try await transact(writing: true) { stored in
            var lifecycle = try Keyring.lifecycle(of: stored)
            let change = try lifecycle.rotate(
                newNext: entry,
                now: now,
                jwksMaxAge: jwksMaxAge,
                force: force,
                fleet: publication
            )
            return Decided(change: change, lifecycle: lifecycle, newKeys: [(entry.kid, key)], removedKids: [])
        }
    }

    /// Emergency revocation of `kid`: its tokens are refused from now on. Revoking a key the
    /// stored keyring already has revoked changes nothing.
    public func revoke(kid: String) async throws -> KeyLifecycle.Change {
        let time = clock.now()
        let now = Keyring.date(time)
        let (entry, key) = try Keyring.makeEntry(configuration.signingAlgorithm, at: time)
        return try await transact(writing: true) { stored in
            var lifecycle = try Keyring.lifecycle(of: stored)
            let change = try lifecycle.revoke(kid: kid, newNext: entry, now: now)
            guard change.revoked != nil else { return nil }
            return Decided(
                change: change,
                lifecycle: lifecycle,
                newKeys: change.added.isEmpty ? [] : [(entry.kid, key)],
                removedKids: [kid]
            )
        }
    }

    /// Retires expired previous keys and rotates when the schedule says so and it is safe,
    /// judged from the stored keyring (a rotation another process made resets the schedule).
    public func maintain() async throws -> KeyLifecycle.Change {
        let publication = configuration.keyRotation == nil ? nil : try await fleetPublication()
        let time = clock.now()
        let now = Keyring.date(time)
        let configuration = self.configuration
        return try await transact(writing: true) { stored in
            var lifecycle = try Keyring.lifecycle(of: stored)
            var change = lifecycle.retireExpired(
                now: now,
                maxTokenLifetime: configuration.maxTokenLifetime,
                leeway: configuration.leeway
            )
            var newKeys: [(kid: String, key: SigningKey)] = []
            if let interval = configuration.keyRotation, lifecycle.rotationDue(now: now.seconds, interval: interval),
                let safeAt = lifecycle.safeRotationTime(
                    jwksMaxAge: configuration.jwksMaxAge,
                    fleet: publication,
                    now: now.seconds
                ), now.seconds >= safeAt
            {
                // Generated under the lock, only when due: maintenance runs every minute.
                let (entry, key) = try Keyring.makeEntry(configuration.signingAlgorithm, at: time)
                let rotation = try lifecycle.rotate(
                    newNext: entry,
                    now: now,
                    jwksMaxAge: configuration.jwksMaxAge,
                    force: false,
                    fleet: publication
                )
                newKeys.append((entry.kid, key))
                change.promoted = rotation.promoted
                change.demoted = rotation.demoted
                change.added = rotation.added
            }
            guard change != KeyLifecycle.Change() else { return nil }
            return Decided(change: change, lifecycle: lifecycle, newKeys: newKeys, removedKids: change.retired)
        }
    }

    /// Which nodes of a fleet publish the next key, from their heartbeats; nil without a
    /// fleet (`fleet` unset) or without a next key.
    func fleetPublication() async throws -> KeyPublication? {
        guard let fleet, let kid = snapshot.document.keys.first(where: { $0.state == .next })?.kid else {
            return nil
        }
        return try await fleet.keyPublication(kid: kid, liveWithin: FleetNode.stoppedAfter)
    }

    /// The fleet's registry, whose heartbeats tell which key each node publishes: rotation
    /// then waits for the JWKS max-age from the moment every node published the next key.
    private var fleet: (any FleetRegistry)?

    /// Makes rotation wait for every node of the fleet `registry` lists (issue 12 item 5).
    public func follow(fleet registry: any FleetRegistry) { fleet = registry }

    /// What a transaction decided to write.
    struct Decided: Sendable {
        var change: KeyLifecycle.Change
        var lifecycle: KeyLifecycle
        var newKeys: [(kid: String, key: SigningKey)]
        var removedKids: [String]
    }

    /// The stored keyring's lifecycle, refused when its invariants do not hold.
    static func lifecycle(of stored: StoredKeyring) throws -> KeyLifecycle {
        let lifecycle = KeyLifecycle(entries: stored.document.keys)
        try lifecycle.validate()
        return lifecycle
    }

    /// What one run of a transaction's closure left behind, carried out of the storage's
    /// lock: the snapshot of the keyring it found stored when another process had changed
    /// it, the change it made and the snapshot of what it wrote (built, and so validated,
    /// before anything was written), or the error it threw itself (a refusal, told apart
    /// from a storage failure).
    private struct Outcome: Sendable {
        var found: KeyringSnapshot?
        var change = KeyLifecycle.Change()
        var written: KeyringSnapshot?
        var refusal: (any Error)?
    }

    /// Runs `decide` on the stored keyring under the storage's lock and writes what it
    /// decided. Adopts the keyring as the lock left it, when it differs from this process's
    /// snapshot, even when `decide` refused (a rotation refused because another process just
    /// rotated serves that rotation's keys); with `rereadKeys`, even when only the private
    /// keys may differ. A failing storage is `unavailable` when `writing`, else its own error.
    private func transact(
        writing: Bool,
        rereadKeys: Bool = false,
        _ decide: @escaping @Sendable (StoredKeyring) throws -> Decided?
    ) async throws -> KeyLifecycle.Change {
        let known = rereadKeys ? nil : snapshot.document.serialized()
        let outcome = LockedBox(Outcome())
        var failure: (any Error)?
        do {
            _ = try await storage.update { stored in
                outcome.withLock { $0 = Outcome() }
                do {
                    // Snapshots are built here, under the lock, so their revisions follow the
                    // order of the stored states, however the awaiting callers resume.
                    if stored.document.serialized() != known {
                        let found = try Keyring.snapshot(of: stored)
                        outcome.withLock { $0.found = found }
                    }
                    guard let decided = try decide(stored) else { return nil }
                    try decided.lifecycle.validate()
                    let change = KeyringChange(
                        document: KeyringDocument(keys: decided.lifecycle.entries),
                        newKeys: decided.newKeys,
                        removedKids: decided.removedKids
                    )
                    let written = try Keyring.snapshot(of: stored.applying(change))
                    outcome.withLock {
                        $0.change = decided.change
                        $0.written = written
                    }
                    return change
                } catch {
                    outcome.withLock { $0.refusal = error }
                    throw error
                }
            }
        } catch {
            if let refusal = outcome.withLock({ $0.refusal }) {
                failure = refusal
            } else if writing {
                failure = ServiceError.unavailable("cannot write the keyring: \(error)")
            } else {
                failure = error
            }
        }
        let (found, written, change) = outcome.withLock { ($0.found, $0.written, $0.change) }
        if let fresh = failure == nil ? (written ?? found) : found, fresh.revision > snapshot.revision {
            reference.store(fresh, ordering: .releasing)
        }
        if let failure { throw failure }
        return change
    }

    /// The snapshot of a stored keyring, refused when its lifecycle's invariants do not hold
    /// or a key that should sign or verify has no private key.
    static func snapshot(of stored: StoredKeyring) throws -> KeyringSnapshot {
        try KeyLifecycle(entries: stored.document.keys).validate()
        return try KeyringSnapshot(document: stored.document, keys: stored.keys)
    }

    static func date(_ seconds: Double) -> NumericDate {
        NumericDate(integer: Int64(seconds.rounded(.down)))
    }

    /// A new key and its keyring entry; the kid is the RFC 7638 thumbprint (random for HS256).
    /// Its `created` is `time` rounded up to the whole second the keyring keeps: a key is
    /// published in the JWKS only after `time`, and promotion counts the JWKS max-age from
    /// `created`, so rounding down would let it be promoted up to a second early.
    static func makeEntry(
        _ algorithm: SignatureAlgorithm,
        at time: Double
    ) throws -> (KeyringDocument.Entry, SigningKey) {
        let created = NumericDate(integer: Int64(time.rounded(.up)))
        let key = try SigningKey.generate(algorithm)
        let kid = algorithm == .hs256 ? Base64URL.encode(SecureRandom.bytes(16)) : try key.thumbprint()
        let jwk = algorithm == .hs256 ? nil : try JWK.publicJSON(key.verifyingKey, kid: kid)
        return (
            KeyringDocument.Entry(kid: kid, algorithm: algorithm, state: .next, created: created, publicJWK: jwk), key
        )
    }
}
