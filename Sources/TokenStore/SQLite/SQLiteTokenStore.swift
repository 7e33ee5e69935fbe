import CodedErrors
import Dispatch
import Foundation
import GRDB
public import Logging
import Synchronization

/// The embedded token store: one SQLite database in WAL mode, through GRDB (DESIGN §2, §3).
///
/// - Durable before acknowledged: `PRAGMA synchronous = FULL`, so a mutation's `await`
///   returns only after its transaction committed and the WAL was synced.
/// - Every mutation and the event it appends share one `BEGIN IMMEDIATE` transaction on
///   GRDB's single writer connection, so writes are serialized, and a read inside a write
///   (`updateRefreshToken`) sees the state the previous write left. Mutations that arrive
///   while a transaction commits are applied together in the next one, each in its own
///   savepoint, and acknowledged by its one commit (group commit, see `write`).
/// - No SQLite call runs on the caller's thread: GRDB's async accessors run them on its own
///   dispatch queues, so an event loop or the cooperative pool never blocks on disk.
/// - Files are 0600 and an existing database that group or others can read is refused.
/// - A write is acknowledged only if it is in the files tokend opens at its next start: every
///   write checks, before it begins and after it commits, that the database file and its WAL
///   are still the ones opened and writable (`DatabaseFiles.checkWritable`), and fails with
///   `.unavailable` otherwise. Whether writes work is tracked here, for `health()`, and each
///   change of it is logged once.
///
/// `Sendable`: immutable after `open` but for `writeFailure` and `writeQueue`,
/// each behind its mutex; `DatabasePool` is thread-safe.
public final class SQLiteTokenStore: TokenStore {
    /// The database file.
    public let path: String
    /// How long events are kept by `compact`; nil keeps them all.
    public let eventRetention: Double?
    /// Yes once the schema has v5 (`StoreSchema.issueOrderedKeys`), which older binaries refuse
    /// (a test's database of an older version says no).
    public let keysRefreshTokensInIssueOrder: Bool

    let pool: DatabasePool
    /// Runs the WAL checkpoints the writer asks for (its WAL hook holds it unretained); nil
    /// when its connection could not be opened, and the writer checkpoints as SQLite does.
    private let checkpointer: Checkpointer?
    private let files: DatabaseFiles
    private let opened: DatabaseFiles.Opened
    private let logger: Logger
    /// Why writes fail, from the first failure until a write succeeds; nil while they work.
    private let writeFailure = FailureRecord()
    /// Mutations waiting for the writer (`write`'s group commit).
    let writeQueue = Mutex(WriteQueue())

    private init(
        path: String,
        eventRetention: Double?,
        pool: DatabasePool,
        checkpointer: Checkpointer?,
        files: DatabaseFiles,
        opened: DatabaseFiles.Opened,
        keysInIssueOrder: Bool,
        logger: Logger
    ) {
        self.keysRefreshTokensInIssueOrder = keysInIssueOrder
        self.path = path
        self.eventRetention = eventRetention
        self.pool = pool
        self.checkpointer = checkpointer
        self.files = files
        self.opened = opened
        self.logger = logger
    }

    /// Opens (creating when missing) the database at `path` and migrates it to this binary's
    /// schema.
    ///
    /// Creates a missing directory with mode 0700 and the database with 0600. Throws
    /// `.permissions` when an existing database file (or its `-wal`/`-shm`) can be accessed
    /// by group or others, naming the file and the `chmod` that fixes it; `.schema` when the
    /// file belongs to another program or a newer tokend; `.unavailable` when it cannot be
    /// opened.
    ///
    /// - Parameters:
    ///   - eventRetention: seconds of events `compact` keeps; nil (the default) keeps all.
    ///   - busyTimeout: how long a write waits for another process holding the database.
    ///   - migrating: called, before they run, with the migrations an existing database is
    ///     about to get (one rebuilds a table, which takes a while on a large database); not
    ///     called for a new database or one already up to date.
    public static func open(
        path: String,
        logger: Logger,
        eventRetention: Double? = nil,
        busyTimeout: Double = 5,
        migrating: (@Sendable (_ pending: [String]) -> Void)? = nil
    ) async throws -> SQLiteTokenStore {
        try await open(
            path: path,
            logger: logger,
            eventRetention: eventRetention,
            busyTimeout: busyTimeout,
            migratingUpTo: nil,
            migrating: migrating
        )
    }

    /// `open`, migrating up to the migration `target` only when one is given (tests build
    /// the databases of older versions this way).
    static func open(
        path: String,
        logger: Logger,
        eventRetention: Double?,
        busyTimeout: Double,
        migratingUpTo target: String?,
        migrating: (@Sendable (_ pending: [String]) -> Void)? = nil
    ) async throws -> SQLiteTokenStore {
        precondition(eventRetention.map { $0 > 0 } ?? true, "eventRetention must be positive")
        let files = try DatabaseFiles(path: path)
        let (pool, checkpointer, created) = try await offload {
            let created = try files.prepare()
            do {
                let pool = try DatabasePool(path: path, configuration: configuration(busyTimeout: busyTimeout))
                let checkpointer: Checkpointer?
                do {
                    try pool.writeWithoutTransaction(makeDurable)
                    checkpointer = openCheckpointer(path: path, busyTimeout: busyTimeout, logger: logger)
                    if let checkpointer { pool.writeWithoutTransaction { checkpointer.install(on: $0) } }
                    try files.restrictModes()
                } catch {
                    try? pool.close()
                    throw error
                }
                return (pool, checkpointer, created)
            } catch {
                throw TokenStoreError.mapping(error, operation: "opening the token database", path: path)
            }
        }
        let opened: DatabaseFiles.Opened
        let migrated: Bool
        do {
            migrated = try await migrate(pool, files: files, upTo: target, logger: logger, migrating: migrating)
            opened = try files.opened()
        } catch {
            try? await offload { try closeConnections(pool, checkpointer) }
            throw error
        }
        logger.info(
            "token store opened",
            metadata: [
                "path": "\(path)", "created": "\(created)", "schema": "\(target ?? StoreSchema.latestVersion)",
            ]
        )
        let store = SQLiteTokenStore(
            path: path,
            eventRetention: eventRetention,
            pool: pool,
            checkpointer: checkpointer,
            files: files,
            opened: opened,
            keysInIssueOrder: StoreSchema.reaches(StoreSchema.issueOrderedKeys, upTo: target),
            logger: logger
        )
        // A table rebuilt leaves its copy in the WAL, which PASSIVE checkpoints never shrink.
        if migrated { _ = await store.truncateWAL() }
        return store
    }

    /// The connection that runs the writer's checkpoints, or nil (logged) when it cannot be
    /// opened: the store then works as before, SQLite checkpointing inside commits.
    private static func openCheckpointer(path: String, busyTimeout: Double, logger: Logger) -> Checkpointer? {
        do {
            return try Checkpointer(path: path, configuration: configuration(busyTimeout: busyTimeout), logger: logger)
        } catch {
            logger.warning(
                "could not open the WAL checkpoint connection; commits checkpoint as SQLite does by default",
                metadata: ["error": "\(TokenStoreError.mapping(error, operation: "opening a connection", path: path))"]
            )
            return nil
        }
    }

    static func configuration(busyTimeout: Double) -> Configuration {
        var configuration = Configuration()
        configuration.label = "tokend.store"
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(busyTimeout)
        configuration.maximumReaderCount = 4
        // Bound values stay out of GRDB's error descriptions (they may be hashes).
        configuration.publicStatementArguments = false
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA trusted_schema = OFF")
        }
        return configuration
    }

    /// Makes the writer connection sync the WAL on every commit. GRDB turns WAL mode on
    /// with `synchronous = NORMAL` after `prepareDatabase` ran (a commit could then be lost
    /// on power failure), so this runs on the writer once the pool exists; the writer
    /// connection lives as long as the pool.
    static func makeDurable(_ db: Database) throws {
        try db.execute(sql: "PRAGMA synchronous = FULL")
        guard try Int.fetchOne(db, sql: "PRAGMA synchronous") == 2 else {
            throw TokenStoreError.unavailable("SQLite refused PRAGMA synchronous = FULL")
        }
    }

    /// Refuses another program's database or a newer schema, then applies the missing
    /// migrations (up to `target` when one is given), saying so first when the database
    /// already held a schema (`migrating`, and a log line before and after). True when it
    /// migrated such a database.
    private static func migrate(
        _ pool: DatabasePool,
        files: DatabaseFiles,
        upTo target: String?,
        logger: Logger,
        migrating: (@Sendable ([String]) -> Void)?
    ) async throws -> Bool {
        let migrator = StoreSchema.migrator
        let path = files.path
        do {
            let (applied, existing, liveBytes) = try await pool.read { db -> ([String], Bool, Int64) in
                let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let objects = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
                if applicationID != StoreSchema.applicationID, objects > 0 {
                    throw TokenStoreError.schema(
                        "\(path) is a SQLite database of another program (application_id \(applicationID)); "
                            + "tokend will not change it: point TOKEND_STORE at a new or a tokend database"
                    )
                }
                if try migrator.hasBeenSuperseded(db) {
                    let unknown = try migrator.appliedIdentifiers(db).subtracting(migrator.migrations).sorted()
                    throw TokenStoreError.schema(
                        "\(path) has schema migrations \(unknown.joined(separator: ", ")) that this tokend does "
                            + "not know (it knows up to \(StoreSchema.latestVersion)): it was written by a newer "
                            + "tokend; run that version or restore a backup"
                    )
                }
                let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                let free = try Int64.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
                let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                return (try migrator.appliedMigrations(db), objects > 0, (pages - free) * pageSize)
            }
            var pending = migrator.migrations.filter { !applied.contains($0) }
            if let target { pending = pending.firstIndex(of: target).map { Array(pending[...$0]) } ?? [] }
            // Only an existing database is announced: a new one migrates at once.
            let announced = existing && !pending.isEmpty
            let started = ContinuousClock.now
            if existing, pending.contains(StoreSchema.tableRebuild) {
                // The copy goes to the WAL, then into the file: twice the live size.
                try files.checkRoom(2 * liveBytes, for: "migrating \(path) rebuilds its refresh token table")
            }
            if announced {
                logger.notice(
                    "migrating the token database; a large one takes a while",
                    metadata: [
                        "path": "\(path)", "from": "\(applied.last ?? "none")",
                        "migrations": "\(pending.joined(separator: " "))",
                    ]
                )
                migrating?(pending)
            }
            if let target {
                try await offload { try migrator.migrate(pool, upTo: target) }
            } else {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    migrator.asyncMigrate(pool) { result in
                        continuation.resume(with: result.map { _ in () })
                    }
                }
            }
            if announced {
                let seconds = (ContinuousClock.now - started).components.seconds
                logger.notice(
                    "migrated the token database",
                    metadata: ["path": "\(path)", "schema": "\(pending.last ?? "")", "seconds": "\(seconds)"]
                )
            }
            return announced
        } catch {
            throw TokenStoreError.mapping(error, operation: "migrating the token database", path: path)
        }
    }

    // MARK: - TokenStore

    public func loadRevocations(now: Double) async throws -> RevocationSnapshot {
        try await read("loading revocations") { db in
            var snapshot = RevocationSnapshot()
            let access = try Row.fetchCursor(
                db,
                sql: "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > ?",
                arguments: [now]
            )
            while let row = try access.next() {
                snapshot.revokedAccessTokens[try row.decode(atIndex: 0)] = try row.decode(atIndex: 1)
            }
            let cutoffs = try Row.fetchCursor(db, sql: "SELECT subject, not_before FROM subject_cutoffs")
            while let row = try cutoffs.next() {
                snapshot.subjectCutoffs[try row.decode(atIndex: 0)] = try row.decode(atIndex: 1)
            }
            snapshot.revokedKeys = try Set(String.fetchAll(db, sql: "SELECT kid FROM revoked_keys"))
            let families = try Row.fetchCursor(
                db,
                sql: """
                    SELECT id, \(Self.familyEnd) FROM refresh_families
                    WHERE revoked_at IS NOT NULL AND \(Self.familyEnd) > ?
                    """,
                arguments: [now]
            )
            while let row = try families.next() {
                snapshot.revokedFamilies[try row.decode(atIndex: 0)] = try row.decode(atIndex: 1)
            }
            snapshot.cursor = try Self.lastSequence(db)
            return snapshot
        }
    }

    public func revokeAccessToken(
        jti: String,
        subject: String?,
        expiresAt: Double,
        at: Double,
        reason: String
    ) async throws {
        try await write("revoking an access token") { db in
            try db.execute(
                sql: """
                    INSERT INTO revoked_access_tokens (jti, subject, expires_at, revoked_at, reason)
                    VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (jti) DO UPDATE
                    SET expires_at = excluded.expires_at,
                        subject = coalesce(revoked_access_tokens.subject, excluded.subject)
                    WHERE excluded.expires_at > revoked_access_tokens.expires_at
                    """,
                arguments: [jti, subject, expiresAt, at, reason]
            )
            if db.changesCount > 0 {
                try Self.append(
                    StoreEvents.revokeAccess(jti: jti, subject: subject, expiresAt: expiresAt, reason: reason),
                    at: at,
                    db
                )
            }
        }
    }

    public func setSubjectCutoff(subject: String, notBefore: Double, reason: String) async throws {
        try await write("setting a subject cutoff") { db in
            try db.execute(
                sql: """
                    INSERT INTO subject_cutoffs (subject, not_before, reason) VALUES (?, ?, ?)
                    ON CONFLICT (subject) DO UPDATE
                    SET not_before = excluded.not_before, reason = excluded.reason
                    WHERE excluded.not_before > subject_cutoffs.not_before
                    """,
                arguments: [subject, notBefore, reason]
            )
            let changed = db.changesCount > 0
            // The families the cutoff covers end with it (the store then refuses their
            // rotation whatever a daemon's memory holds).
            try db.execute(
                sql: """
                    UPDATE refresh_families SET revoked_at = ?, revoked_reason = ?
                    WHERE subject = ? AND created_at <= ? AND revoked_at IS NULL
                    """,
                arguments: [notBefore, reason, subject, notBefore]
            )
            if changed {
                try Self.append(
                    StoreEvents.subjectCutoff(subject: subject, notBefore: notBefore, reason: reason),
                    at: notBefore,
                    db
                )
            }
        }
    }

    public func revokeKey(kid: String, at: Double, reason: String) async throws {
        try await write("revoking a key") { db in
            try db.execute(
                sql: "INSERT INTO revoked_keys (kid, revoked_at, reason) VALUES (?, ?, ?) ON CONFLICT (kid) DO NOTHING",
                arguments: [kid, at, reason]
            )
            if db.changesCount > 0 {
                try Self.append(StoreEvents.revokeKey(kid: kid, reason: reason), at: at, db)
            }
        }
    }

    public func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) async throws {
        try StoreValidation.checkNewFamily(family, firstToken: firstToken)
        try await write("creating a refresh family") { db in
            if try Self.fetchFamily(id: family.id, db) != nil {
                throw TokenStoreError.conflict("refresh family \(family.id) exists already")
            }
            if try Self.fetchToken(hash: firstToken.hash, db) != nil {
                throw TokenStoreError.conflict("the first refresh token of family \(family.id) exists already")
            }
            try Self.insert(family, db)
            try Self.insert(firstToken, db)
            try Self.append(StoreEvents.familyCreated(family), at: family.createdAt, db)
        }
    }

    public func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome {
        // `write` holds its body until the commit; `decide` is released before it returns.
        try await withoutActuallyEscaping(decide) { decide in
            try await rotate(hash: hash, now: now, decide)
        }
    }

    /// Four statements and no rows to decode, in the writer's next batch like every write:
    /// the spend applies only to an active token of an open family (else nothing is written
    /// and the answer is false); a duplicate successor fails the write's savepoint.
    public func rotateIfCurrent(_ rotation: ConditionalRotation) async throws -> Bool {
        let spent = rotation.spent
        try StoreValidation.checkRotation(spent: spent, successor: rotation.successor)
        let successor = rotation.successor
        guard successor.state == .active, successor.familyID == rotation.familyID else {
            throw TokenStoreError.conflict("a successor refresh token must be active, in the spent token's family")
        }
        return try await write("rotating a refresh token") { db in
            let spend = try db.cachedStatement(
                sql: """
                    UPDATE refresh_tokens SET state = 'spent', spent_at = ?, successor_hash = ?, successor_sealed = ?
                    WHERE hash = ? AND family_id = ? AND state = 'active' AND EXISTS (
                        SELECT 1 FROM refresh_families
                        WHERE id = ? AND revoked_at IS NULL AND expires_at > ? AND created_at > ?)
                    """
            )
            try DirectBinding.run(spend, db) { bind in
                try bind.double(1, rotation.now)
                try bind.blob(2, successor.hash)
                try bind.blob(3, rotation.successorSealed)
                try bind.blob(4, rotation.hash)
                try bind.text(5, rotation.familyID)
                try bind.text(6, rotation.familyID)
                try bind.double(7, rotation.now)
                try bind.double(8, rotation.subjectCutoff ?? -1)
            }
            guard db.changesCount == 1 else { return false }
            try Self.insert(successor, db)
            try Self.noteAccess(
                familyID: rotation.familyID,
                jti: rotation.accessJTI,
                expiresAt: rotation.accessExpiresAt,
                db
            )
            try Self.append(
                StoreEvents.refreshRotated(
                    familyID: rotation.familyID,
                    subject: rotation.subject,
                    accessJTI: rotation.accessJTI
                ),
                at: rotation.now,
                db
            )
            return true
        }
    }

    private func rotate<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome {
        try await write("updating a refresh token") { db in
            // Read inside the write transaction: no other write can slip in between.
            let token = try Self.fetchToken(hash: hash, db)
            let family = try token.flatMap { try Self.fetchFamily(id: $0.familyID, db) }
            let decision = try decide(token, family)
            var defaultEvent: StoreEvents.Draft?
            switch decision.change {
            case .none:
                break
            case .rotate(let spent, let successor, let accessJTI, let accessExpiresAt):
                try StoreValidation.checkRotation(spent: spent, successor: successor)
                try db.cachedStatement(
                    sql: """
                        UPDATE refresh_tokens SET state = ?, spent_at = ?, successor_hash = ?, successor_sealed = ?
                        WHERE hash = ? AND family_id = ?
                        """
                ).execute(
                    arguments: [
                        spent.state.rawValue, spent.spentAt, spent.successorHash.map { Data($0) },
                        spent.successorSealed.map { Data($0) }, Data(spent.hash), spent.familyID,
                    ]
                )
                guard db.changesCount == 1 else {
                    throw TokenStoreError.conflict(
                        "rotation in family \(spent.familyID): the spent refresh token is not stored in that family"
                    )
                }
                if try Self.fetchToken(hash: successor.hash, db) != nil {
                    throw TokenStoreError.conflict(
                        "rotation in family \(spent.familyID): the successor refresh token exists already"
                    )
                }
                try Self.insert(successor, db)
                try Self.noteAccess(familyID: spent.familyID, jti: accessJTI, expiresAt: accessExpiresAt, db)
                let subject =
                    family?.id == spent.familyID
                    ? family?.subject : try Self.fetchFamily(id: spent.familyID, db)?.subject
                defaultEvent = StoreEvents.refreshRotated(
                    familyID: spent.familyID,
                    subject: subject,
                    accessJTI: accessJTI
                )
            case .revokeFamily(let id, let reason):
                if let ended = try Self.endFamily(id: id, at: now, reason: reason, db) {
                    defaultEvent = StoreEvents.familyRevoked(familyID: id, subject: ended.subject, reason: reason)
                }
            }
            if let event = StoreEvents.forDecision(decision.event, defaultEvent: { defaultEvent }) {
                try Self.append(event, at: now, db)
            }
            return decision.outcome
        }
    }

    /// On the writer connection, outside any transaction, with the reads queued beside it
    /// (`readOnWriter`): no transaction of its own to commit.
    public func refreshToken(hash: [UInt8]) async throws -> StoredRefreshToken {
        try await readOnWriter("reading a refresh token") { db in
            let token = try Self.fetchToken(hash: hash, db)
            return StoredRefreshToken(
                token: token,
                family: try token.flatMap { try Self.fetchFamily(id: $0.familyID, db) }
            )
        }
    }

    public func revokeRefreshFamily(id: String, at: Double, reason: String) async throws {
        try await write("revoking a refresh family") { db in
            if let ended = try Self.endFamily(id: id, at: at, reason: reason, db) {
                try Self.append(
                    StoreEvents.familyRevoked(familyID: id, subject: ended.subject, reason: reason),
                    at: at,
                    db
                )
            }
        }
    }

    public func refreshFamily(id: String) async throws -> RefreshFamily? {
        try await read("reading a refresh family") { db in try Self.fetchFamily(id: id, db) }
    }

    public func events(after cursor: Int64, limit: Int) async throws -> [TokenEvent] {
        guard limit > 0 else { return [] }
        return try await read("reading events") { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT sequence, at, kind, subject, detail FROM events
                    WHERE sequence > ? ORDER BY sequence LIMIT ?
                    """,
                arguments: [cursor, limit]
            )
            var events: [TokenEvent] = []
            while let row = try rows.next() { events.append(try TokenEvent(row: row)) }
            return events
        }
    }

    public func appendEvent(kind: String, subject: String?, detail: String, at: Double) async throws {
        try await write("appending an event") { db in
            try Self.append(StoreEvents.Draft(kind: kind, subject: subject, detail: detail), at: at, db)
        }
    }

    /// Deletes in transactions of at most `compactionBatch` rows, yielding between them so
    /// that writes queued meanwhile run in between (one transaction of 1M rows stalled writes
    /// for 5 s and grew the WAL to 153 MB), then truncates the WAL.
    public func compact(now: Double) async throws -> Int {
        let batch = Self.compactionBatch
        var counts = CompactionCounts()
        counts.accessTokens = try await deleteInBatches("compacting access revocations") { db in
            try db.execute(
                sql: """
                    DELETE FROM revoked_access_tokens WHERE jti IN
                        (SELECT jti FROM revoked_access_tokens WHERE expires_at <= ? LIMIT ?)
                    """,
                arguments: [now, batch]
            )
            return (db.changesCount, 0)
        }.first
        // Families go with their refresh tokens, up to a batch of rows together (a family
        // holding more tokens than that goes alone).
        (counts.families, counts.refreshTokens) = try await deleteInBatches("compacting refresh families") { db in
            let ended = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, (SELECT count(*) FROM refresh_tokens WHERE family_id = refresh_families.id) FROM refresh_families
                    WHERE \(Self.familyEnd) <= ? LIMIT ?
                    """,
                arguments: [now, batch]
            )
            var rows = 0
            var tokens = 0
            var deleted = 0
            for row in ended {
                let id: String = try row.decode(atIndex: 0)
                let held: Int = try row.decode(atIndex: 1)
                if deleted > 0, rows + 1 + held > batch { break }
                try db.execute(sql: "DELETE FROM refresh_tokens WHERE family_id = ?", arguments: [id])
                tokens += db.changesCount
                try db.execute(sql: "DELETE FROM refresh_families WHERE id = ?", arguments: [id])
                deleted += db.changesCount
                rows += 1 + held
            }
            return (deleted, tokens)
        }
        if let retention = eventRetention {
            counts.events = try await deleteInBatches("trimming events") { db in
                try db.execute(
                    sql: "DELETE FROM events WHERE sequence IN (SELECT sequence FROM events WHERE at < ? LIMIT ?)",
                    arguments: [now - retention, batch]
                )
                return (db.changesCount, 0)
            }.first
        }
        guard counts.total > 0 else { return 0 }
        let summary = counts
        try await write("compacting") { db in try Self.append(StoreEvents.compacted(summary), at: now, db) }
        let truncated = await truncateWAL()
        logger.info(
            "token store compacted",
            metadata: [
                "access_revocations": "\(counts.accessTokens)", "families": "\(counts.families)",
                "refresh_tokens": "\(counts.refreshTokens)", "events": "\(counts.events)",
                "wal_truncated": "\(truncated)",
            ]
        )
        return counts.total
    }

    /// Rows one compaction transaction deletes at most.
    static let compactionBatch = 10_000

    /// Runs `batch` (which returns the rows it deleted, counted two ways) in one write
    /// transaction after another until one deletes nothing; returns the sums.
    private func deleteInBatches(
        _ operation: String,
        _ batch: @escaping @Sendable (Database) throws -> (Int, Int)
    ) async throws -> (first: Int, second: Int) {
        var total = (first: 0, second: 0)
        while true {
            let (first, second) = try await write(operation, batch)
            total.first += first
            total.second += second
            if first + second == 0 { return total }
            // Let the writes queued meanwhile go first.
            await Task.yield()
        }
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: copies the WAL into the database and truncates it
    /// to zero bytes, so a burst (a big compaction) does not leave a large WAL behind.
    /// Returns false when readers kept it from completing (it is tried again next time).
    private func truncateWAL() async -> Bool {
        let checkpointer = checkpointer
        do {
            if let checkpointer { return try await checkpointer.truncate() }
            return try await pool.writeWithoutTransaction { db in
                // (busy, log frames, checkpointed frames); busy = 1 when it could not finish.
                try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")?[0] == 0
            }
        } catch {
            logger.notice(
                "could not truncate the WAL",
                metadata: ["error": "\(TokenStoreError.mapping(error, operation: "checkpointing", path: path))"]
            )
            return false
        }
    }

    public func health() async -> StoreHealth {
        var health = StoreHealth()
        do {
            _ = try await read("reading") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
        } catch {
            health.reads = (error as? TokenStoreError)?.reason ?? "\(error)"
        }
        let files = files
        let opened = opened
        do {
            try await Self.offload { try files.checkWritable(opened: opened) }
            if let failure = writeFailure.current, writeFailure.probeIsDue() {
                // Failed for a reason of the store's own (disk full, …): try whether writes work
                // again rather than wait for a client's write to find out. `write` records the
                // outcome.
                let now = Date().timeIntervalSince1970
                try? await write("checking that writes work again") { db in
                    try Self.append(StoreEvents.writesResumed(after: failure), at: now, db)
                }
            }
        } catch {
            noteWriteFailure(error)
        }
        health.writes = writeFailure.current
        return health
    }

    public func close() async throws {
        let pool = pool
        let checkpointer = checkpointer
        writeFailure.fail("writing on \(path) failed: the store is closed")
        do {
            try await Self.offload { try Self.closeConnections(pool, checkpointer) }
        } catch {
            throw TokenStoreError.mapping(error, operation: "closing the token database", path: path)
        }
        logger.info("token store closed", metadata: ["path": "\(path)"])
    }

    /// Closes the checkpoint connection (giving the writer SQLite's own checkpoints back for
    /// whatever commits still come), then the pool, even when the first close failed.
    private static func closeConnections(_ pool: DatabasePool, _ checkpointer: Checkpointer?) throws {
        if let checkpointer {
            pool.writeWithoutTransaction { Checkpointer.uninstall(from: $0) }
            try? checkpointer.close()
        }
        try pool.close()
    }

    // MARK: - Access

    /// The end of everything a family covers: its refresh tokens (`expires_at`) and the
    /// access tokens it issued (`last_access_expires_at`). Same expression as the index.
    static let familyEnd = "max(expires_at, coalesce(last_access_expires_at, expires_at))"

    /// Most mutations one transaction applies (group commit).
    static let maximumBatch = 64

    /// Runs `body` on the writer connection inside a `BEGIN IMMEDIATE` transaction; returns
    /// after that transaction's commit is synced, and only if it is in the files tokend opens
    /// at its next start.
    ///
    /// Group commit: the mutations that arrive while a transaction is being applied or synced
    /// wait, in arrival order, and the next transaction applies up to `maximumBatch` of them,
    /// each in its own savepoint, each seeing the state the previous one left; one COMMIT (one
    /// sync of the WAL) then acknowledges all of them. A mutation that throws (its `decide`, a
    /// `.conflict`, a constraint) rolls back its own savepoint only and gets its own error; a
    /// failed COMMIT, a failed check of the files, or an error after which SQLite ended the
    /// transaction fails every mutation of the batch. With one writer at a time a batch is one
    /// mutation, as before.
    func write<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try await submit(operation, reading: false, body)
    }

    /// Runs `body` on the writer connection outside any transaction, in the writer's next turn,
    /// before that turn's batch of writes; returns what it read.
    ///
    /// For short reads on the refresh path: the writer connection's page cache holds what the
    /// last commits wrote, where a reader connection finds its cache invalidated by every
    /// commit and reads the pages again, and the reads queued during a commit are served in
    /// one wake-up of the writer. A read sees every write acknowledged before it was asked
    /// (the writer commits them on this connection), never a write still in flight.
    func readOnWriter<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try await submit(operation, reading: true, body)
    }

    /// Queues `body` for the writer (as a read or a write, see `enqueue`) and waits for it.
    private func submit<T: Sendable>(
        _ operation: String,
        reading: Bool,
        _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        let result = WriteResult<T>()
        let path = path
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let pending = PendingWrite(operation: operation) { db in
                result.value = try body(db)
            } finish: { outcome in
                continuation.resume(
                    with: outcome.mapError { TokenStoreError.mapping($0, operation: operation, path: path) }
                )
            }
            enqueue(pending, reading: reading)
        }
        guard let value = result.value else { preconditionFailure("a finished write or read has a result") }
        return value
    }

    /// Queues `write` (a read when `reading`), and schedules a turn on the writer unless one is
    /// pending or running (that one schedules the next when it is done).
    private func enqueue(_ write: PendingWrite, reading: Bool = false) {
        let schedule = writeQueue.withLock { queue -> Bool in
            if reading { queue.reads.append(write) } else { queue.pending.append(write) }
            guard !queue.draining else { return false }
            queue.draining = true
            return true
        }
        if schedule { scheduleBatch() }
    }

    /// One turn of GRDB's writer queue: the queued reads, then one batch of writes. Other users
    /// of the writer connection (WAL truncation, tests) take their turns in between.
    private func scheduleBatch() {
        pool.asyncWriteWithoutTransaction { [self] db in
            let (reads, batch) = writeQueue.withLock { queue -> ([PendingWrite], [PendingWrite]) in
                let reads = queue.reads
                queue.reads.removeAll()
                let batch = Array(queue.pending.prefix(Self.maximumBatch))
                queue.pending.removeFirst(batch.count)
                if batch.isEmpty && reads.isEmpty { queue.draining = false }
                if !batch.isEmpty { queue.batches += 1 }
                return (reads, batch)
            }
            for read in reads {
                read.complete(Result { try read.run(db) })
            }
            if !batch.isEmpty { commit(batch, db) }
            guard !(batch.isEmpty && reads.isEmpty) else { return }
            let more = writeQueue.withLock { queue -> Bool in
                if queue.pending.isEmpty && queue.reads.isEmpty { queue.draining = false }
                return queue.draining
            }
            if more { scheduleBatch() }
        }
    }

    /// Applies `batch` in one transaction, each mutation in its own savepoint, commits, and
    /// completes every mutation: acknowledged once the commit is synced and the files are
    /// still the ones tokend opens next, else failed.
    private func commit(_ batch: [PendingWrite], _ db: Database) {
        var applied: [PendingWrite] = []
        var refused: [(write: PendingWrite, error: any Error)] = []
        do {
            // Nothing is written to a deleted, replaced or read-only file… (checked before
            // every batch: a batch committed and then refused would be in the file without
            // its clients knowing, and a refresh token retried after its grace window would
            // then look reused)
            try files.checkWritable(opened: opened)
            try Self.apply(batch, db, applied: &applied, refused: &refused)
            // …and a commit is not acknowledged if the file went while it ran.
            try files.checkWritable(opened: opened)
        } catch {
            noteWriteFailure(error)
            for write in batch {
                let own = refused.first { $0.write === write }?.error
                write.complete(.failure(own ?? error))
            }
            return
        }
        for (write, error) in refused {
            noteWriteFailure(error)
            write.complete(.failure(error))
        }
        if !applied.isEmpty { noteWriteSucceeded() }
        for write in applied { write.complete(.success(())) }
    }

    /// One `BEGIN IMMEDIATE` transaction over `batch`: each write in its own savepoint (a
    /// write alone needs none: the transaction is its own), then COMMIT when any write stands,
    /// ROLLBACK when none does. Throws, with the transaction rolled back, when a statement of
    /// the transaction itself fails or a write's error ended the transaction (disk full, I/O:
    /// then nothing applied before stands either). The transaction's own statements come from
    /// the statement cache, like the refresh path's.
    private static func apply(
        _ batch: [PendingWrite],
        _ db: Database,
        applied: inout [PendingWrite],
        refused: inout [(write: PendingWrite, error: any Error)]
    ) throws {
        let alone = batch.count == 1
        // Each write of a batch opens and releases a savepoint inside the transaction: two
        // statements per rotation, run without GRDB's per-statement work (`DirectBinding`).
        // Prepared before the transaction begins, so that a failure leaves none open.
        let savepoint = alone ? nil : try db.cachedStatement(sql: "SAVEPOINT write")
        let release = alone ? nil : try db.cachedStatement(sql: "RELEASE SAVEPOINT write")
        try db.cachedStatement(sql: "BEGIN IMMEDIATE").execute()
        do {
            for write in batch {
                do {
                    if let savepoint { try DirectBinding.run(savepoint, db) { _ in } }
                    do {
                        try write.run(db)
                    } catch {
                        if let release, db.isInsideTransaction {
                            try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT write").execute()
                            try DirectBinding.run(release, db) { _ in }
                        }
                        throw error
                    }
                    if let release { try DirectBinding.run(release, db) { _ in } }
                    applied.append(write)
                } catch {
                    guard db.isInsideTransaction else { throw error }
                    refused.append((write, error))
                }
            }
            if applied.isEmpty {
                try db.cachedStatement(sql: "ROLLBACK").execute()
            } else {
                try db.cachedStatement(sql: "COMMIT").execute()
            }
        } catch {
            applied.removeAll()
            if db.isInsideTransaction { try? db.execute(sql: "ROLLBACK") }
            throw error
        }
    }

    /// Records why writes fail when `error` says the store cannot write (not a conflict, not
    /// a caller's error, not a cancellation); logs when that changes.
    private func noteWriteFailure(_ error: any Error) {
        let reason: String
        switch error {
        case let error as TokenStoreError where error.code != .conflict:
            reason = error.reason
        case let error as DatabaseError
        where error.resultCode != .SQLITE_CONSTRAINT
            && error.resultCode != .SQLITE_INTERRUPT:
            let mapped = TokenStoreError.mapping(error, operation: "writing", path: path)
            reason = (mapped as? TokenStoreError)?.reason ?? "writing on \(path) failed"
        default:
            return
        }
        guard writeFailure.fail(reason) != reason else { return }
        logger.error("token store writes fail; writes are refused with 503", metadata: ["reason": "\(reason)"])
    }

    /// Clears the write failure after a write committed; logs when writes work again.
    private func noteWriteSucceeded() {
        guard let previous = writeFailure.succeed() else { return }
        logger.notice("token store writes work again", metadata: ["failed_with": "\(previous)"])
    }

    /// Runs `body` in a read transaction on a reader connection (a consistent snapshot).
    func read<T: Sendable>(_ operation: String, _ body: @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw TokenStoreError.mapping(error, operation: operation, path: path)
        }
    }

    /// Runs blocking work (opening, closing) on a global dispatch queue.
    private static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
