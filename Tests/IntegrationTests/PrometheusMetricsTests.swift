import Foundation
import Testing
import TokenTestSupport

/// `/metrics` as a Prometheus user expects it (issue 9 item 9): promtool accepts a live scrape,
/// every family says what it measures, and the standard process families are there.
@Suite("Metrics as Prometheus expects them")
struct PrometheusMetricsTests {
    @Test("promtool check metrics accepts a scrape of the live daemon; the process families hold plausible values")
    func promtoolAcceptsTheScrape() async throws {
        let promtool = try await SystemPackages.ensure("prometheus", providing: "promtool")
        let started = Date().timeIntervalSince1970
        try await withTokend("promtool") { daemon in
            // Traffic, so the request, introspection, cache, issuance, rotation and revocation
            // families have series with labels.
            let tokens = try await daemon.issue(sub: "metrics", refresh: true)
            #expect(try await daemon.isActive(tokens.accessToken))
            #expect(try await daemon.isActive(tokens.accessToken))
            let refreshed = try await daemon.refresh(try #require(tokens.refreshToken))
            #expect(refreshed.status == 200)
            #expect(try await daemon.revoke(tokens.accessToken).status == 200)
            #expect(try await http(daemon.apiSocket, "GET", "/no/such/route").status == 404)

            let scrape = try await http(daemon.apiSocket, "GET", "/metrics")
            #expect(scrape.status == 200)
            let text = scrape.text
            let file = daemon.sandbox.file("metrics.txt")
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try await run(
                "/bin/sh",
                ["-c", #"exec "$0" check metrics < "$1""#, promtool, file],
                in: daemon.sandbox.path,
                display: "promtool check metrics < metrics.txt"
            )
            #expect(check.succeeded, "\(check)\n--- scrape\n\(text)")
            #expect(check.output.isEmpty, "\(check)")

            let lines = text.split(separator: "\n")
            let families = lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
            #expect(families.count >= 16, "10 of tokend's, 6 of the process: \(families)")
            for family in families {
                #expect(lines.contains { $0.hasPrefix("# HELP \(family) ") }, "\(family) has no help text")
            }

            /// The value of an unlabelled sample.
            func value(_ name: String) -> Double? {
                lines.first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
            }
            let resident = try #require(value("process_resident_memory_bytes"))
            let virtual = try #require(value("process_virtual_memory_bytes"))
            #expect(resident > 1_048_576 && resident <= virtual, "resident \(resident), virtual \(virtual)")
            let openFDs = try #require(value("process_open_fds"))
            let maxFDs = try #require(value("process_max_fds"))
            #expect(
                openFDs >= 5 && openFDs <= maxFDs,
                "stdio and two listening sockets at least: \(openFDs) of \(maxFDs)"
            )
            let cpu = try #require(value("process_cpu_seconds_total"))
            #expect(cpu > 0)
            let start = try #require(value("process_start_time_seconds"))
            let now = Date().timeIntervalSince1970
            #expect(start >= started - 2 && start <= now, "started at \(start), the test started it at \(started)")
        }
    }
}
