import Logging
import NIOCore
import PostgresNIO
import TokenStore

/// Row reads and writes shared by the store's operations; each runs inside the caller's
/// transaction on `connection`.
extension PostgresTokenStore {
    static let tokenColumns = "hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed"
    static let familyColumns = """
        id, subject, client_id, scope, dialect, created_at, expires_at, revoked_at, revoked_reason, last_access_jti,
        last_access_expires_at
        """

    static func fetchToken(
        hash: [UInt8],
        lock: Bool,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> RefreshTokenRecord? {
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT \(tokenColumns) FROM refresh_tokens WHERE hash = $1\(lock ? " FOR UPDATE" : "")",
                binds: binds(buffer(hash))
            ),
            logger: logger
        )
        var found: RefreshTokenRecord?
        for try await (hash, familyID, state, createdAt, spentAt, successorHash, successorSealed) in rows.decode(
            (ByteBuffer, String, String, Double, Double?, ByteBuffer?, ByteBuffer?).self
        ) {
            guard let state = RefreshTokenRecord.State(rawValue: state) else {
                throw TokenStoreError.schema("a stored refresh token has the unknown state '\(state)'")
            }
            found = RefreshTokenRecord(
                hash: bytes(hash),
                familyID: familyID,
                state: state,
                createdAt: createdAt,
                spentAt: spentAt,
                successorHash: successorHash.map(bytes),
                successorSealed: successorSealed.map(bytes)
            )
        }
        return found
    }

    static func fetchFamily(
        id: String,
        lock: Bool,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> RefreshFamily? {
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT \(familyColumns) FROM refresh_families WHERE id = $1\(lock ? " FOR UPDATE" : "")",
                binds: binds(id)
            ),
            logger: logger
        )
        var found: RefreshFamily?
        for try await (
            id, subject, clientID, scope, dialect, createdAt, expiresAt, revokedAt, revokedReason, lastAccessJTI,
            lastAccessExpiresAt
        ) in rows.decode(
            (String, String, String, String, String, Double, Double, Double?, String?, String?, Double?).self
        ) {
            found = RefreshFamily(
                id: id,
                subject: subject,
                clientID: clientID,
                scope: scope,
                dialect: dialect,
                createdAt: createdAt,
                expiresAt: expiresAt,
                revokedAt: revokedAt,
                revokedReason: revokedReason,
                lastAccessJTI: lastAccessJTI,
                lastAccessExpiresAt: lastAccessExpiresAt
            )
        }
        return found
    }

    static func insert(_ family: RefreshFamily, _ connection: PostgresConnection, logger: Logger) async throws {
        _ = try await connection.query(
            """
            INSERT INTO refresh_families (id, subject, client_id, scope, dialect, created_at, expires_at, revoked_at,
                revoked_reason, last_access_jti, last_access_expires_at)
            VALUES (\(family.id), \(family.subject), \(family.clientID), \(family.scope), \(family.dialect),
                \(family.createdAt), \(family.expiresAt), \(family.revokedAt), \(family.revokedReason),
                \(family.lastAccessJTI), \(family.lastAccessExpiresAt))
            """,
            logger: logger
        )
    }

    static func insert(_ token: RefreshTokenRecord, _ connection: PostgresConnection, logger: Logger) async throws {
        _ = try await connection.query(
            """
            INSERT INTO refresh_tokens (hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed)
            VALUES (\(buffer(token.hash)), \(token.familyID), \(token.state.rawValue), \(token.createdAt),
                \(token.spentAt), \(token.successorHash.map(buffer)), \(token.successorSealed.map(buffer)))
            """,
            logger: logger
        )
    }

    /// Ends a live family; returns its subject when it did (nil for an unknown or ended one).
    static func endFamily(
        id: String,
        at: Double,
        reason: String,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> String? {
        let rows = try await connection.query(
            """
            UPDATE refresh_families SET revoked_at = \(at), revoked_reason = \(reason)
            WHERE id = \(id) AND revoked_at IS NULL
            RETURNING subject
            """,
            logger: logger
        )
        var subject: String?
        for try await value in rows.decode(String.self) { subject = value }
        return subject
    }

    /// Appends `event` in the caller's transaction.
    static func append(
        _ event: StoreEvents.Draft,
        at: Double,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws {
        _ = try await connection.query(
            "INSERT INTO events (at, kind, subject, detail) VALUES (\(at), \(event.kind), \(event.subject), \(event.detail))",
            logger: logger
        )
    }

    /// The newest event's sequence (0 when none was ever written).
    static func lastSequence(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        var last: Int64 = 0
        for try await value in try await connection.query(
            "SELECT coalesce(max(sequence), 0) FROM events",
            logger: logger
        )
        .decode(Int64.self) {
            last = value
        }
        return last
    }

    /// How many rows a statement ending in `RETURNING 1` touched.
    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    static func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    /// Bindings for a query built with `unsafeSQL` (only for SQL text that is not a literal).
    static func binds(_ values: any PostgresDynamicTypeEncodable...) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values { bindings.append(value) }
        return bindings
    }
}
