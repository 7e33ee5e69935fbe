import Synchronization
import TokenStore
import TokenTestSupport

/// A store the fleet shares, as a follower sees it: an `InMemoryTokenStore` for everything a
/// node writes and reads, plus a followed event log the test writes as other nodes would
/// (`publish`), the transactions still running (`running`: their events are not visible yet),
/// and a switch that makes the log unreadable (the database away).
final class ScriptedFleetStore: FollowableStore, ForwardingTokenStore {
    let memory = InMemoryTokenStore()
    private let log = Mutex<[FollowedEvent]>([])
    private let down = Mutex(false)
    private let open = Mutex<Set<Int64>>([])
    private let standby = Mutex<Int64?>(nil)
    static let start = FollowCursor(transaction: 100, sequence: 0)

    var logUnreadable: Bool {
        get { down.withLock { $0 } }
        set { down.withLock { $0 = newValue } }
    }

    /// Transactions still running: their events are not visible, and reads list them.
    var running: Set<Int64> {
        get { open.withLock { $0 } }
        set { open.withLock { $0 = newValue } }
    }

    /// Set: reads come from a standby, whose snapshots list no running transaction, only
    /// their xmin (this value).
    var recoveryHorizon: Int64? {
        get { standby.withLock { $0 } }
        set { standby.withLock { $0 = newValue } }
    }

    /// Adds (or replaces, by position) an event of the followed log, written by the transaction
    /// `position.transaction` (visible once that transaction is not `running`).
    func publish(_ kind: String, subject: String? = nil, _ detail: String, at position: FollowCursor) {
        let event = TokenEvent(sequence: position.sequence, at: 0, kind: kind, subject: subject, detail: detail)
        log.withLock { log in
            log.removeAll { $0.position == position }
            log.append(FollowedEvent(position: position, event: event))
            log.sort { $0.position < $1.position }
        }
    }

    func loadRevocationsToFollow(now: Double) async throws -> (RevocationSnapshot, FollowPosition) {
        (try await memory.loadRevocations(now: now), FollowPosition(high: Self.start))
    }

    func followedEvents(after position: FollowPosition, limit: Int) async throws -> FollowedEvents {
        if logUnreadable { throw TokenStoreError.unavailable("the test database is away") }
        let running = running
        let visible = log.withLock { $0.filter { !running.contains($0.position.transaction) } }
        let held = visible.filter { position.pending.contains($0.position.transaction) }
        let after = visible.filter { $0.position > position.high }
        let horizon = recoveryHorizon
        return FollowedEvents(
            events: held + after.prefix(limit),
            complete: after.count < limit,
            inProgress: horizon == nil ? running.sorted() : [],
            horizon: horizon
        )
    }

    var forwarded: any TokenStore { memory }
}
