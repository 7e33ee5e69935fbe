import Systemd

/// The `process_*` families of the Prometheus client libraries (client_golang's process
/// collector: the same names, types and help texts), so the usual dashboards and alerts work.
enum ProcessMetrics {
    /// Appends the families for `statistics` in the text exposition format.
    static func append(_ statistics: ProcessStatistics, to buffer: inout [UInt8]) {
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            "\(statistics.cpuSeconds)"
        )
        family("process_open_fds", "gauge", "Number of open file descriptors.", "\(statistics.openFileDescriptors)")
        family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            statistics.maxFileDescriptors.map { "\($0)" } ?? "+Inf"
        )
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            "\(statistics.virtualMemoryBytes)"
        )
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            "\(statistics.residentMemoryBytes)"
        )
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            "\(statistics.startTimeSeconds)"
        )
        buffer.append(contentsOf: text.utf8)
    }
}
