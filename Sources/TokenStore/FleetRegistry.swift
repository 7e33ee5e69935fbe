import Synchronization

/// What one node says about itself every heartbeat (DESIGN §10, issue 12 item 3).
public struct NodeHeartbeat: Sendable, Equatable {
    /// Random per process start: a restarted node is a new node.
    public var id: String
    public var host: String
    public var pid: Int32
    public var version: String
    /// When the process started (its own clock, seconds since 1970).
    public var started: Double
    /// What the follower has read: every followed event it covers is in this node's memory.
    public var applied: FollowPosition
    /// This node's clock minus the database's, from the previous heartbeat's round trip.
    public var clockOffset: Double?
    /// The `next` key this node publishes in its JWKS.
    public var nextKid: String?
    /// The node has published `nextKid` since it started (never served a JWKS without it).
    public var nextKidSinceStart: Bool
    /// The ETag of the JWKS this node serves.
    public var jwksETag: String

    public init(
        id: String,
        host: String,
        pid: Int32,
        version: String,
        started: Double,
        applied: FollowPosition,
        clockOffset: Double?,
        nextKid: String?,
        nextKidSinceStart: Bool,
        jwksETag: String
    ) {
        self.id = id
        self.host = host
        self.pid = pid
        self.version = version
        self.started = started
        self.applied = applied
        self.clockOffset = clockOffset
        self.nextKid = nextKid
        self.nextKidSinceStart = nextKidSinceStart
        self.jwksETag = jwksETag
    }
}

/// One row of the fleet as the database holds it: the node's last heartbeat, with what the
/// database's clock says of it. The heartbeat's fields read through (`record.id`,
/// `record.applied`, …).
@dynamicMemberLookup
public struct NodeRecord: Sendable, Equatable {
    /// The heartbeat as last written.
    public var beat: NodeHeartbeat
    /// The database's clock at the node's last heartbeat.
    public var lastSeen: Double
    /// Seconds between the last heartbeat and the read (the database's clock).
    public var silentFor: Double
    /// Followed events committed that `applied` does not cover (nil when not asked for).
    public var behindEvents: Int?
    /// Seconds since the oldest followed event `applied` does not cover was written; 0 when none.
    public var behindSeconds: Double?

    public init(
        beat: NodeHeartbeat,
        lastSeen: Double,
        silentFor: Double,
        behindEvents: Int? = nil,
        behindSeconds: Double? = nil
    ) {
        self.beat = beat
        self.lastSeen = lastSeen
        self.silentFor = silentFor
        self.behindEvents = behindEvents
        self.behindSeconds = behindSeconds
    }

    public subscript<Value>(dynamicMember field: KeyPath<NodeHeartbeat, Value>) -> Value { beat[keyPath: field] }

    /// `host pid id-prefix`, how messages name a node.
    public var label: String { "\(beat.host)/\(beat.pid) (\(beat.id.prefix(8)))" }
}

/// Whether every node publishes a key (the rotation rule of issue 12 item 5).
public struct KeyPublication: Sendable, Equatable {
    public var kid: String
    /// Nodes whose heartbeat is live and that do not publish the key yet.
    public var missing: [String]
    /// Seconds since the last moment some node served a JWKS without the key; nil when no node
    /// ever did (every node published it from its start, or the fleet is empty).
    public var everywhereFor: Double?

    public init(kid: String, missing: [String], everywhereFor: Double?) {
        self.kid = kid
        self.missing = missing
        self.everywhereFor = everywhereFor
    }

    /// The live nodes that do not publish `next` yet, as messages name them: when the fleet's
    /// next key is another one, which nodes lag cannot be told.
    public func lacking(_ next: String) -> [String] {
        kid == next ? missing : ["some nodes (they list another next key)"]
    }
}

/// A store several nodes share and that keeps one row per node (DESIGN §10): heartbeats, the
/// fleet's view of itself, and what `--wait` and key rotation ask of it.
public protocol FleetRegistry: Sendable {
    /// Writes this node's row; returns the database's clock when it was written.
    func heartbeat(_ beat: NodeHeartbeat) async throws -> Double

    /// Deletes node `id`'s row: it stopped gracefully and serves nothing any more.
    func leave(id: String) async throws

    /// Every node's row, oldest start first; with `lag`, how far each is behind the newest
    /// followed event.
    func nodes(lag: Bool) async throws -> [NodeRecord]

    /// The position of the newest followed event committed (nil when there is none).
    func newestFollowedPosition() async throws -> FollowCursor?

    /// The transactions running now, as a snapshot lists them (none listed in recovery).
    func runningTransactions() async throws -> [Int64]

    /// Whether every node publishes `kid` as its next key. A node silent for more than
    /// `liveWithin` seconds counts as stopped: it is not waited for, but the key counts as
    /// missing from it until its last heartbeat (plus one heartbeat interval).
    func keyPublication(kid: String, liveWithin: Double) async throws -> KeyPublication
}

/// The positions of the followed events the current task writes, for `--wait` (issue 12
/// item 4): a route sets one (`WrittenPositions.$current`), the store records in it each
/// followed event it commits, and the route then waits until every node has applied the newest.
public final class WrittenPositions: Sendable {
    @TaskLocal public static var current: WrittenPositions?

    private let positions = Mutex<[FollowCursor]>([])

    public init() {}

    /// Records a followed event the current transaction wrote.
    public func record(_ position: FollowCursor) { positions.withLock { $0.append(position) } }

    /// How many positions are recorded (a transaction that is retried drops what it recorded).
    public var count: Int { positions.withLock { $0.count } }

    /// Forgets the positions recorded after the first `count` (a rolled-back attempt).
    public func truncate(to count: Int) {
        positions.withLock { if $0.count > count { $0.removeSubrange(count...) } }
    }

    /// Every position recorded, in the order written.
    public var all: [FollowCursor] { positions.withLock { $0 } }
}
