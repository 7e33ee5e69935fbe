import Synchronization
import TokenStore
import TokenTestSupport

/// A store the fleet shares, as a follower sees it: an `InMemoryTokenStore` for everything a
/// node writes and reads, plus a followed event log the test writes as other nodes would
/// (`publish`), each event final or not (its transaction still open), and a switch that makes
/// the log unreadable (the database away).
final class ScriptedFleetStore: FollowableStore, ForwardingTokenStore {
    let memory = InMemoryTokenStore()
    private let log = Mutex<[FollowedEvent]>([])
    private let down = Mutex(false)
    static let start = FollowCursor(transaction: 100, sequence: 0)

    var logUnreadable: Bool {
        get { down.withLock { $0 } }
        set { down.withLock { $0 = newValue } }
    }

    /// Adds (or replaces, by position) an event of the followed log.
    func publish(_ kind: String, subject: String? = nil, _ detail: String, at position: FollowCursor, final: Bool) {
        let event = TokenEvent(sequence: position.sequence, at: 0, kind: kind, subject: subject, detail: detail)
        log.withLock { log in
            log.removeAll { $0.position == position }
            log.append(FollowedEvent(position: position, event: event, final: final))
            log.sort { $0.position < $1.position }
        }
    }

    func loadRevocationsToFollow(now: Double) async throws -> (RevocationSnapshot, FollowCursor) {
        (try await memory.loadRevocations(now: now), Self.start)
    }

    func followedEvents(after position: FollowCursor, limit: Int) async throws -> FollowedEvents {
        if logUnreadable { throw TokenStoreError.unavailable("the test database is away") }
        let after = log.withLock { $0.filter { $0.position > position } }
        return FollowedEvents(events: Array(after.prefix(limit)), complete: after.count < limit)
    }

    var forwarded: any TokenStore { memory }
}
