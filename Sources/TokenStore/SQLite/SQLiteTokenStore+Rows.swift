import Foundation
import GRDB

/// Reading and writing rows: every statement binds its values, no value is spliced into SQL.
extension SQLiteTokenStore {
    static func fetchFamily(id: String, _ db: Database) throws -> RefreshFamily? {
        try Row.fetchOne(db, sql: "SELECT * FROM refresh_families WHERE id = ?", arguments: [id])
            .map(RefreshFamily.init(row:))
    }

    static func fetchToken(hash: [UInt8], _ db: Database) throws -> RefreshTokenRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM refresh_tokens WHERE hash = ?", arguments: [Data(hash)])
            .map(RefreshTokenRecord.init(row:))
    }

    static func insert(_ family: RefreshFamily, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO refresh_families (id, subject, client_id, scope, dialect, created_at, expires_at,
                    revoked_at, revoked_reason, last_access_jti, last_access_expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                family.id, family.subject, family.clientID, family.scope, family.dialect, family.createdAt,
                family.expiresAt, family.revokedAt, family.revokedReason, family.lastAccessJTI,
                family.lastAccessExpiresAt,
            ]
        )
    }

    static func insert(_ token: RefreshTokenRecord, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO refresh_tokens (hash, family_id, state, created_at, spent_at, successor_hash,
                    successor_sealed)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                Data(token.hash), token.familyID, token.state.rawValue, token.createdAt, token.spentAt,
                token.successorHash.map { Data($0) }, token.successorSealed.map { Data($0) },
            ]
        )
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
        try db.execute(
            sql: "INSERT INTO events (at, kind, subject, detail) VALUES (?, ?, ?, ?)",
            arguments: [at, event.kind, event.subject, event.detail]
        )
    }

    /// The last sequence ever given to an event (0 before the first), which trimming never
    /// lowers.
    static func lastSequence(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'events'") ?? 0
    }
}

extension RefreshFamily {
    init(row: Row) throws {
        self.init(
            id: try row.decode(forColumn: "id"),
            subject: try row.decode(forColumn: "subject"),
            clientID: try row.decode(forColumn: "client_id"),
            scope: try row.decode(forColumn: "scope"),
            dialect: try row.decode(forColumn: "dialect"),
            createdAt: try row.decode(forColumn: "created_at"),
            expiresAt: try row.decode(forColumn: "expires_at"),
            revokedAt: try row.decode(forColumn: "revoked_at"),
            revokedReason: try row.decode(forColumn: "revoked_reason"),
            lastAccessJTI: try row.decode(forColumn: "last_access_jti"),
            lastAccessExpiresAt: try row.decode(forColumn: "last_access_expires_at")
        )
    }
}

extension RefreshTokenRecord {
    init(row: Row) throws {
        let stateName: String = try row.decode(forColumn: "state")
        guard let state = State(rawValue: stateName) else {
            throw TokenStoreError.schema("a stored refresh token has the unknown state '\(stateName)'")
        }
        let hash: Data = try row.decode(forColumn: "hash")
        let successorHash: Data? = try row.decode(forColumn: "successor_hash")
        let successorSealed: Data? = try row.decode(forColumn: "successor_sealed")
        self.init(
            hash: [UInt8](hash),
            familyID: try row.decode(forColumn: "family_id"),
            state: state,
            createdAt: try row.decode(forColumn: "created_at"),
            spentAt: try row.decode(forColumn: "spent_at"),
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
