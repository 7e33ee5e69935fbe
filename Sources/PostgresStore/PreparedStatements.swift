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
    /// A batch of one-step rotations (`rotateIfCurrent`) in one statement, its own transaction.
    /// Each input row (the arrays $1…$10 by position: token hash, family, now, subject cutoff
    /// or -1, successor hash, sealed pair, access jti, its expiry, event subject, event detail)
    /// is applied only while its token is active in that family and the family may refresh
    /// then; those rows are locked first, in one order, by one join (rechecked on the newest
    /// row versions when another writer held them, as `FOR UPDATE` does under READ
    /// COMMITTED). Then each such token is spent, its successor inserted, its family's newest
    /// access token noted and a `refresh_rotated` event appended. A duplicate successor hash
    /// fails the statement, and with it everything it wrote. Answers the hashes it rotated,
    /// with the counts of successors, families and events written (equal to their number).
    struct RotateBatch: PostgresPreparedStatement {
        static let sql = """
            WITH input AS (
                SELECT * FROM unnest($1::bytea[], $2::text[], $3::float8[], $4::float8[], $5::bytea[],
                    $6::bytea[], $7::text[], $8::float8[], $9::text[], $10::text[])
                    WITH ORDINALITY AS i(hash, family_id, now, cutoff, successor, sealed, jti, access_expires_at,
                        subject, detail, position)),
            current AS (
                SELECT t.hash FROM refresh_tokens t
                    JOIN refresh_families f ON f.id = t.family_id
                    JOIN input i ON i.hash = t.hash AND i.family_id = t.family_id
                WHERE t.state = 'active' AND f.revoked_at IS NULL AND f.expires_at > i.now AND f.created_at > i.cutoff
                ORDER BY t.hash
                FOR UPDATE OF t, f),
            spent AS (
                UPDATE refresh_tokens t SET state = 'spent', spent_at = i.now, successor_hash = i.successor,
                    successor_sealed = i.sealed
                FROM input i
                WHERE t.hash = i.hash AND t.hash IN (SELECT hash FROM current)
                RETURNING t.hash),
            successor AS (
                INSERT INTO refresh_tokens (hash, family_id, state, created_at)
                SELECT i.successor, i.family_id, 'active', i.now FROM input i JOIN spent s ON s.hash = i.hash
                RETURNING 1),
            family AS (
                UPDATE refresh_families f SET last_access_jti = i.jti,
                    last_access_expires_at = greatest(coalesce(f.last_access_expires_at, 0), i.access_expires_at)
                FROM input i JOIN spent s ON s.hash = i.hash
                WHERE f.id = i.family_id
                RETURNING 1),
            event AS (
                INSERT INTO events (at, kind, subject, detail)
                SELECT i.now, 'refresh_rotated', i.subject, i.detail FROM input i JOIN spent s ON s.hash = i.hash
                ORDER BY i.position
                RETURNING 1)
            SELECT s.hash, (SELECT count(*) FROM successor), (SELECT count(*) FROM family),
                (SELECT count(*) FROM event)
            FROM spent s
            """
        static let bindingDataTypes: [PostgresDataType] = [
            .byteaArray, .textArray, .float8Array, .float8Array, .byteaArray,
            .byteaArray, .textArray, .float8Array, .textArray, .textArray,
        ]
        var bindings: PostgresBindings
        func makeBindings() throws -> PostgresBindings { bindings }
        func decodeRow(_ row: PostgresRow) throws -> (ByteBuffer, Int64, Int64, Int64) {
            try row.decode((ByteBuffer, Int64, Int64, Int64).self)
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
