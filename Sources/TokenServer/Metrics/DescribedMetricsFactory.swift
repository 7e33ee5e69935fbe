public import Metrics
public import Prometheus

/// A swift-metrics factory over a `PrometheusCollectorRegistry` that registers every family
/// with its `# HELP` text.
///
/// swift-prometheus's `PrometheusMetricsFactory` registers each family with an empty help text,
/// and the registry traps when a name is registered again with another one, so the help text
/// has to come with a family's first registration: here, looked up by the metric's label.
/// Labels without help text are registered exactly as `PrometheusMetricsFactory` would.
public struct DescribedMetricsFactory: MetricsFactory {
    /// Where the families are registered, and what `/metrics` emits.
    public var registry: PrometheusCollectorRegistry { plain.registry }
    private let plain: PrometheusMetricsFactory
    private let help: [String: String]

    /// A factory registering into `registry`, with `help[label]` as each family's help text.
    public init(registry: PrometheusCollectorRegistry, help: [String: String]) {
        self.plain = PrometheusMetricsFactory(registry: registry)
        self.help = help
    }

    private func descriptor(_ label: String) -> MetricNameDescriptor? {
        help[label].map { MetricNameDescriptor(metricName: label, unitName: "", helpText: $0) }
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        guard let descriptor = descriptor(label) else { return plain.makeCounter(label: label, dimensions: dimensions) }
        return registry.makeCounter(descriptor: descriptor, labels: dimensions)
    }

    public func makeFloatingPointCounter(
        label: String,
        dimensions: [(String, String)]
    ) -> any FloatingPointCounterHandler {
        guard let descriptor = descriptor(label) else {
            return plain.makeFloatingPointCounter(label: label, dimensions: dimensions)
        }
        return registry.makeCounter(descriptor: descriptor, labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard let descriptor = descriptor(label) else {
            return plain.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
        }
        guard aggregate else { return registry.makeGauge(descriptor: descriptor, labels: dimensions) }
        let buckets = plain.valueHistogramBuckets[label] ?? plain.defaultValueHistogramBuckets
        return registry.makeValueHistogram(descriptor: descriptor, labels: dimensions, buckets: buckets)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard let descriptor = descriptor(label) else { return plain.makeMeter(label: label, dimensions: dimensions) }
        return registry.makeGauge(descriptor: descriptor, labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        guard let descriptor = descriptor(label) else { return plain.makeTimer(label: label, dimensions: dimensions) }
        let buckets = plain.durationHistogramBuckets[label] ?? plain.defaultDurationHistogramBuckets
        return registry.makeDurationHistogram(descriptor: descriptor, labels: dimensions, buckets: buckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        plain.destroyCounter(handler)
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        plain.destroyFloatingPointCounter(handler)
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        plain.destroyRecorder(handler)
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        plain.destroyMeter(handler)
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        plain.destroyTimer(handler)
    }
}
