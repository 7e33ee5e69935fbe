/// A position in the event log as a follower reads it (DESIGN §10, issue 12): the writing
/// transaction's id first, then the sequence.
///
/// Sequences are taken when a row is inserted, but transactions commit in another order: a
/// transaction still open may hold a lower sequence than one already committed, so a cursor
/// over sequences alone can pass an event that commits later and lose it. Transaction ids do
/// not have that problem once a transaction has ended: every transaction whose id is below the
/// oldest one still running (the snapshot's xmin) has ended, and every transaction that will
/// still commit has an id at or above it. A cursor over (transaction, sequence) that only ever
/// passes ended transactions therefore never skips an event (`FollowPosition`).
public struct FollowCursor: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The writing transaction's id (PostgreSQL `xid8`, which never wraps).
    public var transaction: Int64
    /// The event's sequence; 0 is before every event of `transaction`.
    public var sequence: Int64

    public init(transaction: Int64, sequence: Int64) {
        self.transaction = transaction
        self.sequence = sequence
    }

    public static func < (lhs: FollowCursor, rhs: FollowCursor) -> Bool {
        (lhs.transaction, lhs.sequence) < (rhs.transaction, rhs.sequence)
    }

    public var description: String { "\(transaction)/\(sequence)" }
}

/// What a follower has read of the event log (DESIGN §10, issue 12): every followed event at
/// or before `high`, except those of the transactions in `pending`, which were still open when
/// last read (they may yet commit events that come before `high`).
///
/// A transaction id below the snapshot's xmax that is not in the snapshot's list of running
/// transactions (`pg_snapshot_xip`) has ended, so what it committed is visible to the read.
/// Holding back only the transactions still running, rather than everything above the
/// snapshot's xmin, keeps a long transaction elsewhere in the cluster from holding the whole
/// follower back: the events committed meanwhile are read once, and count as applied.
public struct FollowPosition: Sendable, Hashable, CustomStringConvertible {
    /// Every followed event at or before it has been read, except those of `pending`.
    public var high: FollowCursor
    /// Transactions below `high` that were still running at the last read, ascending.
    public var pending: [Int64]

    public init(high: FollowCursor, pending: [Int64] = []) {
        self.high = high
        self.pending = pending.sorted()
    }

    /// Whether the event at `position` has been read (and so applied), if it is committed.
    public func covers(_ position: FollowCursor) -> Bool {
        position <= high && !pending.contains(position.transaction)
    }

    /// Where a follower stands once it has applied everything `read` returned: after the last
    /// new event, holding back the transactions below it that the read's snapshot saw running.
    ///
    /// A read without a list of running transactions (`read.horizon`: a standby, whose
    /// snapshots do not list the primary's transactions) moves only past events of
    /// transactions below the snapshot's xmin, all of which have ended; a pending transaction
    /// stays pending until it is below that horizon.
    public func advanced(by read: FollowedEvents) -> FollowPosition {
        if let horizon = read.horizon {
            let last = read.events.last { $0.position > high && $0.position.transaction < horizon }?.position ?? high
            return FollowPosition(high: last, pending: pending.filter { $0 >= horizon })
        }
        let last = read.events.last { $0.position > high }?.position ?? high
        return FollowPosition(high: last, pending: read.inProgress.filter { $0 < last.transaction })
    }

    public var description: String {
        pending.isEmpty ? high.description : "\(high) (waiting for \(pending.map(String.init).joined(separator: ",")))"
    }
}

/// One event a follower read, with its position.
public struct FollowedEvent: Sendable, Equatable {
    public var position: FollowCursor
    public var event: TokenEvent

    public init(position: FollowCursor, event: TokenEvent) {
        self.position = position
        self.event = event
    }
}

/// What one read of the followed events found, in one snapshot.
public struct FollowedEvents: Sendable, Equatable {
    /// By position: the events of the position's pending transactions that have committed
    /// since, and the events after its `high`.
    public var events: [FollowedEvent]
    /// The read found every followed event after `high` that was committed as of its snapshot
    /// (it returned fewer than its limit of them).
    public var complete: Bool
    /// The transactions the read's snapshot saw running, ascending.
    public var inProgress: [Int64]
    /// Set when the snapshot cannot list the running transactions (PostgreSQL in recovery, a
    /// standby): its xmin, below which every transaction has ended. `inProgress` is then empty
    /// and says nothing.
    public var horizon: Int64?

    public init(events: [FollowedEvent], complete: Bool, inProgress: [Int64] = [], horizon: Int64? = nil) {
        self.events = events
        self.complete = complete
        self.inProgress = inProgress
        self.horizon = horizon
    }
}

/// A store several nodes share (PostgreSQL): each node follows its event log to keep its
/// memory current (DESIGN §10). Only the events that change another node's memory are followed
/// (`TokenEvent.Kind.followed`); their writers also wake the followers (NOTIFY).
public protocol FollowableStore: TokenStore {
    /// `loadRevocations(now:)`, plus the position to follow the log from, read from the same
    /// snapshot: every event after it is either in the snapshot already (applying it again
    /// changes nothing) or committed after it.
    func loadRevocationsToFollow(now: Double) async throws -> (RevocationSnapshot, FollowPosition)

    /// In one snapshot: every followed event of `position.pending`'s transactions, the
    /// followed events after `position.high` in position order (at most `limit` of them), and
    /// the transactions the snapshot saw running.
    func followedEvents(after position: FollowPosition, limit: Int) async throws -> FollowedEvents
}

extension TokenEvent.Kind {
    /// A keyring change (rotation, revocation, retirement, bootstrap), written in the same
    /// transaction as the change: detail `current=… next=…`.
    public static let keyringChanged = "keyring_changed"

    /// The kinds that change what another node holds in memory: revocations by jti, subject
    /// cutoffs (sign-out everywhere, deactivation, a new password), ended refresh families and
    /// keyring changes. Only these wake the other nodes (NOTIFY takes a lock every committing
    /// notifier waits for); refresh rotations, sign-ins and sign-ups stay in the database.
    public static let followed: [String] = [
        revokeAccess, subjectCutoff, revokeKey, familyRevoked, refreshReuse, keyringChanged,
    ]
}
