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

    /// The newest migration this binary knows.
    static var latestVersion: String { migrator.migrations.last ?? "none" }

    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1", foreignKeyChecks: .immediate) { db in
            try db.execute(sql: version1)
        }
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
}
