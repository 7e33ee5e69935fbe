public import Prometheus
import Systemd
import TokenService

/// What `GET /metrics` answers: the families tokend records, each with its `# HELP` text, and
/// the standard `process_*` families.
public enum MetricsExposition {
    /// The `# HELP` text of every family tokend records, by name: what each one measures. Give
    /// it to ``DescribedMetricsFactory`` when bootstrapping the metrics system.
    public static let help: [String: String] = HTTPMetrics.help.merging(TokenService.metricsHelp) { http, _ in http }

    /// The registry's families, then the process families read from `/proc/self` now (a few
    /// small reads, no disk; left out when `/proc` cannot be read).
    public static func render(_ registry: PrometheusCollectorRegistry) -> [UInt8] {
        var buffer = registry.emitToBuffer()
        if let statistics = ProcessStatistics.current() {
            ProcessMetrics.append(statistics, to: &buffer)
        }
        return buffer
    }
}
