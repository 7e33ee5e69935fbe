import NIOCore
import PostgresNIO

/// The refresh path's statements, prepared once per connection (postgres-nio names them and
/// caches them per connection): a rotation's server-side parse and plan of a data-modifying CTE
/// otherwise cost PostgreSQL twice the CPU of its execution (pgbench at 32 clients on one core:
/// 2,788 rotations/s prepared, 936/s with every statement parsed again).
enum PreparedStatements {
    /// The token with a hash and its family, both rows locked `FOR UPDATE`.
    struct LockTokenAndFamily: TokenAndFamily {
        static let sql = PostgresTokenStore.tokenAndFamilySQL(lock: true)
        var hash: ByteBuffer
    }

    /// The same without locks (the refresh pre-read).
    struct ReadTokenAndFamily: TokenAndFamily {
        static let sql = PostgresTokenStore.tokenAndFamilySQL(lock: false)
        var hash: ByteBuffer
    }

    /// A rotation as one statement (`PostgresTokenStore.rotate`): answers the counts of the
    /// spent token updated, the successor inserted and the event appended.
    struct Rotate: PostgresPreparedStatement {
        static let sql = """
            WITH spent AS (
                UPDATE refresh_tokens SET state = $1, spent_at = $2, successor_hash = $3, successor_sealed = $4
                WHERE hash = $5 AND family_id = $6
                RETURNING 1),
            successor AS (
                INSERT INTO refresh_tokens (hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed)
                SELECT $7, $8, $9, $10, $11, $12, $13
                WHERE EXISTS (SELECT 1 FROM spent)
                ON CONFLICT (hash) DO NOTHING
                RETURNING 1),
            family AS (
                UPDATE refresh_families SET last_access_jti = $14,
                    last_access_expires_at = greatest(coalesce(last_access_expires_at, 0), $15)
                WHERE id = $6 AND EXISTS (SELECT 1 FROM successor)
                RETURNING subject),
            event AS (
                INSERT INTO events (at, kind, subject, detail)
                SELECT $16, $17, CASE WHEN $18 THEN family.subject ELSE $19 END, $20
                FROM family
                RETURNING 1)
            SELECT (SELECT count(*) FROM spent), (SELECT count(*) FROM successor), (SELECT count(*) FROM event)
            """
        static let bindingDataTypes: [PostgresDataType] = [
            .text, .float8, .bytea, .bytea, .bytea, .text,
            .bytea, .text, .text, .float8, .float8, .bytea, .bytea,
            .text, .float8,
            .float8, .text, .bool, .text, .text,
        ]
        var bindings: PostgresBindings
        func makeBindings() throws -> PostgresBindings { bindings }
        func decodeRow(_ row: PostgresRow) throws -> (Int64, Int64, Int64) {
            try row.decode((Int64, Int64, Int64).self)
        }
    }
}

extension PreparedStatements {
    /// `rotateIfCurrent` in one statement, its own transaction: the token ($1) and its family
    /// ($2) locked by one join only while the token is active and the family may refresh at
    /// $3 (not ended, not expired, created after the cutoff $4) — rechecked on the newest row
    /// versions when another writer held them, as `FOR UPDATE` does under READ COMMITTED —
    /// then spent, its successor ($5, sealed pair $6) inserted, the family's newest access
    /// token ($7, expiring $8) noted and the event ($9 kind, $10 subject, $11 detail) appended.
    /// A duplicate successor hash fails the statement, and with it everything it wrote.
    /// Returns the counts of (spent, successor, event): (0, 0, 0) when it did not apply.
    struct RotateIfCurrent: PostgresPreparedStatement {
        static let sql = """
            WITH current AS (
                SELECT t.hash, t.family_id FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
                WHERE t.hash = $1 AND t.family_id = $2 AND t.state = 'active'
                    AND f.revoked_at IS NULL AND f.expires_at > $3 AND ($4::float8 IS NULL OR f.created_at > $4)
                FOR UPDATE),
            spent AS (
                UPDATE refresh_tokens SET state = 'spent', spent_at = $3, successor_hash = $5, successor_sealed = $6
                WHERE hash = (SELECT hash FROM current)
                RETURNING family_id),
            successor AS (
                INSERT INTO refresh_tokens (hash, family_id, state, created_at)
                SELECT $5, family_id, 'active', $3 FROM spent
                RETURNING 1),
            family AS (
                UPDATE refresh_families SET last_access_jti = $7,
                    last_access_expires_at = greatest(coalesce(last_access_expires_at, 0), $8)
                WHERE id = (SELECT family_id FROM spent)
                RETURNING 1),
            event AS (
                INSERT INTO events (at, kind, subject, detail)
                SELECT $3, $9, $10, $11 FROM family
                RETURNING 1)
            SELECT (SELECT count(*) FROM spent), (SELECT count(*) FROM successor), (SELECT count(*) FROM event)
            """
        static let bindingDataTypes: [PostgresDataType] = [
            .bytea, .text, .float8, .float8, .bytea, .bytea, .text, .float8, .text, .text, .text,
        ]
        var bindings: PostgresBindings
        func makeBindings() throws -> PostgresBindings { bindings }
        func decodeRow(_ row: PostgresRow) throws -> (Int64, Int64, Int64) {
            try row.decode((Int64, Int64, Int64).self)
        }
    }
}

/// A statement that reads a refresh token (and its family) by its hash: `$1`, the rows as they
/// come.
protocol TokenAndFamily: PostgresPreparedStatement where Row == PostgresRow {
    var hash: ByteBuffer { get }
}

extension TokenAndFamily {
    static var bindingDataTypes: [PostgresDataType] { [.bytea] }

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(hash)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
