import Foundation
import Testing
import TokenTestSupport

/// The throwaway PostgreSQL cluster the PostgreSQL store's tests will run on (issue 11): it
/// starts on a Unix socket of its own (no TCP), answers, and is stopped by its PID with its
/// directory removed.
@Suite("A throwaway PostgreSQL cluster", .timeLimit(.minutes(3)))
struct PostgresClusterTests {
    @Test("starts on its own socket, answers SQL, stops by PID and leaves nothing behind")
    func startAnswerStop() async throws {
        let cluster = try await PostgresCluster.start()
        do {
            #expect(cluster.isRunning)
            #expect(FileManager.default.fileExists(atPath: cluster.socketDirectory + "/.s.PGSQL.5432"))
            let version = try await cluster.psql("SHOW server_version_num")
            #expect(version.succeeded, "\(version)")
            #expect((Int(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 150000)
            // No TCP listener: only the socket.
            let listen = try await cluster.psql("SHOW listen_addresses")
            #expect(listen.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(listen)")
            let written = try await cluster.psql(
                "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3); SELECT sum(n) FROM t"
            )
            #expect(written.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "6", "\(written)")
            let failed = try await cluster.psql("SELECT * FROM no_such_table")
            #expect(!failed.succeeded, "an SQL error is a failed command")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
        #expect(!cluster.isRunning)
        #expect(!FileManager.default.fileExists(atPath: cluster.socketDirectory))
    }

    @Test("two clusters at once do not meet: each has its own socket and data")
    func twoClusters() async throws {
        try await withPostgresCluster { first in
            try await withPostgresCluster { second in
                _ = try await first.psql("CREATE TABLE only_in_first (n int)")
                let seen = try await second.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_first'")
                #expect(seen.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(seen)")
                #expect(first.pid != second.pid)
            }
        }
    }
}
