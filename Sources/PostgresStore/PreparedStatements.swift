import NIOCore
import PostgresNIO

/// The refresh path's statements, prepared once per connection (postgres-nio caches them per
/// connection by name; each names itself, where postgres-nio's default name is built by
/// reflection on every query). Parsing and planning a rotation's data-modifying CTE again for
/// every statement cost PostgreSQL twice the CPU of its execution (pgbench at 32 clients on one
/// core: 2,788 rotations/s prepared, 936/s parsed each time); inside `rotate_batch` PL/pgSQL
/// keeps that plan per session.
enum PreparedStatements {
    /// The token with a hash and its family, both rows locked `FOR UPDATE`.
    struct LockTokenAndFamily: TokenAndFamily {
        static let name = "tokend.lock_token_and_family"
        static let sql = PostgresTokenStore.tokenAndFamilySQL(lock: true)
        var hash: ByteBuffer
    }

    /// The same without locks (the refresh pre-read).
    struct ReadTokenAndFamily: TokenAndFamily {
        static let name = "tokend.read_token_and_family"
        static let sql = PostgresTokenStore.tokenAndFamilySQL(lock: false)
        var hash: ByteBuffer
    }

    /// A rotation as one statement (`PostgresTokenStore.rotate`): answers the counts of the
    /// spent token updated, the successor inserted and the event appended.
    struct Rotate: PostgresPreparedStatement {
        static let name = "tokend.rotate"
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
    /// A batch of one-step rotations (`rotateIfCurrent`): one `CALL` of the procedure
    /// `rotate_batch` (schema v5), which commits before it answers. The arrays $1…$10 are its
    /// input rows by position, $11 its longest lock wait in milliseconds; the answer is one
    /// row: the hashes of the tokens spent to their row's successor (by this call or an earlier
    /// one).
    struct RotateBatch: PostgresPreparedStatement {
        static let name = "tokend.rotate_batch"
        static let sql = """
            CALL rotate_batch($1::bytea[], $2::text[], $3::float8[], $4::float8[], $5::bytea[],
                $6::bytea[], $7::text[], $8::float8[], $9::text[], $10::text[], $11::integer, NULL)
            """
        static let bindingDataTypes: [PostgresDataType] = [
            .byteaArray, .textArray, .float8Array, .float8Array, .byteaArray,
            .byteaArray, .textArray, .float8Array, .textArray, .textArray, .int4,
        ]
        var bindings: PostgresBindings
        func makeBindings() throws -> PostgresBindings { bindings }
        func decodeRow(_ row: PostgresRow) throws -> [ByteBuffer] {
            try row.decode([ByteBuffer].self)
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
