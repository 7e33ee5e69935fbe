import GRDB
package import Logging
import Synchronization

/// Hooks for the package's tests: raw SQL on the writer connection, to check pragmas and to
/// damage a database on purpose. Not part of the public API.
extension SQLiteTokenStore {
    /// Executes `sql` in one write transaction.
    package func executeForTesting(_ sql: String) async throws {
        try await write("executing test SQL") { db in try db.execute(sql: sql) }
    }

    /// The first column of the first row of `sql`, read on the writer connection (where the
    /// connection's pragmas, like `synchronous`, matter).
    package func integerForTesting(_ sql: String) async throws -> Int64? {
        do {
            return try await pool.writeWithoutTransaction { db in try Int64.fetchOne(db, sql: sql) }
        } catch {
            throw TokenStoreError.mapping(error, operation: "reading test SQL", path: path)
        }
    }

    /// Mutations queued for the writer and not yet taken into a transaction.
    package var pendingWritesForTesting: Int {
        writeQueue.withLock { $0.pending.count }
    }

    /// Transactions of queued mutations begun so far (each applies one batch).
    package var batchesForTesting: Int {
        writeQueue.withLock { $0.batches }
    }

    /// Opens (creating when missing) the database at `path` migrated only up to the migration
    /// `version` ("v1", …), as the tokend that knew no later migration left it.
    package static func openForTesting(
        path: String,
        logger: Logger,
        upTo version: String
    ) async throws -> SQLiteTokenStore {
        precondition(StoreSchema.migrator.migrations.contains(version), "unknown migration \(version)")
        return try await open(
            path: path,
            logger: logger,
            eventRetention: nil,
            busyTimeout: 5,
            migratingUpTo: version
        )
    }
}
