public import JOSE
public import TokenCrypto

/// A keyring as it is stored: its document (`keyring.json`, or the keyring row) and the
/// private keys of every key that may still sign or verify (retired and revoked keys have
/// none).
public struct StoredKeyring: Sendable {
    public var document: KeyringDocument
    /// Private keys by kid.
    public var keys: [String: SigningKey]

    public init(document: KeyringDocument, keys: [String: SigningKey]) {
        self.document = document
        self.keys = keys
    }

    /// No key at all: a fresh key directory or database.
    public static let empty = StoredKeyring(document: KeyringDocument(keys: []), keys: [:])

    /// The stored state once `change` is written: its document, the keys it adds, without
    /// the keys it removes.
    public func applying(_ change: KeyringChange) -> StoredKeyring {
        var keys = self.keys
        for (kid, key) in change.newKeys { keys[kid] = key }
        for kid in change.removedKids { keys[kid] = nil }
        return StoredKeyring(document: change.document, keys: keys)
    }
}

/// What one keyring transaction writes: the whole new document, the private keys it adds,
/// and the kids whose private keys it deletes (retired or revoked keys never sign again).
public struct KeyringChange: Sendable {
    public var document: KeyringDocument
    public var newKeys: [(kid: String, key: SigningKey)]
    public var removedKids: [String]

    public init(document: KeyringDocument, newKeys: [(kid: String, key: SigningKey)] = [], removedKids: [String] = []) {
        self.document = document
        self.newKeys = newKeys
        self.removedKids = removedKids
    }
}

/// Where a keyring lives, shared by every process that uses it: `KeyDirectory` on one host,
/// the database for a fleet (DESIGN §10); tests use memory.
///
/// Changes are transactions on the *stored* state, never on a copy a process keeps in
/// memory: `update` reads the keyring, lets `change` decide, and writes what it returns,
/// all under one lock (a file lock, a locked row), so two processes rotating at once give
/// one rotation and neither overwrites the other.
public protocol KeyringStorage: Sendable {
    /// The stored keyring; an empty one when nothing was ever stored. Sees a state some
    /// `update` wrote completely, never half of one.
    func load() async throws -> StoredKeyring

    /// Runs `change` on the stored keyring while holding the storage's exclusive lock,
    /// durably writes the change it returns (nil: nothing to write), and returns the stored
    /// keyring as the lock leaves it.
    ///
    /// An error thrown by `change` is rethrown as it is, and nothing is written. `change`
    /// may run more than once (a storage may retry a transaction that failed to commit);
    /// only its last run counts. It runs on no particular thread and may block briefly
    /// (key generation).
    func update(_ change: @escaping @Sendable (StoredKeyring) throws -> KeyringChange?) async throws -> StoredKeyring
}
