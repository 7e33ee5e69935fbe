import Metrics
import Prometheus
import Testing

@testable import Systemd
@testable import TokenServer

/// What `/metrics` shows a Prometheus user: help text on every family, the process families.
@Suite("Metrics exposition")
struct MetricsExpositionTests {
    @Test("families registered through DescribedMetricsFactory carry their # HELP line before # TYPE")
    func helpLines() {
        let registry = PrometheusCollectorRegistry()
        let factory = DescribedMetricsFactory(
            registry: registry,
            help: [
                "things_total": "Things done, by kind.",
                "wait_seconds": "Time waited, with a \\ backslash.",
                "open_things": "Things open now.",
            ]
        )
        Metrics.Counter(label: "things_total", dimensions: [("kind", "a")], factory: factory).increment()
        Metrics.Counter(label: "things_total", dimensions: [("kind", "b")], factory: factory).increment(by: 2)
        Metrics.Timer(label: "wait_seconds", factory: factory).recordMilliseconds(20)
        Metrics.Gauge(label: "open_things", factory: factory).record(3)
        Metrics.Counter(label: "undescribed_total", factory: factory).increment()

        let lines = String(decoding: registry.emitToBuffer(), as: UTF8.self).split(separator: "\n").map(String.init)
        func follows(_ help: String, _ type: String) -> Bool {
            guard let index = lines.firstIndex(of: help) else { return false }
            return index + 1 < lines.count && lines[index + 1] == type
        }
        #expect(follows("# HELP things_total Things done, by kind.", "# TYPE things_total counter"), "\(lines)")
        #expect(follows(#"# HELP wait_seconds Time waited, with a \\ backslash."#, "# TYPE wait_seconds histogram"))
        #expect(follows("# HELP open_things Things open now.", "# TYPE open_things gauge"))
        #expect(lines.contains(#"things_total{kind="b"} 2"#))
        #expect(lines.contains("wait_seconds_count 1"))
        #expect(lines.contains("open_things 3.0"))
        #expect(lines.contains("# TYPE undescribed_total counter"))
        #expect(!lines.contains { $0.hasPrefix("# HELP undescribed_total") })
    }

    @Test("the process families have the standard names, types and help of the Prometheus client libraries")
    func processFamilies() {
        var statistics = ProcessStatistics(
            residentMemoryBytes: 45_445_120,
            virtualMemoryBytes: 933_470_208,
            cpuSeconds: 0.07,
            startTimeSeconds: 1_796_532_166.52,
            openFileDescriptors: 26,
            maxFileDescriptors: 20000
        )
        var buffer: [UInt8] = []
        ProcessMetrics.append(statistics, to: &buffer)
        #expect(
            String(decoding: buffer, as: UTF8.self) == """
                # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
                # TYPE process_cpu_seconds_total counter
                process_cpu_seconds_total 0.07
                # HELP process_open_fds Number of open file descriptors.
                # TYPE process_open_fds gauge
                process_open_fds 26
                # HELP process_max_fds Maximum number of open file descriptors.
                # TYPE process_max_fds gauge
                process_max_fds 20000
                # HELP process_virtual_memory_bytes Virtual memory size in bytes.
                # TYPE process_virtual_memory_bytes gauge
                process_virtual_memory_bytes 933470208
                # HELP process_resident_memory_bytes Resident memory size in bytes.
                # TYPE process_resident_memory_bytes gauge
                process_resident_memory_bytes 45445120
                # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
                # TYPE process_start_time_seconds gauge
                process_start_time_seconds 1796532166.52

                """
        )
        statistics.maxFileDescriptors = nil
        buffer = []
        ProcessMetrics.append(statistics, to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self).contains("\nprocess_max_fds +Inf\n"))
    }
}
