import Glibc
import Testing

@testable import Systemd

/// The figures behind the `process_*` metric families, checked against what the kernel says
/// elsewhere (`/proc/self/status`, `/proc/self/limits`).
@Suite("Process statistics")
struct ProcessStatisticsTests {
    @Test("/proc/self/stat fields are counted from the last ')', so a command name with spaces and parentheses parses")
    func statFields() throws {
        // proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime
        // vsize rss …
        let line =
            "4242 (tok) end (x) S 1 4242 4242 0 -1 4194560 900 0 3 0 "
            + "150 25 7 8 20 0 5 0 123456 987654321 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n"
        let fields = try #require(ProcessStatistics.StatFields(line))
        #expect(
            fields
                == ProcessStatistics.StatFields(
                    userTicks: 150,
                    systemTicks: 25,
                    startTicks: 123_456,
                    virtualBytes: 987_654_321,
                    residentPages: 4321
                )
        )
        #expect(ProcessStatistics.StatFields("4242 (truncated) S 1 2 3") == nil)
        #expect(ProcessStatistics.StatFields("no parenthesis at all") == nil)
    }

    @Test("memory agrees with VmRSS and VmSize of /proc/self/status, the fd limit with /proc/self/limits")
    func agreesWithTheKernel() throws {
        let statistics = try #require(ProcessStatistics.current())
        let status = try #require(SystemCall.readSmallFile("/proc/self/status"))
        func kilobytes(_ name: String) throws -> Double {
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix(name + ":") })
            return try #require(Double(line.split(separator: " ").dropFirst().first ?? "")) * 1024
        }
        let rss = Double(statistics.residentMemoryBytes)
        let size = Double(statistics.virtualMemoryBytes)
        // Read a moment apart while other tests run: close, not equal.
        #expect(abs(rss - (try kilobytes("VmRSS"))) < 0.25 * rss, "\(rss) bytes resident")
        #expect(abs(size - (try kilobytes("VmSize"))) < 0.25 * size, "\(size) bytes virtual")

        let limits = try #require(SystemCall.readSmallFile("/proc/self/limits"))
        let openFiles = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let soft = openFiles.dropFirst("Max open files".count).split(separator: " ").first.map(String.init)
        #expect(soft == (statistics.maxFileDescriptors.map { String($0) } ?? "unlimited"))
        #expect(statistics.openFileDescriptors >= 3, "stdin, stdout and stderr at least")
        #expect(statistics.maxFileDescriptors.map { statistics.openFileDescriptors <= $0 } ?? true)
    }

    @Test("CPU time grows by the time spent computing; the start time is in the past hour")
    func cpuAndStart() throws {
        func threadCPUSeconds() -> Double {
            var now = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
            return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        }
        let before = try #require(ProcessStatistics.current())
        let start = threadCPUSeconds()
        var sink = 0
        while threadCPUSeconds() - start < 0.15 {
            for value in 0..<100_000 { sink &+= value &* value }
        }
        let after = try #require(ProcessStatistics.current())
        withExtendedLifetime(sink) {}  // the loop is the point
        // At least this thread's 150 ms, read in clock ticks (10 ms).
        #expect(after.cpuSeconds - before.cpuSeconds >= 0.1, "\(before.cpuSeconds) s → \(after.cpuSeconds) s")

        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let seconds = Double(now.tv_sec)
        #expect(after.startTimeSeconds <= seconds + 1 && after.startTimeSeconds > seconds - 3600)
        #expect(after.startTimeSeconds == before.startTimeSeconds)
    }
}
