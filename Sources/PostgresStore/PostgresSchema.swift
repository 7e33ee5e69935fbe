/// The PostgreSQL schema of the token store, as versioned, forward-only migrations (issue 11).
///
/// Everything lives in the schema `tokend` of the database the URL names (connections set
/// `search_path` to it), so tokend's tables never meet another program's. `schema_migrations`
/// records each applied version. Whichever node starts first migrates, inside one transaction
/// holding `migrationLock` (`pg_advisory_xact_lock`): nodes starting at once wait for it and
/// then find nothing left to do. A database with a version this binary does not know was
/// written by a newer tokend and is refused. A migration is never edited once released: a
/// change is a new one appended to `migrations`.
enum PostgresSchema {
    struct Migration: Sendable {
        var version: Int
        var name: String
        /// One statement each (the extended query protocol runs one at a time).
        var statements: [String]
    }

    /// The advisory lock key migrations hold: "tokend" + 1 as a 64-bit number, unlikely to
    /// meet another program's.
    static let migrationLock: Int64 = 0x746F_6B65_6E64_0001
    /// The advisory lock key a once-only job (compaction) holds while it runs.
    static let compactionLock: Int64 = 0x746F_6B65_6E64_0002

    static var latestVersion: Int { migrations.last?.version ?? 0 }

    static let migrations: [Migration] = [
        Migration(version: 1, name: "tokens, users, keys and the event log", statements: version1),
        Migration(version: 2, name: "an index for followers of the event log", statements: version2),
        Migration(version: 3, name: "one row per node: heartbeats", statements: version3),
        Migration(version: 4, name: "the transactions a node's follower waits for", statements: version4),
        Migration(version: 5, name: "refresh rotations in one round trip", statements: version5),
    ]

    /// The kinds a follower reads (`TokenEvent.Kind.followed`), as SQL: exactly the predicate
    /// of the v2 index, so the planner can use it. Frozen with v2: following another kind
    /// needs a new index in a new migration.
    static let followedKindsSQL =
        "kind IN ('revoke_access', 'subject_cutoff', 'revoke_key', 'family_revoked', 'refresh_reuse', 'keyring_changed')"

    /// The channel writers NOTIFY (payload: the new event's sequence) and followers LISTEN on.
    static let channel = "tokend_events"

    /// One row per node process (issue 12 item 3): written by its heartbeat about once a
    /// second, read by `tokenctl fleet`, `--wait` and the key rotation rule; rows of nodes not
    /// seen for `PostgresTokenStore.nodeRetention` are deleted by compaction. Times are the
    /// database's clock except `started` (the node's). `next_since` is when the node's
    /// heartbeat first reported `next_kid` (NULL: the node published it from its start).
    private static let version3: [String] = [
        """
        CREATE TABLE nodes (
            id text NOT NULL PRIMARY KEY CONSTRAINT id_is_not_empty CHECK (length(id) > 0),
            host text NOT NULL,
            pid integer NOT NULL,
            version text NOT NULL,
            started double precision NOT NULL,
            last_seen double precision NOT NULL,
            applied_transaction bigint NOT NULL,
            applied_sequence bigint NOT NULL,
            clock_offset double precision,
            next_kid text,
            next_since double precision,
            jwks_etag text NOT NULL
        )
        """
    ]

    /// A node's applied position is `applied_transaction`/`applied_sequence` less the
    /// transactions its follower saw running below it (`FollowPosition.pending`): a long
    /// transaction elsewhere in the cluster then holds back only itself, not every change
    /// committed after it began.
    private static let version4: [String] = [
        "ALTER TABLE nodes ADD COLUMN pending_transactions bigint[] NOT NULL DEFAULT '{}'"
    ]

    /// A batch of one-step rotations (`rotateIfCurrent`) as a procedure that commits its own
    /// work before it answers, so that `CALL` is the whole write: one round trip, where BEGIN,
    /// the statement and COMMIT take three, and its answer (sent after the COMMIT inside it,
    /// which returns once the commit is durable at the session's `synchronous_commit`) proves
    /// the commit. A statement in an implicit transaction would not: postgres-nio ends its rows
    /// at CommandComplete, before the Sync that commits.
    ///
    /// Each input row (the arrays by position: token hash, family, now, subject cutoff or -1,
    /// successor hash, sealed pair, access jti, its expiry, event subject, event detail) is
    /// applied only while its token is active in that family and the family may refresh then;
    /// those rows are locked first, in one order, by one join (rechecked on the newest row
    /// versions when another writer held them, as `FOR UPDATE` does under READ COMMITTED).
    /// Then each such token is spent, its successor inserted, its family's newest access token
    /// noted and a `refresh_rotated` event appended. A duplicate successor hash fails the
    /// statement, and with it everything it wrote (nothing is committed).
    ///
    /// Answers the hashes of the tokens spent to exactly their row's successor, read after the
    /// write in a snapshot of its own: those this call rotated, and those an earlier call with
    /// the same rows committed (its connection lost before the answer came, or still waiting
    /// for a lock when the caller gave up). So a call can be repeated after a lost connection,
    /// and answers as the first one would have. The counts of tokens spent, successors,
    /// families and events this call wrote must be equal; that is checked before the COMMIT.
    ///
    /// Lock waits end after `lock_wait_ms`, which the caller keeps below its own deadline, so
    /// that a call it has given up on (answering 503) cannot commit long after.
    ///
    /// Tables are named with their schema, so the procedure does not depend on the caller's
    /// `search_path` (a `SET` clause would forbid its COMMIT). It runs only outside a
    /// transaction block: PostgreSQL refuses a COMMIT inside a procedure called within one.
    /// Its arguments and answer are what running nodes have prepared: a change is a procedure
    /// of another name in a later migration.
    private static let version5: [String] = [
        """
        CREATE PROCEDURE tokend.rotate_batch(
            hashes bytea[], family_ids text[], nows double precision[], cutoffs double precision[],
            successors bytea[], sealed bytea[], jtis text[], access_expires_at double precision[],
            subjects text[], details text[], lock_wait_ms integer, INOUT rotated bytea[] DEFAULT NULL)
        LANGUAGE plpgsql AS $$
        DECLARE
            spent_count bigint;
            successor_count bigint;
            family_count bigint;
            event_count bigint;
        BEGIN
            PERFORM set_config('lock_timeout', lock_wait_ms || 'ms', true);
            WITH input AS (
                SELECT * FROM unnest(hashes, family_ids, nows, cutoffs, successors, sealed, jtis,
                    access_expires_at, subjects, details)
                    WITH ORDINALITY AS i(hash, family_id, now, cutoff, successor, sealed, jti,
                        access_expires_at, subject, detail, position)),
            current AS (
                SELECT t.hash FROM tokend.refresh_tokens t
                    JOIN tokend.refresh_families f ON f.id = t.family_id
                    JOIN input i ON i.hash = t.hash AND i.family_id = t.family_id
                WHERE t.state = 'active' AND f.revoked_at IS NULL AND f.expires_at > i.now
                    AND f.created_at > i.cutoff
                ORDER BY t.hash
                FOR UPDATE OF t, f),
            spent AS (
                UPDATE tokend.refresh_tokens t SET state = 'spent', spent_at = i.now,
                    successor_hash = i.successor, successor_sealed = i.sealed
                FROM input i
                WHERE t.hash = i.hash AND t.hash IN (SELECT hash FROM current)
                RETURNING t.hash),
            successor AS (
                INSERT INTO tokend.refresh_tokens (hash, family_id, state, created_at)
                SELECT i.successor, i.family_id, 'active', i.now FROM input i JOIN spent s ON s.hash = i.hash
                RETURNING 1),
            family AS (
                UPDATE tokend.refresh_families f SET last_access_jti = i.jti,
                    last_access_expires_at = greatest(coalesce(f.last_access_expires_at, 0), i.access_expires_at)
                FROM input i JOIN spent s ON s.hash = i.hash
                WHERE f.id = i.family_id
                RETURNING 1),
            event AS (
                INSERT INTO tokend.events (at, kind, subject, detail)
                SELECT i.now, 'refresh_rotated', i.subject, i.detail FROM input i JOIN spent s ON s.hash = i.hash
                ORDER BY i.position
                RETURNING 1)
            SELECT (SELECT count(*) FROM spent), (SELECT count(*) FROM successor),
                (SELECT count(*) FROM family), (SELECT count(*) FROM event)
            INTO spent_count, successor_count, family_count, event_count;
            -- Not reachable: a duplicate successor fails the statement. Checked before the
            -- COMMIT, so that a batch that wrote otherwise is rolled back, not acknowledged.
            IF successor_count <> spent_count OR family_count <> spent_count
                OR event_count <> spent_count THEN
                RAISE EXCEPTION 'a rotation batch wrote % successors, % families, % events for % tokens',
                    successor_count, family_count, event_count, spent_count;
            END IF;
            SELECT coalesce(array_agg(t.hash), '{}') INTO rotated
            FROM tokend.refresh_tokens t
                JOIN unnest(hashes, family_ids, successors) AS i(hash, family_id, successor)
                    ON t.hash = i.hash AND t.family_id = i.family_id
            WHERE t.successor_hash = i.successor;
            COMMIT;
        END
        $$
        """
    ]

    /// Followers read the events that change other nodes' memory by (transaction, sequence)
    /// (`FollowCursor`): a partial index over those kinds only, so refresh rotations and
    /// sign-ins, which are most of the log, add no index entry.
    private static let version2: [String] = [
        """
        CREATE INDEX events_followed ON events (transaction_id, sequence)
            WHERE kind IN ('revoke_access', 'subject_cutoff', 'revoke_key', 'family_revoked', 'refresh_reuse', 'keyring_changed')
        """
    ]

    /// The same tables as the SQLite store (times are seconds since 1970 as `double precision`,
    /// hashes `bytea`), plus:
    /// - `events.transaction_id`: the writing transaction (`pg_current_xact_id()`), so a reader
    ///   can tell which events are final (every transaction below the snapshot's xmin has ended)
    ///   when sequences commit out of order;
    /// - `keyring` (one row, locked by every keyring change) and `signing_keys` (private keys
    ///   sealed under the key-encryption key; never a usable private key);
    /// - `rate_windows`: fixed-window counters the whole fleet shares.
    private static let version1: [String] = [
        """
        CREATE TABLE refresh_families (
            id text NOT NULL PRIMARY KEY,
            subject text NOT NULL,
            client_id text NOT NULL,
            scope text NOT NULL,
            dialect text NOT NULL,
            created_at double precision NOT NULL,
            expires_at double precision NOT NULL,
            revoked_at double precision,
            revoked_reason text,
            last_access_jti text,
            last_access_expires_at double precision
        )
        """,
        "CREATE INDEX refresh_families_by_subject ON refresh_families (subject)",
        """
        CREATE INDEX refresh_families_by_end ON refresh_families (
            (greatest(expires_at, coalesce(last_access_expires_at, expires_at))))
        """,
        """
        CREATE TABLE refresh_tokens (
            hash bytea NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
            family_id text NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
            state text NOT NULL CHECK (state IN ('active', 'spent')),
            created_at double precision NOT NULL,
            spent_at double precision,
            successor_hash bytea CHECK (successor_hash IS NULL OR length(successor_hash) = 32),
            successor_sealed bytea
        )
        """,
        "CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id)",
        """
        CREATE TABLE revoked_access_tokens (
            jti text NOT NULL PRIMARY KEY,
            subject text,
            expires_at double precision NOT NULL,
            revoked_at double precision NOT NULL,
            reason text NOT NULL
        )
        """,
        "CREATE INDEX revoked_access_tokens_by_expiry ON revoked_access_tokens (expires_at)",
        """
        CREATE TABLE subject_cutoffs (
            subject text NOT NULL PRIMARY KEY,
            not_before double precision NOT NULL,
            reason text NOT NULL
        )
        """,
        """
        CREATE TABLE revoked_keys (
            kid text NOT NULL PRIMARY KEY,
            revoked_at double precision NOT NULL,
            reason text NOT NULL
        )
        """,
        """
        CREATE TABLE events (
            sequence bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            at double precision NOT NULL,
            kind text NOT NULL,
            subject text,
            detail text NOT NULL
        )
        """,
        "CREATE INDEX events_by_time ON events (at)",
        """
        CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are append-only';
        END
        $$
        """,
        """
        CREATE TRIGGER events_are_append_only BEFORE UPDATE ON events
            FOR EACH ROW EXECUTE FUNCTION events_are_append_only()
        """,
        """
        CREATE TABLE users (
            public_id text NOT NULL PRIMARY KEY
                CONSTRAINT public_id_is_24_lowercase_hex CHECK (public_id ~ '^[0-9a-f]{24}$'),
            numeric_id bigint NOT NULL UNIQUE CONSTRAINT numeric_id_is_positive CHECK (numeric_id > 0),
            username text NOT NULL CONSTRAINT username_is_not_empty CHECK (length(username) > 0),
            email text NOT NULL UNIQUE CONSTRAINT email_is_not_empty CHECK (length(email) > 0),
            password_hash text NOT NULL
                CONSTRAINT password_hash_is_argon2_phc CHECK (left(password_hash, 7) = '$argon2'),
            status text NOT NULL CHECK (status IN ('active', 'inactive')),
            plan text NOT NULL,
            vendor text,
            scope text NOT NULL DEFAULT '[]',
            first_name text NOT NULL DEFAULT '',
            last_name text NOT NULL DEFAULT '',
            role text NOT NULL,
            avatar text NOT NULL DEFAULT '',
            permissions text NOT NULL DEFAULT '[]',
            stats text NOT NULL DEFAULT '{}',
            created_at double precision NOT NULL,
            last_login_at double precision,
            tokens_not_before double precision
        )
        """,
        "CREATE INDEX users_by_age ON users (created_at, numeric_id)",
        "CREATE INDEX users_by_status_and_age ON users (status, created_at, numeric_id)",
        """
        CREATE FUNCTION user_ids_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.public_id <> OLD.public_id OR NEW.numeric_id <> OLD.numeric_id THEN
                RAISE EXCEPTION 'user ids never change';
            END IF;
            RETURN NEW;
        END
        $$
        """,
        """
        CREATE TRIGGER user_ids_never_change BEFORE UPDATE OF public_id, numeric_id ON users
            FOR EACH ROW EXECUTE FUNCTION user_ids_never_change()
        """,
        // Numeric ids: never given twice (a rolled-back creation leaves a gap, not a reuse).
        "CREATE SEQUENCE user_numbers AS bigint MINVALUE 1",
        """
        CREATE TABLE user_identifiers (
            identifier text NOT NULL PRIMARY KEY CONSTRAINT identifier_is_not_empty CHECK (length(identifier) > 0),
            public_id text NOT NULL REFERENCES users (public_id) ON DELETE CASCADE
        )
        """,
        "CREATE INDEX user_identifiers_by_user ON user_identifiers (public_id)",
        """
        CREATE TABLE keyring (
            singleton integer NOT NULL PRIMARY KEY CHECK (singleton = 1),
            document text NOT NULL,
            changed_at double precision NOT NULL
        )
        """,
        """
        CREATE TABLE signing_keys (
            kid text NOT NULL PRIMARY KEY,
            sealed bytea NOT NULL,
            created_at double precision NOT NULL
        )
        """,
        """
        CREATE TABLE rate_windows (
            rule text NOT NULL,
            key text NOT NULL,
            window_start double precision NOT NULL,
            window_seconds double precision NOT NULL CHECK (window_seconds > 0),
            count integer NOT NULL CHECK (count >= 0),
            PRIMARY KEY (rule, key)
        )
        """,
        "CREATE INDEX rate_windows_by_end ON rate_windows ((window_start + window_seconds))",
    ]
}
