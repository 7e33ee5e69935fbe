import Metrics

/// The request metrics of one connection. Metric handles are cached per connection (the
/// handler is confined to its event loop), so the hot path does not go through the metrics
/// factory's lock for every request.
struct HTTPMetrics {
    static let requestsLabel = "tokend_http_requests_total"
    static let durationLabel = "tokend_http_request_duration_seconds"
    static let connectionsLabel = "tokend_http_connections"

    /// The `# HELP` text of these families: what each one measures.
    static let help = [
        requestsLabel: "HTTP requests answered, by route name and status code.",
        durationLabel:
            "Time to answer a request in seconds, from its last byte read to its answer written, by route name.",
        connectionsLabel: "Client connections open now, across every listener.",
    ]

    private struct CounterKey: Hashable {
        var route: String
        var status: Int
    }

    private let factory: any MetricsFactory
    private var counters: [CounterKey: Counter] = [:]
    private var timers: [String: Timer] = [:]
    /// The handles of the last request's route and status: a connection mostly repeats them.
    private var last: (key: CounterKey, counter: Counter, timer: Timer)?

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    mutating func record(route: String, status: Int, nanoseconds: Int64) {
        if let last, last.key.status == status, last.key.route == route {
            last.counter.increment()
            last.timer.recordNanoseconds(nanoseconds)
            return
        }
        let key = CounterKey(route: route, status: status)
        let counter: Counter
        if let cached = counters[key] {
            counter = cached
        } else {
            counter = Counter(
                label: Self.requestsLabel,
                dimensions: [("route", route), ("status", String(status))],
                factory: factory
            )
            counters[key] = counter
        }
        counter.increment()

        let timer: Timer
        if let cached = timers[route] {
            timer = cached
        } else {
            timer = Timer(
                label: Self.durationLabel,
                dimensions: [("route", route)],
                preferredDisplayUnit: .seconds,
                factory: factory
            )
            timers[route] = timer
        }
        timer.recordNanoseconds(nanoseconds)
        last = (key, counter, timer)
    }

    /// A request refused before it had a route (connection cap).
    static func recordRefused(route: String, status: Int, factory: any MetricsFactory) {
        Counter(label: requestsLabel, dimensions: [("route", route), ("status", String(status))], factory: factory)
            .increment()
    }
}
