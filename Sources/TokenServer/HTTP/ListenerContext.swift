import Logging
import Metrics
import NIOCore
import Synchronization

/// What every connection of one listener shares. Immutable.
struct ListenerContext: Sendable {
    var router: Router
    var kind: ListenerKind
    var configuration: HTTPServerConfiguration
    var logger: Logger
    var registry: ConnectionRegistry
    var metricsFactory: any MetricsFactory
    /// The listener's address, for log lines.
    var addressDescription: String
    /// The listener's index in the registry, and the connections it may have open.
    var index: Int
    var maxConnections: Int
    /// Connections refused at this listener's cap, logged at most once per interval.
    var refusals: IntervalLog
    /// Connections closed at a request deadline (head or body too slow), logged likewise.
    var timeouts: IntervalLog
    /// Refused connections still lingering (holding a descriptor) on this listener.
    var lingeringRefusals = LingeringRefusals()
}

/// Counts refused connections that linger after their 503 (so that a request crossing the
/// close reads the answer, not a reset). Each holds a file descriptor the caps do not count:
/// a client that keeps reconnecting past the cap could otherwise fill the process's file table
/// with them, and then `accept` fails on every listener, the admin socket's included. Past
/// `limit`, refusals close at once after their answer.
final class LingeringRefusals: Sendable {
    static let limit = 64
    private let count = Atomic<Int>(0)

    /// Takes a lingering slot; false when `limit` are taken (close at once instead).
    func take() -> Bool {
        if count.wrappingAdd(1, ordering: .relaxed).newValue <= Self.limit { return true }
        count.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func release() { count.wrappingSubtract(1, ordering: .relaxed) }
}
