import Synchronization
public import TokenStore

/// A node's place in the shared store's event log (DESIGN §10, issue 12): the cursor, which
/// only ever passes events that are final and applied, and the events applied ahead of it
/// (committed, but behind a transaction that was still open when they were read), so that they
/// are not applied again each time they are read again.
///
/// `TokenService.catchUp()` reads and applies; one caller at a time (the follower service).
public final class EventFollower: Sendable {
    struct Position: Sendable {
        var cursor: FollowCursor
        var appliedAhead: Set<FollowCursor> = []
        /// A keyring change was read and passed, and the keyring not reloaded since. True at
        /// first: the keyring was loaded before the snapshot the cursor comes from, so a change
        /// committed between the two is behind the cursor; the first catch-up reloads it.
        var keyringPending = true
        /// Events applied since start (own events included).
        var applied: UInt64 = 0
    }

    let store: any FollowableStore
    /// Events one read returns at most.
    let pageSize: Int
    let position: Mutex<Position>

    init(store: any FollowableStore, cursor: FollowCursor, pageSize: Int = 500) {
        precondition(pageSize > 0)
        self.store = store
        self.pageSize = pageSize
        self.position = Mutex(Position(cursor: cursor))
    }

    /// The cursor: every followed event at or before it is in memory.
    public var cursor: FollowCursor { position.withLock { $0.cursor } }

    /// Events applied since start.
    public var applied: UInt64 { position.withLock { $0.applied } }
}
