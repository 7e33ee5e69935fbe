public import Atomics
public import JOSE
public import Logging
import Synchronization
public import TokenCrypto
public import TokenStore

/// Where the keyring lives. `KeyDirectory` is the real one; tests use memory.
public protocol KeyringStorage: Sendable {
    func load() throws -> (document: KeyringDocument, keys: [String: SigningKey])
    func save(document: KeyringDocument, newKeys: [(kid: String, key: SigningKey)], remove: [String]) throws
}

extension KeyDirectory: KeyringStorage {}

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
public actor Keyring {
    private let storage: any KeyringStorage
    private let configuration: ServiceConfiguration
    private let clock: ServiceClock
    private let logger: Logger
    private var keys: [String: SigningKey]
    private var lifecycle: KeyLifecycle
    private nonisolated let reference: ManagedAtomic<KeyringSnapshot>

    /// The current view; never blocks.
    public nonisolated var snapshot: KeyringSnapshot { reference.load(ordering: .acquiring) }

    /// Loads the keyring, or creates a current and a next key when the directory is empty.
    public init(
        storage: any KeyringStorage,
        configuration: ServiceConfiguration,
        clock: ServiceClock,
        logger: Logger
    ) throws {
        self.storage = storage
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        var (document, keys) = try storage.load()
        var lifecycle = KeyLifecycle(entries: document.keys)
        if document.keys.isEmpty {
            let now = Keyring.date(clock.now())
            let (current, currentKey) = try Keyring.makeEntry(configuration.signingAlgorithm, now: now)
            let (next, nextKey) = try Keyring.makeEntry(configuration.signingAlgorithm, now: now)
            _ = lifecycle.bootstrap(current: current, next: next, now: now)
            document = KeyringDocument(keys: lifecycle.entries)
            keys = [current.kid: currentKey, next.kid: nextKey]
            try storage.save(document: document, newKeys: [(current.kid, currentKey), (next.kid, nextKey)], remove: [])
            logger.notice(
                "generated a new keyring",
                metadata: [
                    "current_kid": "\(current.kid)", "next_kid": "\(next.kid)",
                    "alg": "\(configuration.signingAlgorithm)",
                ]
            )
        }
        try lifecycle.validate()
        self.keys = keys
        self.lifecycle = lifecycle
        self.reference = ManagedAtomic(try KeyringSnapshot(document: document, keys: keys))
    }

    /// Re-reads the key directory (SIGHUP). The old snapshot stays if the new one is invalid.
    public func reload() throws {
        let (document, keys) = try storage.load()
        let lifecycle = KeyLifecycle(entries: document.keys)
        try lifecycle.validate()
        let snapshot = try KeyringSnapshot(document: document, keys: keys)
        self.keys = keys
        self.lifecycle = lifecycle
        reference.store(snapshot, ordering: .releasing)
    }

    /// Manual or scheduled rotation; refused while unsafe unless `force`.
    public func rotate(force: Bool) throws -> KeyLifecycle.Change {
        let now = Keyring.date(clock.now())
        let (entry, key) = try Keyring.makeEntry(configuration.signingAlgorithm, now: now)
        var updated = lifecycle
        let change = try updated.rotate(newNext: entry, now: now, jwksMaxAge: configuration.jwksMaxAge, force: force)
        try commit(updated, newKeys: [(entry.kid, key)], remove: [])
        return change
    }

    /// Emergency revocation of `kid`: its tokens are refused from now on.
    public func revoke(kid: String) throws -> KeyLifecycle.Change {
        let now = Keyring.date(clock.now())
        let (entry, key) = try Keyring.makeEntry(configuration.signingAlgorithm, now: now)
        var updated = lifecycle
        let change = try updated.revoke(kid: kid, newNext: entry, now: now)
        guard change.revoked != nil else { return change }
        try commit(updated, newKeys: change.added.isEmpty ? [] : [(entry.kid, key)], remove: [kid])
        return change
    }

    /// Retires expired previous keys and rotates when the schedule says so and it is safe.
    public func maintain() throws -> KeyLifecycle.Change {
        let now = Keyring.date(clock.now())
        var updated = lifecycle
        var change = updated.retireExpired(
            now: now,
            maxTokenLifetime: configuration.maxTokenLifetime,
            leeway: configuration.leeway
        )
        var newKeys: [(kid: String, key: SigningKey)] = []
        if let interval = configuration.keyRotation, updated.rotationDue(now: now.seconds, interval: interval),
            let safeAt = updated.safeRotationTime(jwksMaxAge: configuration.jwksMaxAge), now.seconds >= safeAt
        {
            let (entry, key) = try Keyring.makeEntry(configuration.signingAlgorithm, now: now)
            let rotation = try updated.rotate(
                newNext: entry,
                now: now,
                jwksMaxAge: configuration.jwksMaxAge,
                force: false
            )
            newKeys.append((entry.kid, key))
            change.promoted = rotation.promoted
            change.demoted = rotation.demoted
            change.added = rotation.added
        }
        guard change != KeyLifecycle.Change() else { return change }
        try commit(updated, newKeys: newKeys, remove: change.retired)
        return change
    }

    private func commit(_ updated: KeyLifecycle, newKeys: [(kid: String, key: SigningKey)], remove: [String]) throws {
        try updated.validate()
        var keys = self.keys
        for (kid, key) in newKeys { keys[kid] = key }
        for kid in remove { keys[kid] = nil }
        let document = KeyringDocument(keys: updated.entries)
        let snapshot = try KeyringSnapshot(document: document, keys: keys)
        do {
            try storage.save(document: document, newKeys: newKeys, remove: remove)
        } catch {
            throw ServiceError.unavailable("cannot write the key directory: \(error)")
        }
        self.keys = keys
        self.lifecycle = updated
        reference.store(snapshot, ordering: .releasing)
    }

    static func date(_ seconds: Double) -> NumericDate {
        NumericDate(integer: Int64(seconds.rounded(.down)))
    }

    /// A new key and its keyring entry; the kid is the RFC 7638 thumbprint (random for HS256).
    static func makeEntry(
        _ algorithm: SignatureAlgorithm,
        now: NumericDate
    ) throws -> (KeyringDocument.Entry, SigningKey) {
        let key = try SigningKey.generate(algorithm)
        let kid = algorithm == .hs256 ? Base64URL.encode(SecureRandom.bytes(16)) : try key.thumbprint()
        let jwk = algorithm == .hs256 ? nil : try JWK.publicJSON(key.verifyingKey, kid: kid)
        return (KeyringDocument.Entry(kid: kid, algorithm: algorithm, state: .next, created: now, publicJWK: jwk), key)
    }
}
