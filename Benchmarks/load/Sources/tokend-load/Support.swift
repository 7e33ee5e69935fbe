#if canImport(Glibc)
import Glibc
#endif

/// A failure that ends the program with a message (usage errors, setup failures).
struct LoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A run's measuring window on CLOCK_MONOTONIC: `warmup` seconds after the run starts, for
/// `seconds`. A request counts when it starts and ends inside it.
struct MeasuringWindow {
    let start: UInt64
    let end: UInt64

    init(warmup: Double, seconds: Double, from t0: UInt64 = monotonicNanos()) {
        start = t0 + UInt64(warmup * 1e9)
        end = t0 + UInt64((seconds + warmup) * 1e9)
    }

    func counts(started: UInt64, done: UInt64) -> Bool {
        done >= start && done <= end && started >= start
    }
}

extension ConnectionResult {
    /// A request that succeeded, started at `started`, done now: counted as completed, and as
    /// ok with its latency when `window` counts it.
    mutating func succeeded(started: UInt64, in window: MeasuringWindow) {
        let done = monotonicNanos()
        completed += 1
        guard window.counts(started: started, done: done) else { return }
        latencies.append(done &- started)
        ok += 1
    }
}

/// Sleeps until `deadline` (CLOCK_MONOTONIC nanoseconds).
func sleepUntil(_ deadline: UInt64) {
    var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

/// User plus system CPU seconds of this process so far (all threads).
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Wall-clock seconds since the epoch.
func unixTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    fflush(nil)
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Plain pthreads: one thread per connection, joined at the end.
enum Threads {
    private final class Body: @unchecked Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    static func spawn(_ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 1 << 20)
        let status = pthread_create(
            &thread,
            &attributes,
            { context in
                Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            },
            context
        )
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw LoadError("pthread_create failed: \(String(cString: strerror(status)))")
        }
        return thread
    }

    static func join(_ thread: pthread_t) {
        pthread_join(thread, nil)
    }

    /// Runs `body(i)` for i in 0..<count on `count` threads and returns once all are done.
    static func runAll(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) throws {
        var threads: [pthread_t] = []
        for i in 0..<count { threads.append(try spawn { body(i) }) }
        threads.forEach(join)
    }
}

/// A value written by exactly one thread and read by another only after joining it.
final class Slot<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// A start line for the connection threads: each waits until all are connected.
final class Barrier: @unchecked Sendable {
    private var barrier = pthread_barrier_t()
    init(_ count: Int) { pthread_barrier_init(&barrier, nil, UInt32(count)) }
    deinit { pthread_barrier_destroy(&barrier) }
    func wait() { pthread_barrier_wait(&barrier) }
}

/// Reads a whole file; throws with the path and errno text.
func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw LoadError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw LoadError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        result.append(contentsOf: chunk[0..<n])
    }
    return result
}

/// Writes a whole file (mode 0600), replacing it.
func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw LoadError("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            throw LoadError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        offset += n
    }
}

extension Double {
    /// Fixed-point text with `digits` decimals.
    func fixed(_ digits: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = buffer.withUnsafeMutableBufferPointer { pointer in
            withVaList([digits, self]) { vsnprintf(pointer.baseAddress, 64, "%.*f", $0) }
        }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
