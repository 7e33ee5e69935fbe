import Synchronization
public import TokenStore

/// A node's place in the shared store's event log (DESIGN §10, issue 12): every followed event
/// the position covers has been read and applied to memory (`FollowPosition`).
///
/// `TokenService.catchUp()` reads and applies; one caller at a time (the follower service).
public final class EventFollower: Sendable {
    struct State: Sendable {
        var position: FollowPosition
        /// A keyring change was read, and the keyring not reloaded since. True at first: the
        /// keyring was loaded before the snapshot the position comes from, so a change committed
        /// between the two is behind the position; the first catch-up reloads it.
        var keyringPending = true
        /// Events applied since start (own events included).
        var applied: UInt64 = 0
    }

    let store: any FollowableStore
    /// Events one read returns at most.
    let pageSize: Int
    let state: Mutex<State>

    init(store: any FollowableStore, position: FollowPosition, pageSize: Int = 500) {
        precondition(pageSize > 0)
        self.store = store
        self.pageSize = pageSize
        self.state = Mutex(State(position: position))
    }

    /// What has been read and applied.
    public var position: FollowPosition { state.withLock { $0.position } }

    /// Events applied since start.
    public var applied: UInt64 { state.withLock { $0.applied } }
}
