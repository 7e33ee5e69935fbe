import Foundation
import GRDB

/// Reading and writing rows: every statement binds its values, no value is spliced into SQL.
///
/// The statements of the refresh path go through the connection's statement cache
/// (`Database.cachedStatement`): compiled once per connection rather than on every call (GRDB
/// runs an authorizer callback for every column while SQLite compiles a statement), and their
/// rows are read by column index, in the order the SELECT names them.
extension SQLiteTokenStore {
    static func fetchFamily(id: String, _ db: Database) throws -> RefreshFamily? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(RefreshFamily.columns) FROM refresh_families WHERE id = ?"),
            arguments: [id]
        ).map(RefreshFamily.init(row:))
    }

    static func fetchToken(hash: [UInt8], _ db: Database) throws -> RefreshTokenRecord? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(RefreshTokenRecord.columns) FROM refresh_tokens WHERE hash = ?"),
            arguments: [Data(hash)]
        ).map(RefreshTokenRecord.init(row:))
    }

    static func insert(_ family: RefreshFamily, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO refresh_families (id, subject, client_id, scope, dialect, created_at, expires_at,
                    revoked_at, revoked_reason, last_access_jti, last_access_expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: [
                family.id, family.subject, family.clientID, family.scope, family.dialect, family.createdAt,
                family.expiresAt, family.revokedAt, family.revokedReason, family.lastAccessJTI,
                family.lastAccessExpiresAt,
            ]
        )
    }

    static func insert(_ token: RefreshTokenRecord, _ db: Database) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO refresh_tokens (hash, family_id, state, created_at, spent_at, successor_hash,
                    successor_sealed)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """
        )
        try DirectBinding.run(statement, db) { bind in
            try bind.blob(1, token.hash)
            try bind.text(2, token.familyID)
            try bind.text(3, token.state.rawValue)
            try bind.double(4, token.createdAt)
            try bind.double(5, token.spentAt)
            try bind.blob(6, token.successorHash)
            try bind.blob(7, token.successorSealed)
        }
    }

    /// Records the newest access token a family issued; the family's coverage never shrinks
    /// (a shorter-lived token leaves `last_access_expires_at` as it was).
    static func noteAccess(familyID: String, jti: String, expiresAt: Double, _ db: Database) throws {
        let statement = try db.cachedStatement(
            sql: """
                UPDATE refresh_families SET last_access_jti = ?,
                    last_access_expires_at = max(coalesce(last_access_expires_at, 0), ?) WHERE id = ?
                """
        )
        try DirectBinding.run(statement, db) { bind in
            try bind.text(1, jti)
            try bind.double(2, expiresAt)
            try bind.text(3, familyID)
        }
    }

    /// Ends the family `id` when it is live; returns it as it was, or nil when it is unknown
    /// or already ended (then nothing changed).
    static func endFamily(id: String, at: Double, reason: String, _ db: Database) throws -> RefreshFamily? {
        guard let family = try fetchFamily(id: id, db), family.revokedAt == nil else { return nil }
        try db.execute(
            sql: "UPDATE refresh_families SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
            arguments: [at, reason, id]
        )
        return family
    }

    static func append(_ event: StoreEvents.Draft, at: Double, _ db: Database) throws {
        let statement = try db.cachedStatement(
            sql: "INSERT INTO events (at, kind, subject, detail) VALUES (?, ?, ?, ?)"
        )
        try DirectBinding.run(statement, db) { bind in
            try bind.double(1, at)
            try bind.text(2, event.kind)
            try bind.text(3, event.subject)
            try bind.text(4, event.detail)
        }
    }

    /// The last sequence ever given to an event (0 before the first), which trimming never
    /// lowers.
    static func lastSequence(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'events'") ?? 0
    }
}

extension RefreshFamily {
    /// The columns `init(row:)` reads, in its order.
    static let columns = """
        id, subject, client_id, scope, dialect, created_at, expires_at, revoked_at, revoked_reason, \
        last_access_jti, last_access_expires_at
        """

    /// From a row of `SELECT \(columns)`.
    init(row: Row) throws {
        self.init(
            id: try row.decode(atIndex: 0),
            subject: try row.decode(atIndex: 1),
            clientID: try row.decode(atIndex: 2),
            scope: try row.decode(atIndex: 3),
            dialect: try row.decode(atIndex: 4),
            createdAt: try row.decode(atIndex: 5),
            expiresAt: try row.decode(atIndex: 6),
            revokedAt: try row.decode(atIndex: 7),
            revokedReason: try row.decode(atIndex: 8),
            lastAccessJTI: try row.decode(atIndex: 9),
            lastAccessExpiresAt: try row.decode(atIndex: 10)
        )
    }
}

extension RefreshTokenRecord {
    /// The columns `init(row:)` reads, in its order.
    static let columns = "hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed"

    /// From a row of `SELECT \(columns)`.
    init(row: Row) throws {
        let stateName: String = try row.decode(atIndex: 2)
        guard let state = State(rawValue: stateName) else {
            throw TokenStoreError.schema("a stored refresh token has the unknown state '\(stateName)'")
        }
        let hash: Data = try row.decode(atIndex: 0)
        let successorHash: Data? = try row.decode(atIndex: 5)
        let successorSealed: Data? = try row.decode(atIndex: 6)
        self.init(
            hash: [UInt8](hash),
            familyID: try row.decode(atIndex: 1),
            state: state,
            createdAt: try row.decode(atIndex: 3),
            spentAt: try row.decode(atIndex: 4),
            successorHash: successorHash.map { [UInt8]($0) },
            successorSealed: successorSealed.map { [UInt8]($0) }
        )
    }
}

extension TokenEvent {
    init(row: Row) throws {
        self.init(
            sequence: try row.decode(forColumn: "sequence"),
            at: try row.decode(forColumn: "at"),
            kind: try row.decode(forColumn: "kind"),
            subject: try row.decode(forColumn: "subject"),
            detail: try row.decode(forColumn: "detail")
        )
    }
}
