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
        // One statement, so one snapshot and one round trip: first a row with the running
        // transactions the snapshot lists and, in recovery, its xmin (part 0), then the followed events of the pending
        // transactions (part 1: those that have committed since), then the followed events
        // after `high` (part 2), ordered like the partial index `events_followed`, whose
        // predicate the WHERE clauses repeat word for word.
        let query: PostgresQuery = """
            SELECT 0, NULL::bigint, NULL::bigint, NULL::float8, NULL::text, NULL::text, NULL::text,
                array(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x ORDER BY 1),
                CASE WHEN pg_is_in_recovery() THEN pg_snapshot_xmin(pg_current_snapshot())::text::bigint END
            UNION ALL
            (SELECT 1, transaction_id::text::bigint, sequence, at, kind, subject, detail, NULL::bigint[], NULL::bigint
            FROM events
            WHERE \(unescaped: PostgresSchema.followedKindsSQL)
                AND transaction_id = ANY(\(position.pending.map(String.init))::text[]::xid8[])
            ORDER BY transaction_id, sequence)
            UNION ALL
            (SELECT 2, transaction_id::text::bigint, sequence, at, kind, subject, detail, NULL::bigint[], NULL::bigint
            FROM events
            WHERE \(unescaped: PostgresSchema.followedKindsSQL)
                AND (transaction_id, sequence) > (\(high.transaction)::text::xid8, \(high.sequence))
            ORDER BY transaction_id, sequence
            LIMIT \(limit))
            """
        return try await readOne("reading the followed events") { connection in
            var running: [Int64] = []
            var horizon: Int64?
            var held: [FollowedEvent] = []
            var after: [FollowedEvent] = []
            for try await (part, transaction, sequence, at, kind, subject, detail, xip, xmin)
                in try await connection
                .query(query, logger: quiet)
                .decode((Int32, Int64?, Int64?, Double?, String?, String?, String?, [Int64]?, Int64?).self)
            {
                guard part != 0 else {
                    // In recovery the snapshot lists none of the primary's running transactions.
                    running = xip ?? []
                    horizon = xmin
                    continue
                }
                guard let transaction, let sequence, let at, let kind, let detail else { continue }
                let event = FollowedEvent(
                    position: FollowCursor(transaction: transaction, sequence: sequence),
                    event: TokenEvent(sequence: sequence, at: at, kind: kind, subject: subject, detail: detail)
                )
                if part == 1 { held.append(event) } else { after.append(event) }
            }
            // The parts come in any order the plan gives (a parallel append may interleave them).
            let events = (held + after).sorted { $0.position < $1.position }
            return FollowedEvents(
                events: events,
                complete: after.count < limit,
                inProgress: horizon == nil ? running.sorted() : [],
                horizon: horizon
            )
        }
    }
}
