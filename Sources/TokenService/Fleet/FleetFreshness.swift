import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How current a node's memory is with the store the fleet shares (DESIGN §10,
/// `TOKEND_MAX_STALENESS`): the time of the last read that saw every committed change, and
/// the bound past which introspection refuses to vouch for a token.
///
/// Read on every introspection: one atomic load and one monotonic clock reading. A node that
/// follows no store (SQLite, one host) is never stale: its memory holds every acknowledged
/// revocation.
public final class FleetFreshness: Sendable {
    /// Seconds past which the node refuses; nil never refuses (`TOKEND_MAX_STALENESS=0`).
    public let bound: Double?
    /// A monotonic clock in seconds (never steps with the wall clock).
    let uptime: @Sendable () -> Double
    /// `uptime` at the start of the last read that caught up, as its bit pattern; NaN while
    /// the node follows nothing.
    private let caughtUpBits = Atomic<UInt64>(Double.nan.bitPattern)

    public init(bound: Double?, uptime: @escaping @Sendable () -> Double = FleetFreshness.monotonic) {
        precondition(bound.map { $0 > 0 } ?? true, "the staleness bound must be positive (nil never refuses)")
        self.bound = bound
        self.uptime = uptime
    }

    /// CLOCK_BOOTTIME in seconds: monotonic, and it keeps counting while the machine is
    /// suspended (CLOCK_MONOTONIC stops), so a node resumed after a pause is as stale as it is.
    public static let monotonic: @Sendable () -> Double = {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Whether the node follows a shared store (and so can fall behind).
    public var following: Bool { !Double(bitPattern: caughtUpBits.load(ordering: .relaxed)).isNaN }

    /// Records a read that began at `instant` (an `uptime` reading) and saw every change
    /// committed before it. An older instant than the one recorded changes nothing.
    func caughtUp(at instant: Double) {
        var current = caughtUpBits.load(ordering: .relaxed)
        while true {
            let recorded = Double(bitPattern: current)
            if !recorded.isNaN, recorded >= instant { return }
            let (exchanged, original) = caughtUpBits.compareExchange(
                expected: current,
                desired: instant.bitPattern,
                ordering: .relaxed
            )
            if exchanged { return }
            current = original
        }
    }

    /// Seconds since the last read that caught up began; nil when the node follows nothing.
    public var staleness: Double? {
        let recorded = Double(bitPattern: caughtUpBits.load(ordering: .relaxed))
        if recorded.isNaN { return nil }
        return max(0, uptime() - recorded)
    }

    /// How far behind the node is when that is beyond the bound (it must not vouch for
    /// tokens), else nil.
    @inline(__always)
    public func behind() -> Double? {
        guard let bound, let staleness, staleness > bound else { return nil }
        return staleness
    }

    /// Why the node refuses to check tokens, for a 503 and `/healthz`, when it does.
    public var refusal: String? {
        guard let behind = behind(), let bound else { return nil }
        return "behind the fleet by \(Int(behind.rounded(.down))) s: no read of the shared store has caught up "
            + "within TOKEND_MAX_STALENESS (\(Self.seconds(bound))), so a revocation made on another node may be "
            + "missing here"
    }

    static func seconds(_ value: Double) -> String {
        value.rounded() == value ? "\(Int64(value))s" : "\(value)s"
    }
}
