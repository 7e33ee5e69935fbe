import Glibc

/// What the kernel says about this process's resources: memory, CPU time, start time and file
/// descriptors, read from `/proc/self` when asked. These are the figures of the standard
/// `process_*` metric families of the Prometheus client libraries.
public struct ProcessStatistics: Sendable, Equatable {
    /// Resident set size: memory in RAM now, in bytes.
    public var residentMemoryBytes: Int
    /// Size of the virtual address space, in bytes.
    public var virtualMemoryBytes: Int
    /// User plus system CPU time used so far, in seconds.
    public var cpuSeconds: Double
    /// When the process started, in seconds since the Unix epoch.
    public var startTimeSeconds: Double
    /// File descriptors open now.
    public var openFileDescriptors: Int
    /// The soft limit on open file descriptors (`RLIMIT_NOFILE`); nil when unlimited.
    public var maxFileDescriptors: Int?

    /// The figures now: a few small reads under `/proc/self`, no disk. Nil when `/proc` is
    /// not mounted or does not parse.
    public static func current() -> ProcessStatistics? {
        guard let stat = SystemCall.readSmallFile("/proc/self/stat"), let fields = StatFields(stat),
            let openFileDescriptors = countOpenFileDescriptors()
        else { return nil }
        let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return ProcessStatistics(
            residentMemoryBytes: fields.residentPages * max(1, sysconf(Int32(_SC_PAGESIZE))),
            virtualMemoryBytes: fields.virtualBytes,
            cpuSeconds: Double(fields.userTicks + fields.systemTicks) / ticks,
            startTimeSeconds: bootTimeSeconds + Double(fields.startTicks) / ticks,
            openFileDescriptors: openFileDescriptors,
            maxFileDescriptors: fileDescriptorLimit()
        )
    }

    /// The fields of `/proc/self/stat` (proc(5)) these statistics use.
    struct StatFields: Equatable {
        var userTicks: Int
        var systemTicks: Int
        var startTicks: Int
        var virtualBytes: Int
        var residentPages: Int

    }

    /// When the machine booted, in seconds since the Unix epoch: the wall clock minus the time
    /// since boot (the clock `starttime` in `/proc/self/stat` counts on). Read once.
    static let bootTimeSeconds: Double = {
        var realtime = timespec()
        var boottime = timespec()
        clock_gettime(CLOCK_REALTIME, &realtime)
        clock_gettime(CLOCK_BOOTTIME, &boottime)
        return Double(realtime.tv_sec - boottime.tv_sec) + Double(realtime.tv_nsec - boottime.tv_nsec) / 1e9
    }()

    /// The entries of `/proc/self/fd`, without the one this count itself opens.
    static func countOpenFileDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let fd = Int32(name), fd != own else { continue }
            count += 1
        }
        return count
    }

    /// `RLIMIT_NOFILE`'s soft limit, or nil when unlimited.
    static func fileDescriptorLimit() -> Int? {
        var limit = rlimit()
        // RLIM_INFINITY is all ones (glibc's `(rlim_t) -1`), which Swift cannot import.
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max
        else { return nil }
        return Int(clamping: limit.rlim_cur)
    }
}

extension ProcessStatistics.StatFields {
    /// Parses `pid (comm) state ppid …`; `comm` may hold spaces and parentheses, so the
    /// fields are counted from the last `)`.
    init?(_ text: String) {
        guard let close = text.lastIndex(of: ")") else { return nil }
        // fields[0] is field 3 (state) of proc(5).
        let fields = text[text.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Int? {
            let index = number - 3
            return index < fields.count ? Int(fields[index].filter { !$0.isWhitespace }) : nil
        }
        guard let utime = field(14), let stime = field(15), let starttime = field(22), let vsize = field(23),
            let rss = field(24)
        else { return nil }
        self.init(
            userTicks: utime,
            systemTicks: stime,
            startTicks: starttime,
            virtualBytes: vsize,
            residentPages: rss
        )
    }
}
