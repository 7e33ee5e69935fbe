import CSQLiteLoad

#if canImport(Glibc)
import Glibc
#endif

/// The raw SQLite reference for refresh rotations (issue 11 item 8): the transaction tokend
/// runs for a rotation, with its `refresh_rotated` event — the same statements, in the same
/// order, on a database with tokend's schema, WAL, `synchronous = FULL`, foreign keys on —
/// straight on libsqlite3, prepared once, in a loop. What the disk and SQLite allow one
/// rotation at a time, with nothing of tokend around it.
///
/// Two transactions (`--transaction`): `one-step` (the default), the four statements of
/// `SQLiteTokenStore.rotateIfCurrent`, which tokend runs whenever it knows the family (every
/// rotation of the benchmark); `read-decide`, the seven of `updateRefreshToken` for a
/// `.rotate` decision (read the token and its family, spend, check the successor is new,
/// insert, note the access token, append the event), tokend's path for a token it has not
/// seen.
///
/// The schema is copied from a database tokend created (`--schema-from`, read only: every
/// `CREATE` in its `sqlite_master` and its `application_id`) into a new file (`--db`), which
/// should be on the same file system as tokend's. Each thread owns one family and its own
/// connection; the transactions are serialized by a mutex (one writer, as tokend's writer
/// connection is) rather than by SQLite's busy handler, which sleeps in steps of milliseconds.
enum SQLiteRotate {
    struct Settings {
        var schemaFrom = ""
        var database = ""
        var threads = 1
        var seconds = 5.0
        var warmup = 1.0
        /// Bytes of `successor_sealed` (tokend seals the successor pair: about 900 bytes for
        /// an ES256 access token).
        var sealedBytes = 900
        var label = "sqlite-raw"
        var transaction = Transaction.oneStep
        /// `--serve`: nil runs the loop itself; otherwise one client on `clientCore` asks for
        /// each rotation over a Unix socket (`SQLiteHandoff`).
        var serve: SQLiteHandoff.Shape?
        /// `--request-work-us`: CPU the serving thread spends on each request before the
        /// rotation (what HTTP, the grant and its cryptography cost in a real server).
        var requestWorkMicros = 0
        var clientCore: Int32?
    }

    enum Transaction: String {
        case oneStep = "one-step"
        case readDecide = "read-decide"
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func run(_ settings: Settings) throws -> RunSummary {
        try create(settings)
        if let shape = settings.serve { return try SQLiteHandoff.run(settings, shape: shape) }
        let n = settings.threads
        let barrier = Barrier(n)
        let lock = WriterLock()
        let slots = (0..<n).map { _ in Slot(ConnectionResult()) }
        let cpuBefore = processCPUSeconds()
        try Threads.runAll(n) { t in
            slots[t].value = loop(settings, family: t, lock: lock, barrier: barrier)
        }
        return RunSummary(
            settings: RunSettings(
                socket: settings.database,
                connections: n,
                seconds: settings.seconds,
                warmup: settings.warmup,
                rate: nil,
                label: settings.label
            ),
            plan: .fixed([]),
            results: slots.map(\.value),
            cpuSeconds: processCPUSeconds() - cpuBefore
        )
    }

    /// A new database at `settings.database` with tokend's schema and one family (and its
    /// first refresh token) per thread.
    static func create(_ settings: Settings) throws {
        for suffix in ["", "-wal", "-shm"] { unlink(settings.database + suffix) }
        let source = try Connection(settings.schemaFrom, flags: SQLITE_OPEN_READONLY)
        var ddl: [String] = []
        try source.query(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        ) { statement in
            ddl.append(String(cString: sqlite3_column_text(statement, 0)))
        }
        var applicationID: Int64 = 0
        try source.query("PRAGMA application_id") { applicationID = sqlite3_column_int64($0, 0) }
        guard !ddl.isEmpty else { throw Failure(description: "\(settings.schemaFrom) holds no schema") }

        let db = try Connection(settings.database, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        try db.execute("PRAGMA journal_mode = WAL")
        try db.execute("PRAGMA application_id = \(applicationID)")
        try db.execute("BEGIN")
        for statement in ddl { try db.execute(statement) }
        let now = unixTime()
        for t in 0..<settings.threads {
            try db.execute(
                """
                INSERT INTO refresh_families (id, subject, client_id, scope, dialect, created_at, expires_at)
                VALUES ('\(familyID(t))', 'load-refresh-\(t)', 'tokend-load', 'read write', 'native', \(now), \(now + 2_592_000))
                """
            )
            let insert = try db.prepare(
                "INSERT INTO refresh_tokens (hash, family_id, state, created_at) VALUES (?, ?, 'active', ?)"
            )
            try insert.blob(1, firstHash(t))
            try insert.text(2, familyID(t))
            sqlite3_bind_double(insert.handle, 3, now)
            try insert.done()
        }
        try db.execute("COMMIT")
    }

    static func familyID(_ t: Int) -> String { "ref-family-\(t)" }

    static func firstHash(_ t: Int) -> [UInt8] {
        var hash = [UInt8](repeating: 0, count: 32)
        withUnsafeBytes(of: UInt64(t + 1).bigEndian) { hash.replaceSubrange(0..<8, with: $0) }
        return hash
    }

    private static func loop(
        _ settings: Settings,
        family t: Int,
        lock: WriterLock,
        barrier: Barrier
    ) -> ConnectionResult {
        var result = ConnectionResult()
        let rotation: Rotation
        do {
            rotation = try Rotation(settings, family: t)
        } catch {
            result.ioErrors += 1
            result.firstError = "\(error)"
            barrier.wait()
            return result
        }
        result.latencies.reserveCapacity(Int(min(20_000 * settings.seconds, 4_000_000)))
        barrier.wait()
        let window = MeasuringWindow(warmup: settings.warmup, seconds: settings.seconds)
        while true {
            let started = monotonicNanos()
            if started >= window.end { break }
            result.sent += 1
            do {
                lock.lock()
                defer { lock.unlock() }
                try rotation.rotate()
            } catch {
                result.statusErrors += 1
                result.firstError = "\(error)"
                break
            }
            result.succeeded(started: started, in: window)
        }
        return result
    }

    /// One thread's connection, statements and family.
    final class Rotation {
        let db: Connection
        let begin: Statement
        let commit: Statement
        let selectToken: Statement
        let selectFamily: Statement
        let spend: Statement
        let insertToken: Statement
        let touchFamily: Statement
        let appendEvent: Statement
        let conditionalSpend: Statement
        let transaction: Transaction
        let family: String
        let subject: String
        var current: [UInt8]
        var counter: UInt64 = 0
        let seed: UInt64
        let sealed: [UInt8]

        init(_ settings: Settings, family t: Int) throws {
            db = try Connection(settings.database, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX)
            sqlite3_busy_timeout(db.handle, 5000)
            // tokend's writer connection: synchronous = FULL, foreign keys on, untrusted schema.
            try db.execute("PRAGMA synchronous = FULL")
            try db.execute("PRAGMA foreign_keys = ON")
            try db.execute("PRAGMA trusted_schema = OFF")
            var synchronous: Int64 = 0
            try db.query("PRAGMA synchronous") { synchronous = sqlite3_column_int64($0, 0) }
            var journal = ""
            try db.query("PRAGMA journal_mode") { journal = String(cString: sqlite3_column_text($0, 0)) }
            guard synchronous == 2, journal == "wal" else {
                throw Failure(description: "expected WAL and synchronous = FULL, got \(journal) and \(synchronous)")
            }
            begin = try db.prepare("BEGIN IMMEDIATE")
            commit = try db.prepare("COMMIT")
            // The statements of SQLiteTokenStore.updateRefreshToken (.rotate) and append(_:at:_:).
            selectToken = try db.prepare("SELECT * FROM refresh_tokens WHERE hash = ?")
            selectFamily = try db.prepare("SELECT * FROM refresh_families WHERE id = ?")
            spend = try db.prepare(
                """
                UPDATE refresh_tokens SET state = ?, spent_at = ?, successor_hash = ?, successor_sealed = ?
                WHERE hash = ? AND family_id = ?
                """
            )
            insertToken = try db.prepare(
                """
                INSERT INTO refresh_tokens (hash, family_id, state, created_at, spent_at, successor_hash,
                    successor_sealed)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """
            )
            touchFamily = try db.prepare(
                """
                UPDATE refresh_families SET last_access_jti = ?,
                    last_access_expires_at = max(coalesce(last_access_expires_at, 0), ?) WHERE id = ?
                """
            )
            appendEvent = try db.prepare("INSERT INTO events (at, kind, subject, detail) VALUES (?, ?, ?, ?)")
            // The spend of SQLiteTokenStore.rotateIfCurrent: only an active token of an open family.
            conditionalSpend = try db.prepare(
                """
                UPDATE refresh_tokens SET state = 'spent', spent_at = ?, successor_hash = ?, successor_sealed = ?
                WHERE hash = ? AND family_id = ? AND state = 'active' AND EXISTS (
                    SELECT 1 FROM refresh_families
                    WHERE id = ? AND revoked_at IS NULL AND expires_at > ? AND created_at > ?)
                """
            )
            transaction = settings.transaction
            family = familyID(t)
            subject = "load-refresh-\(t)"
            current = firstHash(t)
            seed = UInt64(t + 1) << 40
            var bytes = [UInt8](repeating: 0, count: settings.sealedBytes)
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 131 &+ t) }
            sealed = bytes
        }

        /// The next successor hash: distinct per thread and rotation, no RNG cost.
        private func nextHash() -> [UInt8] {
            counter += 1
            var hash = [UInt8](repeating: 0xA5, count: 32)
            withUnsafeBytes(of: (seed | counter).bigEndian) { hash.replaceSubrange(0..<8, with: $0) }
            return hash
        }

        func rotate() throws {
            let now = unixTime()
            let successor = nextHash()
            let jti = "jti-\(seed | counter)-aaaaaaaaaaaaaa"
            try begin.done()
            do {
                if transaction == .oneStep {
                    try rotateInOneStep(now: now, successor: successor, jti: jti)
                    try commit.done()
                    current = successor
                    return
                }
                // Read the presented token and its family (all columns, as tokend decodes rows).
                var familyID = ""
                try selectToken.blob(1, current)
                try selectToken.rows { familyID = String(cString: sqlite3_column_text($0, 1)) }
                guard familyID == family else { throw Failure(description: "token not found in \(family)") }
                var subject = ""
                try selectFamily.text(1, familyID)
                try selectFamily.rows { subject = String(cString: sqlite3_column_text($0, 1)) }
                // Spend it.
                try spend.text(1, "spent")
                sqlite3_bind_double(spend.handle, 2, now)
                try spend.blob(3, successor)
                try spend.blob(4, sealed)
                try spend.blob(5, current)
                try spend.text(6, family)
                try spend.done()
                guard sqlite3_changes(db.handle) == 1 else { throw Failure(description: "spent no token") }
                // The successor must not exist, then is inserted.
                var exists = false
                try selectToken.blob(1, successor)
                try selectToken.rows { _ in exists = true }
                guard !exists else { throw Failure(description: "successor exists") }
                try insertNoteAndAppend(now: now, successor: successor, jti: jti, subject: subject)
                try commit.done()
            } catch {
                _ = sqlite3_exec(db.handle, "ROLLBACK", nil, nil, nil)
                throw error
            }
            current = successor
        }

        /// rotateIfCurrent's statements: the conditional spend, the successor, the family's
        /// newest access token, the event (the subject comes from memory, as in tokend).
        private func rotateInOneStep(now: Double, successor: [UInt8], jti: String) throws {
            sqlite3_bind_double(conditionalSpend.handle, 1, now)
            try conditionalSpend.blob(2, successor)
            try conditionalSpend.blob(3, sealed)
            try conditionalSpend.blob(4, current)
            try conditionalSpend.text(5, family)
            try conditionalSpend.text(6, family)
            sqlite3_bind_double(conditionalSpend.handle, 7, now)
            sqlite3_bind_double(conditionalSpend.handle, 8, -1)
            try conditionalSpend.done()
            guard sqlite3_changes(db.handle) == 1 else { throw Failure(description: "spent no token") }
            try insertNoteAndAppend(now: now, successor: successor, jti: jti, subject: subject)
        }

        /// The statements both transactions end with: the successor, the family's newest
        /// access token, the `refresh_rotated` event.
        private func insertNoteAndAppend(now: Double, successor: [UInt8], jti: String, subject: String) throws {
            try insertToken.blob(1, successor)
            try insertToken.text(2, family)
            try insertToken.text(3, "active")
            sqlite3_bind_double(insertToken.handle, 4, now)
            sqlite3_bind_null(insertToken.handle, 5)
            sqlite3_bind_null(insertToken.handle, 6)
            sqlite3_bind_null(insertToken.handle, 7)
            try insertToken.done()
            try touchFamily.text(1, jti)
            sqlite3_bind_double(touchFamily.handle, 2, now + 3600)
            try touchFamily.text(3, family)
            try touchFamily.done()
            try appendEvent.double(1, now)
            try appendEvent.text(2, "refresh_rotated")
            try appendEvent.text(3, subject)
            try appendEvent.text(4, "family=\(family) access_jti=\(jti)")
            try appendEvent.done()
        }
    }

    /// A pthread mutex: the one-writer discipline of tokend's GRDB writer queue.
    private final class WriterLock: @unchecked Sendable {
        // @unchecked Sendable: the mutex is only used through pthread_mutex_lock/unlock.
        private let mutex: UnsafeMutablePointer<pthread_mutex_t>
        init() {
            mutex = .allocate(capacity: 1)
            pthread_mutex_init(mutex, nil)
        }
        deinit {
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
        }
        func lock() { pthread_mutex_lock(mutex) }
        func unlock() { pthread_mutex_unlock(mutex) }
    }

    /// One sqlite3 handle, closed on deinit.
    final class Connection {
        let handle: OpaquePointer
        let path: String

        init(_ path: String, flags: Int32) throws {
            var handle: OpaquePointer?
            let status = sqlite3_open_v2(path, &handle, flags, nil)
            guard status == SQLITE_OK, let handle else {
                if let handle { sqlite3_close_v2(handle) }
                throw Failure(description: "cannot open \(path): \(String(cString: sqlite3_errstr(status)))")
            }
            self.handle = handle
            self.path = path
        }

        deinit { sqlite3_close_v2(handle) }

        func error(_ what: String) -> Failure {
            Failure(description: "\(what) on \(path): \(String(cString: sqlite3_errmsg(handle)))")
        }

        func execute(_ sql: String) throws {
            guard sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else { throw error("executing SQL") }
        }

        func prepare(_ sql: String) throws -> Statement {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK,
                let statement
            else { throw error("preparing SQL") }
            return Statement(statement, connection: self)
        }

        func query(_ sql: String, _ row: (OpaquePointer) -> Void) throws {
            try prepare(sql).rows(row)
        }
    }

    /// A prepared statement, reset after each use, finalized on deinit.
    final class Statement {
        let handle: OpaquePointer
        unowned let connection: Connection

        init(_ handle: OpaquePointer, connection: Connection) {
            self.handle = handle
            self.connection = connection
        }

        deinit { sqlite3_finalize(handle) }

        func text(_ index: Int32, _ value: String) throws {
            var value = value
            let status = value.withUTF8 { tokend_load_bind_text(handle, index, $0.baseAddress, Int32($0.count)) }
            guard status == SQLITE_OK else { throw connection.error("binding") }
        }

        func blob(_ index: Int32, _ value: [UInt8]) throws {
            let status = value.withUnsafeBytes { tokend_load_bind_blob(handle, index, $0.baseAddress, Int32($0.count)) }
            guard status == SQLITE_OK else { throw connection.error("binding") }
        }

        func double(_ index: Int32, _ value: Double) throws {
            guard sqlite3_bind_double(handle, index, value) == SQLITE_OK else { throw connection.error("binding") }
        }

        /// Steps through every row, then resets.
        func rows(_ row: (OpaquePointer) -> Void) throws {
            defer { sqlite3_reset(handle) }
            while true {
                switch sqlite3_step(handle) {
                case SQLITE_ROW: row(handle)
                case SQLITE_DONE: return
                default: throw connection.error("stepping")
                }
            }
        }

        /// Runs a statement that returns no rows, then resets.
        func done() throws {
            defer { sqlite3_reset(handle) }
            guard sqlite3_step(handle) == SQLITE_DONE else { throw connection.error("stepping") }
        }
    }
}
