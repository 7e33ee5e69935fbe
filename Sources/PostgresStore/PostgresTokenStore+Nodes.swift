import PostgresNIO
public import TokenStore

/// The fleet's rows (issue 12 items 3-5): one per node process, written by its heartbeat.
/// Every time here is the database's clock (`clock_timestamp()`), so nodes whose clocks differ
/// are still compared on one clock.
extension PostgresTokenStore: FleetRegistry {
    /// Rows of nodes not seen for this long are deleted by compaction: an hour, or the JWKS
    /// max-age given to `open` when that is longer (the key rotation rule reads a stopped
    /// node's row for that long).
    static let minimumNodeRetention: Double = 3600

    /// The database's clock in seconds since 1970.
    static let databaseNow = "extract(epoch from clock_timestamp())::float8"

    public func heartbeat(_ beat: NodeHeartbeat) async throws -> Double {
        let quiet = quiet
        let query: PostgresQuery = """
            INSERT INTO nodes AS n (id, host, pid, version, started, last_seen, applied_transaction, applied_sequence,
                pending_transactions, clock_offset, next_kid, next_since, jwks_etag)
            VALUES (\(beat.id), \(beat.host), \(beat.pid), \(beat.version), \(beat.started),
                \(unescaped: Self.databaseNow), \(beat.applied.high.transaction), \(beat.applied.high.sequence),
                \(beat.applied.pending), \(beat.clockOffset), \(beat.nextKid),
                CASE WHEN \(beat.nextKidSinceStart) THEN NULL ELSE \(unescaped: Self.databaseNow) END, \(beat.jwksETag))
            ON CONFLICT (id) DO UPDATE SET
                last_seen = excluded.last_seen,
                applied_transaction = excluded.applied_transaction,
                applied_sequence = excluded.applied_sequence,
                pending_transactions = excluded.pending_transactions,
                clock_offset = excluded.clock_offset,
                next_since = CASE WHEN n.next_kid IS NOT DISTINCT FROM excluded.next_kid THEN n.next_since
                    ELSE excluded.last_seen END,
                next_kid = excluded.next_kid,
                jwks_etag = excluded.jwks_etag
            RETURNING last_seen
            """
        return try await writeOne("writing this node's heartbeat") { connection in
            var seen = 0.0
            for try await value in try await connection.query(query, logger: quiet).decode(Double.self) {
                seen = value
            }
            return seen
        }
    }

    public func leave(id: String) async throws {
        let quiet = quiet
        try await writeOne("removing this node's heartbeat") { connection in
            try await connection.perform("DELETE FROM nodes WHERE id = \(id)", logger: quiet)
        }
    }

    public func nodes(lag: Bool) async throws -> [NodeRecord] {
        let quiet = quiet
        // The followed events a node's applied position does not cover (`FollowPosition.covers`).
        // The casts are on the node's values, as in `followedEvents`, so that both arms can use
        // the index `events_followed`.
        let uncovered = """
            ((e.transaction_id, e.sequence) > (n.applied_transaction::text::xid8, n.applied_sequence)
                OR e.transaction_id = ANY(n.pending_transactions::text[]::xid8[]))
            """
        let behind =
            lag
            ? """
            (SELECT count(*) FROM events e WHERE \(PostgresSchema.followedKindsSQL) AND \(uncovered)),
            (SELECT \(Self.databaseNow) - min(e.at) FROM events e WHERE \(PostgresSchema.followedKindsSQL)
                AND \(uncovered))
            """ : "NULL::bigint, NULL::float8"
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT id, host, pid, version, started, last_seen, \(Self.databaseNow) - last_seen,
                    applied_transaction, applied_sequence, pending_transactions, clock_offset, next_kid,
                    next_since IS NULL, jwks_etag, \(behind)
                FROM nodes n ORDER BY started, id
                """
        )
        return try await readOne("reading the fleet's nodes") { connection in
            var nodes: [NodeRecord] = []
            for try await row in try await connection.query(query, logger: quiet) {
                let (
                    id, host, pid, version, started, lastSeen, silent, transaction, sequence, pending, offset,
                    nextKid, sinceStart, etag, behindEvents, behindSeconds
                ) = try row.decode(
                    (
                        String, String, Int32, String, Double, Double, Double, Int64, Int64, [Int64], Double?,
                        String?, Bool, String, Int64?, Double?
                    ).self
                )
                let beat = NodeHeartbeat(
                    id: id,
                    host: host,
                    pid: pid,
                    version: version,
                    started: started,
                    applied: FollowPosition(
                        high: FollowCursor(transaction: transaction, sequence: sequence),
                        pending: pending
                    ),
                    clockOffset: offset,
                    nextKid: nextKid,
                    nextKidSinceStart: sinceStart,
                    jwksETag: etag
                )
                nodes.append(
                    NodeRecord(
                        beat: beat,
                        lastSeen: lastSeen,
                        silentFor: max(0, silent),
                        behindEvents: behindEvents.map { Int($0) },
                        behindSeconds: lag ? max(0, behindSeconds ?? 0) : nil
                    )
                )
            }
            return nodes
        }
    }

    public func newestFollowedPosition() async throws -> FollowCursor? {
        let quiet = quiet
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT transaction_id::text::bigint, sequence FROM events WHERE \(PostgresSchema.followedKindsSQL)
                ORDER BY transaction_id DESC, sequence DESC LIMIT 1
                """
        )
        return try await readOne("reading the newest followed event") { connection in
            var newest: FollowCursor?
            for try await (transaction, sequence) in try await connection.query(query, logger: quiet).decode(
                (Int64, Int64).self
            ) {
                newest = FollowCursor(transaction: transaction, sequence: sequence)
            }
            return newest
        }
    }

    public func runningTransactions() async throws -> [Int64] {
        let quiet = quiet
        return try await readOne("reading the running transactions") { connection in
            var running: [Int64] = []
            for try await value in try await connection.query(
                "SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x",
                logger: quiet
            ).decode(Int64.self) {
                running.append(value)
            }
            return running
        }
    }

    public func keyPublication(kid: String, liveWithin: Double) async throws -> KeyPublication {
        let quiet = quiet
        let query: PostgresQuery = """
            SELECT host, pid, id, next_kid IS NOT DISTINCT FROM \(kid), \(unescaped: Self.databaseNow) - last_seen,
                next_since, last_seen, \(unescaped: Self.databaseNow)
            FROM nodes
            """
        return try await readOne("reading which nodes publish the next key") { connection in
            var missing: [String] = []
            var lastWithout: Double?
            var now = 0.0
            for try await (host, pid, id, publishes, silent, since, lastSeen, databaseNow)
                in try await connection
                .query(query, logger: quiet).decode(
                    (String, Int32, String, Bool, Double, Double?, Double, Double).self
                )
            {
                now = databaseNow
                let without: Double?
                if publishes {
                    without = since
                } else {
                    if silent <= liveWithin { missing.append("\(host)/\(pid) (\(id.prefix(8)))") }
                    // Stopped without it: it may have served a JWKS without the key until just
                    // before its last heartbeat would have come.
                    without = lastSeen + 1
                }
                if let without { lastWithout = max(lastWithout ?? without, without) }
            }
            return KeyPublication(
                kid: kid,
                missing: missing.sorted(),
                everywhereFor: lastWithout.map { max(0, now - $0) }
            )
        }
    }
}

extension PostgresTokenStore {
    /// For tests: the retention of a stopped node's row without a longer JWKS max-age.
    public static var minimumNodeRetentionForTests: Double { minimumNodeRetention }
    /// For tests: the advisory lock key compaction holds.
    public static var compactionLockForTests: Int64 { PostgresSchema.compactionLock }
}
