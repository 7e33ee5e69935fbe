import Logging
import PostgresNIO
public import TokenStore

/// What a node's follower reads (DESIGN §10, issue 12): the revocation state with the position
/// to follow from, then the followed events after a position, by (transaction, sequence).
extension PostgresTokenStore: FollowableStore {
    public func loadRevocationsToFollow(now: Double) async throws -> (RevocationSnapshot, FollowPosition) {
        let quiet = quiet
        return try await read("loading revocations") { connection in
            // REPEATABLE READ: this statement and the reads after it share one snapshot. Every
            // transaction below its xmin has ended, so what it committed is in the snapshot;
            // following from (xmin, 0) reads again what the snapshot may hold already
            // (harmless: applying an event twice changes nothing) and whatever commits later.
            var xmin: Int64 = 0
            for try await value in try await connection.query(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                logger: quiet
            ).decode(Int64.self) {
                xmin = value
            }
            let snapshot = try await Self.revocations(connection, now: now, logger: quiet)
            return (snapshot, FollowPosition(high: FollowCursor(transaction: xmin, sequence: 0)))
        }
    }

    public func followedEvents(after position: FollowPosition, limit: Int) async throws -> FollowedEvents {
        guard limit > 0 else { return FollowedEvents(events: [], complete: false) }
        let quiet = quiet
        let high = position.high
        let pending = position.pending
        // Ordered like the partial index `events_followed`, whose predicate the WHERE clauses
        // repeat word for word.
        let newer: PostgresQuery = """
            SELECT transaction_id::text::bigint, sequence, at, kind, subject, detail
            FROM events
            WHERE \(unescaped: PostgresSchema.followedKindsSQL)
                AND (transaction_id, sequence) > (\(high.transaction)::text::xid8, \(high.sequence))
            ORDER BY transaction_id, sequence
            LIMIT \(limit)
            """
        let held: PostgresQuery = """
            SELECT transaction_id::text::bigint, sequence, at, kind, subject, detail
            FROM events
            WHERE \(unescaped: PostgresSchema.followedKindsSQL)
                AND transaction_id = ANY(\(pending.map(String.init))::text[]::xid8[])
            ORDER BY transaction_id, sequence
            """
        // One snapshot (REPEATABLE READ) for the three statements: the running transactions it
        // lists are exactly those whose events none of them could see.
        return try await read("reading the followed events") { connection in
            var running: [Int64] = []
            for try await value in try await connection.query(
                """
                SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x ORDER BY 1
                """,
                logger: quiet
            ).decode(Int64.self) {
                running.append(value)
            }
            var events: [FollowedEvent] = []
            if !pending.isEmpty { events = try await Self.followed(held, connection, quiet) }
            let after = try await Self.followed(newer, connection, quiet)
            events += after
            return FollowedEvents(events: events, complete: after.count < limit, inProgress: running)
        }
    }

    private static func followed(
        _ query: PostgresQuery,
        _ connection: PostgresConnection,
        _ logger: Logger
    ) async throws -> [FollowedEvent] {
        var events: [FollowedEvent] = []
        for try await (transaction, sequence, at, kind, subject, detail) in try await connection.query(
            query,
            logger: logger
        ).decode((Int64, Int64, Double, String, String?, String).self) {
            events.append(
                FollowedEvent(
                    position: FollowCursor(transaction: transaction, sequence: sequence),
                    event: TokenEvent(sequence: sequence, at: at, kind: kind, subject: subject, detail: detail)
                )
            )
        }
        return events
    }
}
