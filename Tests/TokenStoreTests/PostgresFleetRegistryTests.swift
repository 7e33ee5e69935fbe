import Foundation
import PostgresStore
import Testing
import TokenStore
import TokenTestSupport

/// Issue 12 items 3-5 at the store: heartbeat rows, how far each node is behind, the position
/// a write tells its caller, which nodes publish a key, and compaction of old rows once.
@Suite("PostgresTokenStore: the fleet's heartbeats", .timeLimit(.minutes(3)))
struct PostgresFleetRegistryTests {
    static func beat(
        _ id: String,
        applied: FollowPosition = FollowPosition(high: FollowCursor(transaction: 0, sequence: 0)),
        next: String? = "K1",
        sinceStart: Bool = true
    ) -> NodeHeartbeat {
        NodeHeartbeat(
            id: id,
            host: "host-\(id)",
            pid: 4242,
            version: "test",
            started: 1_700_000_000,
            applied: applied,
            clockOffset: 0.25,
            nextKid: next,
            nextKidSinceStart: sinceStart,
            jwksETag: "\"etag\""
        )
    }

    static func withStore(_ body: (PostgresCluster, String, PostgresTokenStore) async throws -> Void) async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let database = "nodes_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let url = try await cluster.createDatabase(database)
        let store = try await PostgresStoreTests.open(url)
        do {
            try await body(cluster, database, store)
            try await store.close()
        } catch {
            try? await store.close()
            throw error
        }
    }

    @Test("a write tells its caller the position of the event it committed; a node before it is behind by it")
    func positionsAndLag() async throws {
        try await Self.withStore { _, _, store in
            let before = try await store.newestFollowedPosition()
            #expect(before == nil)
            _ = try await store.heartbeat(Self.beat("a"))
            let written = WrittenPositions()
            try await WrittenPositions.$current.withValue(written) {
                try await store.revokeAccessToken(
                    jti: "j1",
                    subject: "s",
                    expiresAt: StoreFixtures.now + 3600,
                    at: StoreFixtures.now,
                    reason: "test"
                )
            }
            let position = try #require(written.all.last)
            #expect(try await store.newestFollowedPosition() == position)
            // A write outside a recording task records nothing anywhere.
            try await store.revokeAccessToken(
                jti: "j2",
                subject: "s",
                expiresAt: StoreFixtures.now + 3600,
                at: StoreFixtures.now,
                reason: "test"
            )
            #expect(written.all == [position])

            var nodes = try await store.nodes(lag: true)
            #expect(nodes.count == 1)
            #expect(nodes.first?.behindEvents == 2)
            #expect(nodes.first?.clockOffset == 0.25)
            #expect(nodes.first?.silentFor ?? 99 < 5)
            // Caught up: a heartbeat at the newest position is behind by nothing.
            let newest = try #require(try await store.newestFollowedPosition())
            _ = try await store.heartbeat(Self.beat("a", applied: FollowPosition(high: newest)))
            nodes = try await store.nodes(lag: true)
            #expect(nodes.count == 1, "a heartbeat updates its row")
            #expect(nodes.first?.behindEvents == 0)
            #expect(nodes.first?.applied == FollowPosition(high: newest))
            // Past the newest event, but still waiting for its transaction (it was running at
            // the node's read): that transaction's events count as not applied.
            let waiting = FollowPosition(high: newest, pending: [newest.transaction])
            _ = try await store.heartbeat(Self.beat("a", applied: waiting))
            nodes = try await store.nodes(lag: true)
            #expect(nodes.first?.applied == waiting, "the pending transactions are stored")
            #expect(nodes.first?.behindEvents ?? 0 >= 1, "\(nodes)")
            #expect(nodes.first?.applied.covers(newest) == false)
            try await store.leave(id: "a")
            #expect(try await store.nodes(lag: false).isEmpty)
        }
    }

    @Test("a key counts as published everywhere only once every live node reports it, from the last switch")
    func keyPublication() async throws {
        try await Self.withStore { _, _, store in
            _ = try await store.heartbeat(Self.beat("a", next: "K2", sinceStart: true))
            _ = try await store.heartbeat(Self.beat("b", next: "K1", sinceStart: true))
            var publication = try await store.keyPublication(kid: "K2", liveWithin: 5)
            #expect(publication.missing == ["host-b/4242 (b)"])
            // b switches to K2: published everywhere since b's heartbeat.
            _ = try await store.heartbeat(Self.beat("b", next: "K2", sinceStart: false))
            publication = try await store.keyPublication(kid: "K2", liveWithin: 5)
            #expect(publication.missing.isEmpty)
            let since = try #require(publication.everywhereFor)
            #expect(since >= 0 && since < 5, "\(since)")
            // Nodes that had it from their start never served a JWKS without it.
            try await store.leave(id: "b")
            publication = try await store.keyPublication(kid: "K2", liveWithin: 5)
            #expect(publication.everywhereFor == nil)
        }
    }

    @Test("compaction deletes the rows of nodes silent for longer than the retention, and runs once at a time")
    func compactionOfNodes() async throws {
        try await Self.withStore { cluster, database, store in
            _ = try await store.heartbeat(Self.beat("live"))
            _ = try await store.heartbeat(Self.beat("gone"))
            let ago = PostgresTokenStore.minimumNodeRetentionForTests + 60
            let update = try await cluster.psql(
                "UPDATE tokend.nodes SET last_seen = last_seen - \(ago) WHERE id = 'gone'",
                database: database
            )
            #expect(update.succeeded, "\(update)")
            // Another node compacting (it holds the advisory lock): this one leaves the work.
            let directory = try TemporaryDirectory(prefix: "tokend-nodes")
            defer { directory.remove() }
            let holder = try PostgresFollowingTests.Session(
                "compactor",
                cluster: cluster,
                database: database,
                in: directory.path,
                steps: [
                    "SELECT pg_advisory_lock(\(PostgresTokenStore.compactionLockForTests));",
                    "SELECT pg_sleep(0.2); SELECT pg_advisory_unlock(\(PostgresTokenStore.compactionLockForTests));",
                ]
            )
            holder.go(0)
            _ = try await eventually("the other node to hold the compaction lock", timeout: .seconds(20)) {
                let held = try await cluster.psql(
                    """
                    SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    """,
                    database: database
                )
                return held.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1" ? true : nil
            }
            _ = try await store.compact(now: StoreFixtures.now)
            #expect(Set(try await store.nodes(lag: false).map(\.id)) == ["live", "gone"], "lock held: nothing")
            holder.go(1)
            await PostgresFollowingTests.finish(holder)
            _ = try await store.compact(now: StoreFixtures.now)
            #expect(try await store.nodes(lag: false).map(\.id) == ["live"])
        }
    }
}
