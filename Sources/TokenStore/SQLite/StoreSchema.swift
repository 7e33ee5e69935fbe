import Foundation
import GRDB

/// The SQLite schema of the token store, as versioned migrations.
///
/// A migration is never edited once released: a change is a new migration appended to
/// `migrator`. A database that has a migration this binary does not know was written by a
/// newer tokend and is refused (`TokenStoreError.Code.schema`) rather than guessed at.
enum StoreSchema {
    /// `PRAGMA application_id` of a tokend database ("tknd"), so that tokend refuses to
    /// migrate another program's SQLite file.
    static let applicationID: Int32 = 0x746B_6E64

    /// The migration that rebuilds a table (the store checks for room first).
    static let tableRebuild = "v4-refresh-tokens-in-order"

    /// Changes no table: marks a database whose refresh tokens may be keyed in issue order
    /// (`TokenStore.keysRefreshTokensInIssueOrder`), which binaries before it would not find,
    /// so that they refuse the file like any newer schema.
    static let issueOrderedKeys = "v5-refresh-keys-in-issue-order"

    /// Whether a database migrated up to `target` (nil: all) has `migration`.
    static func reaches(_ migration: String, upTo target: String?) -> Bool {
        guard let wanted = migrator.migrations.firstIndex(of: migration) else { return false }
        guard let target else { return true }
        return migrator.migrations.firstIndex(of: target).map { $0 >= wanted } ?? false
    }

    /// The newest migration this binary knows.
    static var latestVersion: String { migrator.migrations.last ?? "none" }

    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1", foreignKeyChecks: .immediate) { db in
            try db.execute(sql: version1)
        }
        migrator.registerMigration("v2", foreignKeyChecks: .immediate) { db in
            try db.execute(sql: version2)
        }
        migrator.registerMigration("v3-user-identifiers", foreignKeyChecks: .immediate) { db in
            try db.execute(sql: version3)
            try claimExistingIdentifiers(db)
        }
        migrator.registerMigration(tableRebuild, foreignKeyChecks: .immediate) { db in
            try db.execute(sql: version4)
        }
        migrator.registerMigration(issueOrderedKeys, foreignKeyChecks: .immediate) { _ in }
        return migrator
    }()

    /// Refresh families and their tokens (only SHA-256 of a refresh token is stored), access
    /// revocations, subject cutoffs, revoked keys, and the append-only event log whose
    /// AUTOINCREMENT sequence is never reused, even after old events are trimmed.
    private static let version1 = """
        PRAGMA application_id = \(applicationID);

        CREATE TABLE refresh_families (
            id TEXT NOT NULL PRIMARY KEY,
            subject TEXT NOT NULL,
            client_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            dialect TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            revoked_at REAL,
            revoked_reason TEXT,
            last_access_jti TEXT,
            last_access_expires_at REAL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX refresh_families_by_subject ON refresh_families (subject);
        CREATE INDEX refresh_families_by_end ON refresh_families (
            max(expires_at, coalesce(last_access_expires_at, expires_at)));

        CREATE TABLE refresh_tokens (
            hash BLOB NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
            family_id TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
            state TEXT NOT NULL CHECK (state IN ('active', 'spent')),
            created_at REAL NOT NULL,
            spent_at REAL,
            successor_hash BLOB CHECK (successor_hash IS NULL OR length(successor_hash) = 32),
            successor_sealed BLOB
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

        CREATE TABLE revoked_access_tokens (
            jti TEXT NOT NULL PRIMARY KEY,
            subject TEXT,
            expires_at REAL NOT NULL,
            revoked_at REAL NOT NULL,
            reason TEXT NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX revoked_access_tokens_by_expiry ON revoked_access_tokens (expires_at);

        CREATE TABLE subject_cutoffs (
            subject TEXT NOT NULL PRIMARY KEY,
            not_before REAL NOT NULL,
            reason TEXT NOT NULL
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE revoked_keys (
            kid TEXT NOT NULL PRIMARY KEY,
            revoked_at REAL NOT NULL,
            reason TEXT NOT NULL
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE events (
            sequence INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT,
            detail TEXT NOT NULL
        ) STRICT;
        CREATE INDEX events_by_time ON events (at);
        CREATE TRIGGER events_are_append_only BEFORE UPDATE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only');
        END;
        """

    /// User accounts (DESIGN §5.3, `UserStore`).
    ///
    /// - `numeric_id` comes from the one-row `user_numbers` counter, so a number is never given
    ///   twice, even after its user's row is gone (AUTOINCREMENT needs an INTEGER PRIMARY KEY,
    ///   and the primary key is the public id). Ids never change (trigger).
    /// - Usernames are unique and looked up through `lower(username)`: SQLite's built-in,
    ///   ASCII-only `lower()`, which `UserRules.usernameKey` mirrors for the bound values.
    /// - Emails arrive normalised (`UserRules.normalizedEmail`); the CHECK refuses any upper-case
    ///   ASCII letter or surrounding space that slipped past.
    /// - `scope` and `permissions` hold JSON arrays of strings, `stats` a JSON object. JSON
    ///   functions cannot be used in a CHECK while `trusted_schema` is off (SQLite 3.40 does not
    ///   mark them innocuous), so the CHECKs look at the brackets and the stores write the JSON.
    private static let version2 = """
        CREATE TABLE users (
            public_id TEXT NOT NULL PRIMARY KEY
                CONSTRAINT public_id_is_24_lowercase_hex
                CHECK (length(public_id) = 24 AND public_id NOT GLOB '*[^0-9a-f]*'),
            numeric_id INTEGER NOT NULL UNIQUE CONSTRAINT numeric_id_is_positive CHECK (numeric_id > 0),
            username TEXT NOT NULL CONSTRAINT username_is_not_empty CHECK (length(username) > 0),
            email TEXT NOT NULL UNIQUE
                CONSTRAINT email_is_normalised CHECK (length(email) > 0 AND email = lower(trim(email))),
            password_hash TEXT NOT NULL
                CONSTRAINT password_hash_is_argon2_phc CHECK (substr(password_hash, 1, 7) = '$argon2'),
            status TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
            plan TEXT NOT NULL,
            vendor TEXT,
            scope TEXT NOT NULL DEFAULT '[]'
                CONSTRAINT scope_is_json_array CHECK (substr(scope, 1, 1) = '[' AND substr(scope, -1) = ']'),
            first_name TEXT NOT NULL DEFAULT '',
            last_name TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL,
            avatar TEXT NOT NULL DEFAULT '',
            permissions TEXT NOT NULL DEFAULT '[]'
                CONSTRAINT permissions_is_json_array
                CHECK (substr(permissions, 1, 1) = '[' AND substr(permissions, -1) = ']'),
            stats TEXT NOT NULL DEFAULT '{}'
                CONSTRAINT stats_is_json_object CHECK (substr(stats, 1, 1) = '{' AND substr(stats, -1) = '}'),
            created_at REAL NOT NULL,
            last_login_at REAL,
            tokens_not_before REAL
        ) STRICT;
        CREATE UNIQUE INDEX users_by_username ON users (lower(username));
        CREATE INDEX users_by_age ON users (created_at, numeric_id);
        CREATE INDEX users_by_status_and_age ON users (status, created_at, numeric_id);
        CREATE TRIGGER user_ids_never_change BEFORE UPDATE OF public_id, numeric_id ON users
        BEGIN
            SELECT RAISE(ABORT, 'user ids never change');
        END;

        CREATE TABLE user_numbers (
            singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
            last_numeric_id INTEGER NOT NULL CHECK (last_numeric_id >= 0)
        ) STRICT;
        INSERT INTO user_numbers (singleton, last_numeric_id) VALUES (1, 0);
        """

    /// One namespace for usernames and emails (issue 10, finding 6): each row is an
    /// identifier (`UserRules.identifierKey`: NFKC, case-folded) and the one user it names, so a
    /// username can never be another user's email, nor two look-alikes two users. The primary
    /// key makes that hold whatever writes race; lookups go through it.
    private static let version3 = """
        CREATE TABLE user_identifiers (
            identifier TEXT NOT NULL PRIMARY KEY CONSTRAINT identifier_is_not_empty CHECK (length(identifier) > 0),
            public_id TEXT NOT NULL REFERENCES users (public_id) ON DELETE CASCADE
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX user_identifiers_by_user ON user_identifiers (public_id);
        """

    /// Refresh tokens in a rowid table, in the order they were issued, found by hash through
    /// the primary key's index. As a `WITHOUT ROWID` table keyed by a random hash, each
    /// rotation wrote its new row, up to 1 KiB with the sealed successor, into a random page of
    /// the whole table, and spent a row in another: pages read back, split and checkpointed
    /// one by one. In issue order the new row and the one spent next (its predecessor) are in
    /// the table's last pages, which concurrent rotations share in one group commit; the
    /// indexes (the hash, 40 bytes a row, and the family) take a page each, by key.
    private static let version4 = """
        CREATE TABLE refresh_tokens_v4 (
            hash BLOB NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
            family_id TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
            state TEXT NOT NULL CHECK (state IN ('active', 'spent')),
            created_at REAL NOT NULL,
            spent_at REAL,
            successor_hash BLOB CHECK (successor_hash IS NULL OR length(successor_hash) = 32),
            successor_sealed BLOB
        ) STRICT;
        INSERT INTO refresh_tokens_v4 (hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed)
            SELECT hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed
            FROM refresh_tokens ORDER BY created_at;
        DROP TABLE refresh_tokens;
        ALTER TABLE refresh_tokens_v4 RENAME TO refresh_tokens;
        CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
        """

    /// Gives the users of a database written before `user_identifiers` their identifiers.
    /// Where two users claim one identifier (a username that is someone's email, or two
    /// look-alike usernames), emails win over usernames and older users over newer ones: the
    /// address a mailbox owner signed up with stays theirs. The loser keeps its row and signs
    /// in by its other identifier; an event records each identifier that was not given.
    private static func claimExistingIdentifiers(_ db: Database) throws {
        let now = Date().timeIntervalSince1970
        for field in ["email", "username"] {
            // A cursor over `users` while writing `user_identifiers` and `events`: one row in
            // memory at a time, however many users there are.
            let users = try Row.fetchCursor(
                db,
                sql: "SELECT public_id, \(field) AS value FROM users ORDER BY created_at, numeric_id"
            )
            while let user = try users.next() {
                let publicID: String = user["public_id"]
                let key = UserRules.identifierKey(user["value"])
                guard !key.isEmpty else { continue }
                try db.execute(
                    sql: "INSERT OR IGNORE INTO user_identifiers (identifier, public_id) VALUES (?, ?)",
                    arguments: [key, publicID]
                )
                if db.changesCount == 0,
                    try String.fetchOne(
                        db,
                        sql: "SELECT public_id FROM user_identifiers WHERE identifier = ?",
                        arguments: [key]
                    ) != publicID
                {
                    try SQLiteTokenStore.append(
                        StoreEvents.Draft(
                            kind: TokenEvent.Kind.userIdentifierShadowed,
                            subject: publicID,
                            detail: "field=\(field)"
                        ),
                        at: now,
                        db
                    )
                }
            }
        }
    }
}
