public import TokenStore

/// What `--wait` found (issue 12 item 4).
public struct FleetWaitOutcome: Sendable, Equatable {
    /// Live nodes that have applied the change.
    public var applied: [String] = []
    /// Nodes not waited for: their heartbeat stopped longer ago than the wait cutoff.
    public var stopped: [String] = []
    /// Live nodes that have not applied it (empty when the wait succeeded).
    public var pending: [String] = []
    /// Whether the store is shared by a fleet at all (false: one node, nothing to wait for).
    public var fleet = true

    public init() {}

    public var succeeded: Bool { pending.isEmpty }
}

extension TokenService {
    /// How often a wait reads the fleet's heartbeats.
    static let waitPoll = Duration.milliseconds(20)

    /// Waits until every live node's heartbeat says it has applied the followed events at
    /// `positions` (each of them: a node may have read a later one while an earlier one's
    /// transaction still ran), or the newest one when there are none (the change wrote no
    /// event, e.g. a token revoked before, and waiting for everything committed covers it),
    /// or `timeout` passes.
    ///
    /// A node silent for longer than `FleetNode.waitCutoff` is not waited for (kill -9, a node
    /// cut off from the database: by then it refuses token checks). On a store of its own
    /// (SQLite) there is nothing to wait for. Throws when the store cannot be read.
    public func waitForFleet(positions: [FollowCursor], timeout: Duration) async throws -> FleetWaitOutcome {
        guard let fleet else {
            var outcome = FleetWaitOutcome()
            outcome.fleet = false
            return outcome
        }
        let cutoff = FleetNode.waitCutoff(maxStaleness: configuration.maxStaleness)
        let deadline =
            clock.uptime() + Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        var targets = positions
        var running: Set<Int64>?
        if targets.isEmpty, let newest = try await fleet.registry.newestFollowedPosition() {
            targets = [newest]
            running = Set(try await fleet.registry.runningTransactions())
        }
        var outcome = FleetWaitOutcome()
        while true {
            let nodes = try await fleet.registry.nodes(lag: false)
            outcome.applied = []
            outcome.stopped = []
            outcome.pending = []
            for node in nodes {
                if node.silentFor > cutoff {
                    outcome.stopped.append(node.label)
                } else if !Self.applied(node.applied, targets: targets, runningAtStart: running) {
                    outcome.pending.append(node.label)
                } else {
                    outcome.applied.append(node.label)
                }
            }
            if outcome.pending.isEmpty || clock.uptime() >= deadline { return outcome }
            try await Task.sleep(for: Self.waitPoll)
        }
    }

    /// Whether a node at `applied` has applied the events at `targets`. With `runningAtStart`
    /// (the change wrote no event, and the wait is for everything committed before it began),
    /// also that the node holds back no transaction that had ended by then: a node may have
    /// read past the newest event while an older transaction still ran, and that one may have
    /// committed since.
    public static func applied(_ applied: FollowPosition, targets: [FollowCursor], runningAtStart: Set<Int64>?) -> Bool
    {
        guard targets.allSatisfy(applied.covers) else { return false }
        guard let runningAtStart else { return true }
        return applied.pending.allSatisfy(runningAtStart.contains)
    }
}
