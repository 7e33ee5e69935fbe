import Foundation
import JOSE
import Logging
import NIOCore
import PostgresNIO
public import TokenCrypto
public import TokenStore

/// The keyring of a fleet (DESIGN §10, issue 11 item 4): one `keyring` row holding the
/// document every node publishes, and each private key in `signing_keys` sealed
/// (AES-256-GCM) under the key-encryption key, so the database alone never yields a usable
/// private key. Every change is one transaction with the keyring row locked (`FOR UPDATE`):
/// two nodes rotating at once give one rotation, and a bootstrap on an empty database
/// creates one keyring however many nodes start together.
public struct PostgresKeyringStorage: KeyringStorage {
    let store: PostgresTokenStore
    /// Seals new keys; opens keys sealed under it.
    public let kek: KeyEncryptionKey
    /// KEKs that may open keys too (during a rekey rollout), never used to seal.
    public let previousKEKs: [KeyEncryptionKey]

    public init(store: PostgresTokenStore, kek: KeyEncryptionKey, previousKEKs: [KeyEncryptionKey] = []) {
        self.store = store
        self.kek = kek
        self.previousKEKs = previousKEKs
    }

    public func load() async throws -> StoredKeyring {
        let openers = [kek] + previousKEKs
        let quiet = store.quiet
        return try await store.read("loading the keyring") { connection in
            try await Self.readStored(connection, lock: false, openers: openers, logger: quiet)
        }
    }

    public func update(
        _ change: @escaping @Sendable (StoredKeyring) throws -> KeyringChange?
    ) async throws -> StoredKeyring {
        let openers = [kek] + previousKEKs
        let kek = kek
        let quiet = store.quiet
        return try await store.write("changing the keyring") { connection in
            // The row exists before anyone locks it: of nodes bootstrapping at once, one
            // inserts, the others wait on its lock and then see its keyring.
            try await connection.perform(
                """
                INSERT INTO keyring (singleton, document, changed_at) VALUES (1, '', 0)
                ON CONFLICT (singleton) DO NOTHING
                """,
                logger: quiet
            )
            let stored = try await Self.readStored(connection, lock: true, openers: openers, logger: quiet)
            guard let change = try change(stored) else { return stored }
            let now = Date().timeIntervalSince1970.rounded(.down)
            for (kid, key) in change.newKeys {
                let sealed = try kek.seal(key, kid: kid)
                try await connection.perform(
                    """
                    INSERT INTO signing_keys (kid, sealed, created_at) VALUES (\(kid), \(ByteBuffer(bytes: sealed)), \(now))
                    ON CONFLICT (kid) DO UPDATE SET sealed = excluded.sealed
                    """,
                    logger: quiet
                )
            }
            for kid in change.removedKids {
                try await connection.perform("DELETE FROM signing_keys WHERE kid = \(kid)", logger: quiet)
            }
            try await connection.perform(
                "UPDATE keyring SET document = \(change.document.serialized()), changed_at = \(now) WHERE singleton = 1",
                logger: quiet
            )
            // In the same transaction: every other node's follower reloads the keyring.
            try await PostgresTokenStore.append(
                StoreEvents.keyringChanged(change.document),
                at: now,
                connection,
                logger: quiet
            )
            return stored.applying(change)
        }
    }

    /// Seals every stored private key under `newKEK` in one transaction (the keyring row
    /// locked), opening each with this storage's KEKs; returns how many keys it re-sealed.
    /// Nodes that still run with the old KEK keep signing with the keys they hold; give them
    /// the new KEK (and the old one as the previous KEK) before their next restart.
    public func rekey(to newKEK: KeyEncryptionKey) async throws -> Int {
        let openers = [kek] + previousKEKs
        let quiet = store.quiet
        return try await store.write("re-sealing the keyring") { connection in
            let stored = try await Self.readStored(connection, lock: true, openers: openers, logger: quiet)
            for (kid, key) in stored.keys {
                try await connection.perform(
                    "UPDATE signing_keys SET sealed = \(ByteBuffer(bytes: try newKEK.seal(key, kid: kid))) WHERE kid = \(kid)",
                    logger: quiet
                )
            }
            return stored.keys.count
        }
    }

    /// The keyring row and the keys of every entry that may still sign or verify, opened and
    /// checked against their kids.
    private static func readStored(
        _ connection: PostgresConnection,
        lock: Bool,
        openers: [KeyEncryptionKey],
        logger: Logger
    ) async throws -> StoredKeyring {
        var text: String?
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT document FROM keyring WHERE singleton = 1\(lock ? " FOR UPDATE" : "")"
            ),
            logger: logger
        )
        for try await document in rows.decode(String.self) { text = document }
        guard let text, !text.isEmpty else { return .empty }
        let document: KeyringDocument
        do {
            document = try KeyringDocument.parse(Array(text.utf8))
        } catch let error as JOSEError {
            throw TokenStoreError.schema("the keyring row of the database is damaged: \(error.reason)")
        }
        var sealed: [String: [UInt8]] = [:]
        for try await (kid, box) in try await connection.query("SELECT kid, sealed FROM signing_keys", logger: logger)
            .decode((String, ByteBuffer).self)
        {
            sealed[kid] = Array(box.readableBytesView)
        }
        var keys: [String: SigningKey] = [:]
        for entry in document.keys where entry.state != .retired && entry.state != .revoked {
            guard let box = sealed[entry.kid] else {
                throw TokenStoreError.schema(
                    "key \(entry.kid) is \(entry.state.rawValue) in the keyring, but its sealed private key is missing"
                )
            }
            let key = try open(box, entry: entry, openers: openers)
            do {
                try KeyDirectory.checkThumbprint(key, entry: entry, file: "the sealed key \(entry.kid)")
            } catch {
                throw TokenStoreError.schema("\(error)")
            }
            keys[entry.kid] = key
        }
        return StoredKeyring(document: document, keys: keys)
    }

    /// Opens with the first KEK it was sealed under; the current KEK's error otherwise (it
    /// names both fingerprints).
    private static func open(
        _ sealed: [UInt8],
        entry: KeyringDocument.Entry,
        openers: [KeyEncryptionKey]
    ) throws -> SigningKey {
        var firstError: CryptoError?
        for kek in openers {
            do {
                return try kek.open(sealed, kid: entry.kid, algorithm: entry.algorithm)
            } catch let error as CryptoError where error.code == .wrongKeyEncryptionKey {
                if firstError == nil { firstError = error }
            }
        }
        // The CryptoError itself, not a store error: the database works, this node's KEK
        // does not open the key (it names both fingerprints).
        if let firstError { throw firstError }
        throw CryptoError.sealedKey("no key-encryption key opens key \(entry.kid)")
    }
}
