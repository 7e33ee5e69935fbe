import JOSE
import Synchronization
import TokenCrypto
import TokenService
import TokenStore

/// A key directory in memory: what `KeyDirectory` keeps on disk (the document and the
/// private keys), its lock a mutex, plus a switch that makes every write fail as a full or
/// read-only disk would.
final class MemoryKeyringStorage: KeyringStorage {
    struct SaveFailure: Error, CustomStringConvertible {
        var description: String { "the key directory is read-only (MemoryKeyringStorage)" }
    }

    private struct State {
        var document = KeyringDocument(keys: [])
        var keys: [String: SigningKey] = [:]
        var saves = 0
        var failSaves = false
        var refuseLocks = false
        var refuseLoads = false
    }

    struct LockRefused: Error, CustomStringConvertible {
        var description: String { "cannot execute SELECT FOR UPDATE in a read-only transaction (MemoryKeyringStorage)" }
    }

    private let state = Mutex(State())

    init() {}

    func load() async throws -> StoredKeyring {
        try state.withLock { state in
            guard !state.refuseLoads else { throw LockRefused() }
            return StoredKeyring(document: state.document, keys: state.keys)
        }
    }

    func update(_ change: @escaping @Sendable (StoredKeyring) throws -> KeyringChange?) async throws -> StoredKeyring {
        try state.withLock { (state: inout State) throws -> StoredKeyring in
            guard !state.refuseLocks else { throw LockRefused() }
            let stored = StoredKeyring(document: state.document, keys: state.keys)
            guard let change = try change(stored) else { return stored }
            guard !state.failSaves else { throw SaveFailure() }
            state.document = change.document
            let updated = stored.applying(change)
            state.keys = updated.keys
            state.saves += 1
            return updated
        }
    }

    /// Writes `document` (and `newKeys`) as another process or a hand edit would, outside
    /// any keyring transaction's decision.
    func save(document: KeyringDocument, newKeys: [(kid: String, key: SigningKey)] = [], remove: [String] = []) {
        state.withLock { state in
            for (kid, key) in newKeys { state.keys[kid] = key }
            for kid in remove { state.keys[kid] = nil }
            state.document = document
            state.saves += 1
        }
    }

    /// While true, every write throws and changes nothing.
    var failSaves: Bool {
        get { state.withLock { $0.failSaves } }
        set { state.withLock { $0.failSaves = newValue } }
    }

    /// While true, `update` throws before it reads anything, as a database that refuses
    /// writes (a standby, read-only mode) refuses the keyring row's lock; `load` works.
    var refuseLocks: Bool {
        get { state.withLock { $0.refuseLocks } }
        set { state.withLock { $0.refuseLocks = newValue } }
    }

    /// While true, `load` throws too: the storage cannot be read at all.
    var refuseLoads: Bool {
        get { state.withLock { $0.refuseLoads } }
        set { state.withLock { $0.refuseLoads = newValue } }
    }

    /// How many saves succeeded.
    var saves: Int { state.withLock { $0.saves } }

    /// The stored document.
    var document: KeyringDocument { state.withLock { $0.document } }

    /// The stored private key of `kid`, if any.
    func key(_ kid: String) -> SigningKey? { state.withLock { $0.keys[kid] } }

    /// Kids with a stored private key.
    var storedKids: Set<String> { state.withLock { Set($0.keys.keys) } }

    /// kid → state of the stored document.
    var states: [String: KeyState] { KeyringState.of(document) }
}

enum KeyringState {
    /// kid → state of `document`.
    static func of(_ document: KeyringDocument) -> [String: KeyState] {
        Dictionary(uniqueKeysWithValues: document.keys.map { ($0.kid, $0.state) })
    }

    /// The kid in `state` (the first, when several).
    static func kid(_ state: KeyState, in document: KeyringDocument) -> String? {
        document.keys.first { $0.state == state }?.kid
    }
}
