/// A position in the event log as a follower reads it (DESIGN §10, issue 12): the writing
/// transaction's id first, then the sequence.
///
/// Sequences are taken when a row is inserted, but transactions commit in another order: a
/// transaction still open may hold a lower sequence than one already committed, so a cursor
/// over sequences alone can pass an event that commits later and lose it. Transaction ids do
/// not have that problem once a transaction has ended: every transaction whose id is below the
/// oldest one still running (the snapshot's xmin) has ended, and every transaction that will
/// still commit has an id at or above it. A cursor over (transaction, sequence) that only ever
/// passes ended transactions therefore never skips an event.
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

/// One event a follower read, with its position and whether its transaction had ended when
/// the read's snapshot was taken.
public struct FollowedEvent: Sendable, Equatable {
    public var position: FollowCursor
    public var event: TokenEvent
    /// The writing transaction had ended before the read began, and so had every transaction
    /// with a lower id: no event that commits later can come before this one. The cursor may
    /// pass it. An event that is not final is committed (it was read) and may be applied, but
    /// the cursor stays before it until it is.
    public var final: Bool

    public init(position: FollowCursor, event: TokenEvent, final: Bool) {
        self.position = position
        self.event = event
        self.final = final
    }
}

/// What one read of the followed events found.
public struct FollowedEvents: Sendable, Equatable {
    /// Oldest first, by position.
    public var events: [FollowedEvent]
    /// The read found every followed event after its position that was committed as of its
    /// snapshot (it returned fewer than its limit).
    public var complete: Bool

    public init(events: [FollowedEvent], complete: Bool) {
        self.events = events
        self.complete = complete
    }
}

/// A store several nodes share (PostgreSQL): each node follows its event log to keep its
/// memory current (DESIGN §10). Only the events that change another node's memory are followed
/// (`TokenEvent.Kind.followed`); their writers also wake the followers (NOTIFY).
public protocol FollowableStore: TokenStore {
    /// `loadRevocations(now:)`, plus the position to follow the log from, read from the same
    /// snapshot: every event after it is either in the snapshot already (applying it again
    /// changes nothing) or committed after it.
    func loadRevocationsToFollow(now: Double) async throws -> (RevocationSnapshot, FollowCursor)

    /// The followed events after `position`, in position order, at most `limit`, read by one
    /// statement (one snapshot).
    func followedEvents(after position: FollowCursor, limit: Int) async throws -> FollowedEvents
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
