import Dispatch
import GRDB
import GRDBSQLite
import Logging
import Synchronization

/// Copies the WAL back into the database file on a connection of its own, so that a commit's
/// caller never waits for it.
///
/// SQLite's default checkpoints inside the COMMIT that takes the WAL past 1,000 frames: that
/// commit also writes those pages into the database file and syncs it, and with one writer
/// connection every mutation queued behind it waits too. Here the writer's WAL hook (run after
/// each commit with the WAL's frame count) only asks this connection for a PASSIVE checkpoint
/// past the same 1,000 frames, and the writer carries on. A checkpoint moves only frames that
/// are already committed and synced, and SQLite coordinates it with the writer through the
/// WAL index, so nothing acknowledged depends on it. Should the checkpoints fall behind (a
/// failing or starved connection), the writer checkpoints itself past `inlineFrames`, as
/// SQLite's default would.
///
/// `Sendable`: the connection is a GRDB `DatabaseQueue`; the rest is atomic or behind a mutex.
final class Checkpointer: Sendable {
    /// SQLite's own threshold (`PRAGMA wal_autocheckpoint`'s default).
    static let frames: Int32 = 1000
    /// Where the writer stops waiting for this connection and checkpoints itself.
    static let inlineFrames: Int32 = 8 * frames

    private let connection: DatabaseQueue
    private let queue = DispatchQueue(label: "tokend.store.checkpoint", qos: .utility)
    private let scheduled = Atomic<Bool>(false)
    /// Set by `close`: no checkpoint is queued after it.
    private let closed = Atomic<Bool>(false)
    /// The WAL's frame count at which the writer asks next; only the writer's hook uses it.
    private let nextRequest = Atomic<Int32>(frames)
    private let failure = FailureRecord()
    private let logger: Logger
    private let path: String

    /// Opens the checkpoint connection on the existing database at `path` with the store's
    /// connection settings (`configuration`), and makes it sync as the writer does: a
    /// checkpoint syncs the WAL before it copies and the database file after.
    init(path: String, configuration: Configuration, logger: Logger) throws {
        var configuration = configuration
        configuration.label = "tokend.store.checkpoint"
        connection = try DatabaseQueue(path: path, configuration: configuration)
        try connection.writeWithoutTransaction(SQLiteTokenStore.makeDurable)
        self.logger = logger
        self.path = path
    }

    /// Makes the writer connection `db` ask for checkpoints instead of running them. The
    /// hook holds this object unretained: the store keeps it for as long as it keeps the pool
    /// that owns the writer connection, and only the store's own writes commit on it.
    func install(on db: Database) {
        guard let writer = db.sqliteConnection else { return }
        sqlite3_wal_hook(writer, Self.hook, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Gives the writer connection `db` SQLite's own checkpoints back.
    static func uninstall(from db: Database) {
        // Nothing to do on a connection closed already (a store closed twice).
        guard let writer = db.sqliteConnection else { return }
        sqlite3_wal_hook(writer, nil, nil)
        sqlite3_wal_autocheckpoint(writer, frames)
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)` on this connection, after the checkpoints queued
    /// before it: copies the WAL into the database and empties it, waiting (up to the busy
    /// timeout) for the writer to be between two transactions rather than holding it up.
    /// True when it completed; false when readers or the writer kept it from doing so.
    func truncate() async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [connection] in
                continuation.resume(
                    with: Result {
                        // (busy, log frames, checkpointed frames); busy = 1 when it could not finish.
                        try connection.writeWithoutTransaction { db in
                            try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")?[0] == 0
                        }
                    }
                )
            }
        }
    }

    /// Closes the checkpoint connection once a checkpoint in progress is done; none starts
    /// after.
    func close() throws {
        closed.store(true, ordering: .releasing)
        try queue.sync { try connection.close() }
    }

    /// Runs after every commit of the writer connection, on its thread.
    private static let hook:
        @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = {
            context,
            writer,
            _,
            frames in
            guard let context else { return SQLITE_OK }
            let checkpointer = Unmanaged<Checkpointer>.fromOpaque(context).takeUnretainedValue()
            let next = checkpointer.nextRequest.load(ordering: .relaxed)
            if frames < next - Checkpointer.frames {
                // The WAL started over (a checkpoint had copied all of it): ask again 1,000 on.
                checkpointer.nextRequest.store(Checkpointer.frames, ordering: .relaxed)
                return SQLITE_OK
            }
            guard frames >= next else { return SQLITE_OK }
            if frames >= Checkpointer.inlineFrames {
                // Under a steady load the WAL starts over only after a checkpoint that copies all
                // of it with no commit in between: this one, on the writer, between two commits.
                sqlite3_wal_checkpoint_v2(writer, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
                checkpointer.nextRequest.store(Checkpointer.frames, ordering: .relaxed)
                return SQLITE_OK
            }
            checkpointer.nextRequest.store(frames + Checkpointer.frames, ordering: .relaxed)
            checkpointer.schedule()
            return SQLITE_OK
        }

    /// Queues one checkpoint unless one is queued or running.
    private func schedule() {
        guard !closed.load(ordering: .acquiring), !scheduled.exchange(true, ordering: .acquiringAndReleasing) else {
            return
        }
        queue.async { [self] in
            defer { scheduled.store(false, ordering: .releasing) }
            run()
        }
    }

    private func run() {
        do {
            // One row: busy (1 when readers or another checkpoint held it back), frames in
            // the WAL, frames checkpointed. A checkpoint held back is asked again after the
            // next commit past the threshold.
            _ = try connection.writeWithoutTransaction { db in
                try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")
            }
            if let previous = failure.succeed() {
                logger.notice("WAL checkpoints work again", metadata: ["failed_with": "\(previous)"])
            }
        } catch {
            let reason = "\(TokenStoreError.mapping(error, operation: "checkpointing", path: path))"
            guard failure.fail(reason) != reason else { return }
            logger.warning(
                "WAL checkpoint failed; the writer checkpoints itself once the WAL holds \(Self.inlineFrames) frames",
                metadata: ["error": "\(reason)"]
            )
        }
    }
}
