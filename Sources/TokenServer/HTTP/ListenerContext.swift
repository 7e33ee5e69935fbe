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
}
