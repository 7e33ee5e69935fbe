import JOSE
public import Logging
import Synchronization
public import TokenStore

#if canImport(Glibc)
import Glibc
#endif

/// This node as the fleet sees it (DESIGN §10, issue 12 item 3): its identity, its heartbeat
/// and what the heartbeat measured of its clock.
///
/// The id is random per process start (a restarted node is a new row; the old one goes silent
/// and is deleted by compaction after `PostgresTokenStore.nodeRetention`). The heartbeat is
/// written every `heartbeatInterval` and also as soon as the follower's cursor moves, so
/// `--wait` learns within milliseconds that this node applied a change.
public final class FleetNode: Sendable {
    /// Seconds between two heartbeats when nothing changes.
    public static let heartbeatInterval: Double = 1
    /// A node silent for longer than this (three missed heartbeats and 2 s of margin) shows as
    /// `stopped` in `tokenctl fleet`, and is not counted as live by the key rotation rule.
    public static let stoppedAfter: Double = 3 * heartbeatInterval + 2

    /// How long `--wait` keeps waiting for a node whose heartbeat stopped: `stoppedAfter`, or
    /// the staleness bound plus a second when that is longer. By then a node that is merely
    /// paused or cut off from the database refuses token checks (503) until it has caught up,
    /// so no node still vouches for the token. With `TOKEND_MAX_STALENESS=0` (never refuse) a
    /// silent node is dropped after `stoppedAfter` with no such promise.
    public static func waitCutoff(maxStaleness: Double) -> Double {
        max(stoppedAfter, maxStaleness > 0 ? maxStaleness + 1 : 0)
    }

    public let id: String
    public let host: String
    public let pid: Int32
    public let version: String
    /// Seconds since 1970 on this node's clock.
    public let started: Double
    /// Where the fleet's rows are.
    public let registry: any FleetRegistry
    /// The next kid of the keyring loaded at start.
    let initialNextKid: String?
    /// Half the leeway: a clock off by more makes a token look expired or not yet valid early.
    let offsetLimit: Double
    private let state = Mutex<State>(State())
    private let wakeStream: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    struct State {
        var offset: Double?
        var offClock = false
        var lastBeat: Double?
        var failing: String?
    }

    public init(
        registry: any FleetRegistry,
        version: String,
        initialNextKid: String?,
        leeway: Double,
        started: Double
    ) {
        self.registry = registry
        self.version = version
        self.initialNextKid = initialNextKid
        self.offsetLimit = leeway / 2
        self.started = started
        var bytes = SystemRandomNumberGenerator()
        self.id = (0..<16).map { _ in String(UInt8.random(in: 0...255, using: &bytes), radix: 16) }
            .map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        var name = [CChar](repeating: 0, count: 256)
        self.host =
            gethostname(&name, name.count - 1) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown"
        self.pid = getpid()
        (wakeStream, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// This node's clock minus the database's, from the last heartbeat's round trip.
    public var clockOffset: Double? { state.withLock { $0.offset } }

    /// Why this node's clock is a problem (more than half the leeway off the database's), or nil.
    public var clockWarning: String? {
        state.withLock { state in
            guard state.offClock, let offset = state.offset else { return nil }
            return "this node's clock is \(Self.signed(offset)) s off the database's, more than half the leeway "
                + "(\(Self.signed(offsetLimit)) s): fix its time synchronisation"
        }
    }

    /// Asks for a heartbeat now (the follower's cursor moved).
    public func poke() { wake.yield() }

    /// Writes heartbeats until the task is cancelled: every `heartbeatInterval`, and at once
    /// after `poke()`. A failing write is logged once per reason; the next one retries.
    public func run(service: TokenService, logger: Logger) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [wake] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(Int64(Self.heartbeatInterval * 1000)))
                    wake.yield()
                }
            }
            wake.yield()
            for await _ in wakeStream {
                if Task.isCancelled { break }
                await beat(service: service, logger: logger)
            }
            group.cancelAll()
        }
        // Stopped gracefully: this node serves nothing any more, so nobody waits for it.
        do {
            try await registry.leave(id: id)
            logger.info("this node left the fleet", metadata: ["node": "\(id)"])
        } catch {
            logger.warning(
                "cannot remove this node's heartbeat; it shows as stopped until compaction removes it",
                metadata: ["reason": "\(error)"]
            )
        }
    }

    /// Ends `run`.
    public func stop() { wake.finish() }

    /// One heartbeat: this node's row, then the clock offset the round trip measured.
    func beat(service: TokenService, logger: Logger) async {
        let snapshot = service.keyring.snapshot
        let nextKid = snapshot.document.keys.first { $0.state == .next }?.kid
        let beat = NodeHeartbeat(
            id: id,
            host: host,
            pid: pid,
            version: version,
            started: started,
            applied: service.follower?.position ?? FollowPosition(high: FollowCursor(transaction: 0, sequence: 0)),
            clockOffset: clockOffset,
            nextKid: nextKid,
            nextKidSinceStart: nextKid != nil && nextKid == initialNextKid,
            jwksETag: snapshot.etag
        )
        let sent = service.now
        do {
            let seen = try await registry.heartbeat(beat)
            let received = service.now
            note(offset: (sent + received) / 2 - seen, logger: logger)
            let recovered = state.withLock { state -> String? in
                defer { state.failing = nil }
                return state.failing
            }
            if let recovered {
                logger.notice("heartbeats are written again", metadata: ["failed_with": "\(recovered)"])
            }
        } catch {
            let reason = "\(error)"
            let first = state.withLock { state -> Bool in
                defer { state.failing = reason }
                return state.failing == nil
            }
            if first { logger.warning("cannot write this node's heartbeat", metadata: ["reason": "\(reason)"]) }
        }
    }

    /// Records a measured offset; logs when the clock goes beyond half the leeway and when it
    /// comes back, once each.
    public func note(offset: Double, logger: Logger) {
        let limit = offsetLimit
        let (was, now) = state.withLock { state -> (Bool, Bool) in
            let was = state.offClock
            state.offset = offset
            state.offClock = abs(offset) > limit
            return (was, state.offClock)
        }
        if now, !was {
            logger.warning(
                "this node's clock is off the database's by more than half the leeway",
                metadata: [
                    "offset_seconds": "\(Self.signed(offset))", "limit_seconds": "\(Self.signed(limit))",
                    "fix": "check the node's time synchronisation (chrony, systemd-timesyncd)",
                ]
            )
        } else if was, !now {
            logger.notice(
                "this node's clock agrees with the database's again",
                metadata: ["offset_seconds": "\(Self.signed(offset))"]
            )
        }
    }

    /// `+0.003` / `-12.500`: seconds with a sign and milliseconds.
    public static func signed(_ value: Double) -> String {
        let milliseconds = Int64((value * 1000).rounded())
        let sign = milliseconds < 0 ? "-" : "+"
        let magnitude = abs(milliseconds)
        let fraction = String(magnitude % 1000)
        return "\(sign)\(magnitude / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
