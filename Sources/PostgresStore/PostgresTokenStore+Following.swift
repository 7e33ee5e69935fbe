import Logging
import PostgresNIO
public import TokenStore

/// What a node's follower reads (DESIGN §10, issue 12): the revocation state with the position
/// to follow from, then the followed events after a position, by (transaction, sequence).
extension PostgresTokenStore: FollowableStore {
    public func loadRevocationsToFollow(now: Double) async throws -> (RevocationSnapshot, FollowCursor) {
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
            return (snapshot, FollowCursor(transaction: xmin, sequence: 0))
        }
    }

    public func followedEvents(after position: FollowCursor, limit: Int) async throws -> FollowedEvents {
        guard limit > 0 else { return FollowedEvents(events: [], complete: false) }
        let quiet = quiet
        // One statement, one snapshot: `final` compares each event's transaction with that
        // snapshot's xmin. Ordered like the partial index `events_followed`, whose predicate
        // the WHERE clause repeats word for word.
        let query: PostgresQuery = """
            SELECT transaction_id::text::bigint, sequence, at, kind, subject, detail,
                transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            FROM events
            WHERE \(unescaped: PostgresSchema.followedKindsSQL)
                AND (transaction_id, sequence) > (\(position.transaction)::text::xid8, \(position.sequence))
            ORDER BY transaction_id, sequence
            LIMIT \(limit)
            """
        let events = try await readOne("reading the followed events") { connection in
            var events: [FollowedEvent] = []
            for try await (transaction, sequence, at, kind, subject, detail, final) in try await connection.query(
                query,
                logger: quiet
            ).decode((Int64, Int64, Double, String, String?, String, Bool).self) {
                events.append(
                    FollowedEvent(
                        position: FollowCursor(transaction: transaction, sequence: sequence),
                        event: TokenEvent(sequence: sequence, at: at, kind: kind, subject: subject, detail: detail),
                        final: final
                    )
                )
            }
            return events
        }
        return FollowedEvents(events: events, complete: events.count < limit)
    }
}
