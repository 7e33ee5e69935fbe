import Logging
import Metrics
import NIOCore

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
}
