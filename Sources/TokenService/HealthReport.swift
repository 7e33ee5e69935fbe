public import TokenStore

/// What tokend can do right now, in one place (issue 10, finding 9): `/healthz`,
/// `/admin/status`, systemd's STATUS= and the log all say what this says.
///
/// Token checks (introspection, `/v1/verify`) read only memory, which holds every
/// acknowledged revocation, so they work in every state below — except on a node of a fleet
/// that is behind the shared store by more than `TOKEND_MAX_STALENESS` (`fleet`): its memory
/// may miss a revocation made on another node, so it refuses them (503) until it catches up.
public struct HealthReport: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Reads, writes and keys work.
        case serving
        /// Tokens are checked and issued, but writes (revocations, sign-ups, refresh
        /// rotations, sign-outs) are refused with 503 until the store can write again.
        case degraded
        /// tokend cannot do its job: the store cannot be read, or no key can sign.
        case unavailable
    }

    /// Why the store cannot be read, or nil.
    public var reads: String?
    /// Why the store cannot be written, or nil.
    public var writes: String?
    /// Why no token can be signed, or nil.
    public var keys: String?
    /// Why token checks are refused on a node of a fleet ("behind the fleet by N s: …"), or nil.
    public var fleet: String?
    /// Whether this node follows a shared store (then `/healthz` shows the `fleet` part).
    public var following = false
    /// This node's clock minus the database's, measured by its last heartbeat (fleet only).
    /// Shown, never a reason to refuse: tokens are checked with the leeway.
    public var clockOffset: Double?
    /// Why the clock offset is a problem (more than half the leeway), or nil.
    public var clockWarning: String?

    public init(reads: String? = nil, writes: String? = nil, keys: String? = nil) {
        self.reads = reads
        self.writes = writes
        self.keys = keys
    }

    public init(store: StoreHealth, keys: String?) {
        self.init(reads: store.reads, writes: store.writes, keys: keys)
    }

    public var status: Status {
        if reads != nil || keys != nil || fleet != nil { return .unavailable }
        return writes == nil ? .serving : .degraded
    }

    /// Everything works.
    public var healthy: Bool { status == .serving }

    /// The parts as `/healthz` shows them: `ok`, or `failing (reason)`.
    public var parts: [(name: String, state: String)] {
        var parts = [("reads", reads), ("writes", writes), ("keys", keys)]
        if following { parts.append(("fleet", fleet)) }
        return parts.map { part in (part.0, part.1.map { "failing (\($0))" } ?? "ok") }
    }

    /// One line: `serving`, or the state and what fails, e.g.
    /// `degraded: writes failing (the disk is full)`.
    public var reason: String {
        let failing = parts.filter { $0.state != "ok" }.map { "\($0.name) \($0.state)" }
        guard !failing.isEmpty else { return status.rawValue }
        return "\(status.rawValue): " + failing.joined(separator: "; ")
    }
}
