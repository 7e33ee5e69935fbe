import CSQLiteLoad
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A bare model of a server around the raw rotation (`sqlite-rotate --serve`), to tell what the
/// shape of a server costs apart from what tokend's own code costs.
///
/// One client thread, pinned to its own core, sends a 400-byte request over a Unix socket and
/// busy-polls for the 1,500-byte answer, back to back, like `tokend-load run --mode refresh
/// --busy-poll`. On the server's core, a thread polling the socket reads each request and spins
/// `--request-work-us` µs (standing for HTTP, the grant and its cryptography), then:
/// - `handoff`: hands the rotation to a writer thread through a pipe and goes back to `poll`;
///   the writer runs `SQLiteRotate.Rotation.rotate()` (the reference's exact transaction and
///   commit) and writes to a second pipe, on which the polling thread writes the answer. This is
///   the shape DESIGN §9 requires: no store write on an event loop.
/// - `inline`: runs the rotation on the polling thread itself, then answers.
///
/// Nothing else runs: no HTTP parsing, no JSON, no allocation per request, no crypto.
enum SQLiteHandoff {
    enum Shape: String {
        case handoff
        case inline
    }

    static let requestBytes = 400
    static let answerBytes = 1500

    /// What the three threads share; each descriptor is used by the threads named beside it.
    private final class Shared: @unchecked Sendable {
        // @unchecked Sendable: the descriptors and settings are set before any thread starts;
        // `rotation` is used by one thread only (the writer, or the server when inline); the
        // rest is atomic or behind a mutex.
        let settings: SQLiteRotate.Settings
        let shape: Shape
        let rotation: SQLiteRotate.Rotation
        /// The server's end of the socket pair (server thread) and the client's (client thread).
        let server: Int32
        let client: Int32
        /// Server → writer: a rotation to run (a byte on `work[1]`, read from `work[0]`).
        /// Writer → server: it committed (`done`, likewise).
        let work: [Int32]
        let done: [Int32]
        let stop = Atomic<Bool>(false)
        /// The first failure of any thread (reported as the run's first error).
        let failure = Mutex<String?>(nil)

        init(_ settings: SQLiteRotate.Settings, shape: Shape, rotation: SQLiteRotate.Rotation) throws {
            self.settings = settings
            self.shape = shape
            self.rotation = rotation
            var pair: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
                throw LoadError("socketpair: \(String(cString: strerror(errno)))")
            }
            server = pair[0]
            client = pair[1]
            var work: [Int32] = [-1, -1]
            var done: [Int32] = [-1, -1]
            guard pipe(&work) == 0, pipe(&done) == 0 else {
                let reason = String(cString: strerror(errno))
                for fd in pair + work + done where fd >= 0 { close(fd) }
                throw LoadError("pipe: \(reason)")
            }
            self.work = work
            self.done = done
        }

        deinit {
            for fd in [server, client] + work + done where fd >= 0 { close(fd) }
        }

        func fail(_ reason: String) {
            failure.withLock { if $0 == nil { $0 = reason } }
            stop.store(true, ordering: .releasing)
        }

        var stopped: Bool { stop.load(ordering: .acquiring) }
    }

    static func run(_ settings: SQLiteRotate.Settings, shape: Shape) throws -> RunSummary {
        let shared = try Shared(settings, shape: shape, rotation: try SQLiteRotate.Rotation(settings, family: 0))
        let result = Slot(ConnectionResult())
        let cpuBefore = processCPUSeconds()
        var threads: [pthread_t] = []
        if shape == .handoff { threads.append(try Threads.spawn { writer(shared) }) }
        threads.append(try Threads.spawn { server(shared) })
        let clientThread = try Threads.spawn { result.value = client(shared) }
        Threads.join(clientThread)
        shared.stop.store(true, ordering: .releasing)
        signal(shared.work[1])
        threads.forEach(Threads.join)
        var outcome = result.value
        if let failure = shared.failure.withLock({ $0 }) {
            outcome.statusErrors += 1
            outcome.firstError = outcome.firstError ?? failure
        }
        return RunSummary(
            settings: RunSettings(
                socket: settings.database,
                connections: 1,
                seconds: settings.seconds,
                warmup: settings.warmup,
                rate: nil,
                label: settings.label
            ),
            plan: .fixed([]),
            results: [outcome],
            cpuSeconds: processCPUSeconds() - cpuBefore
        )
    }

    /// Runs a rotation each time the server asks, and says when it committed.
    private static func writer(_ shared: Shared) {
        while !shared.stopped {
            var byte: UInt8 = 0
            let n = read(shared.work[0], &byte, 1)
            if shared.stopped { return }
            guard n == 1 else {
                if n < 0 && errno == EINTR { continue }
                shared.fail("reading the work pipe: \(String(cString: strerror(errno)))")
                return
            }
            do {
                try shared.rotation.rotate()
            } catch {
                shared.fail("\(error)")
                return
            }
            signal(shared.done[1])
        }
    }

    /// The serving thread: requests in, work, hand-off (or the rotation itself), answers out.
    private static func server(_ shared: Shared) {
        var watched = [
            pollfd(fd: shared.server, events: Int16(POLLIN), revents: 0),
            pollfd(fd: shared.done[0], events: Int16(POLLIN), revents: 0),
        ]
        let answer = [UInt8](repeating: 0x61, count: answerBytes)
        var input = [UInt8](repeating: 0, count: 4096)
        var buffered = 0
        let work = UInt64(shared.settings.requestWorkMicros) * 1000
        while !shared.stopped {
            let ready = poll(&watched, nfds_t(watched.count), 100)
            guard ready >= 0 else {
                if errno == EINTR { continue }
                return shared.fail("poll: \(String(cString: strerror(errno)))")
            }
            if watched[1].revents != 0 {
                var byte: UInt8 = 0
                _ = read(shared.done[0], &byte, 1)
                guard writeAll(shared.server, answer) else { return shared.fail("writing an answer") }
            }
            guard watched[0].revents != 0 else { continue }
            let n = read(shared.server, &input, input.count)
            guard n > 0 else {
                if n < 0 && errno == EINTR { continue }
                let reason = n == 0 ? "the client closed its socket" : String(cString: strerror(errno))
                return shared.fail("reading a request: \(reason)")
            }
            buffered += n
            while buffered >= requestBytes {
                buffered -= requestBytes
                spin(nanoseconds: work)
                if shared.shape == .inline {
                    do {
                        try shared.rotation.rotate()
                    } catch {
                        return shared.fail("\(error)")
                    }
                    guard writeAll(shared.server, answer) else { return shared.fail("writing an answer") }
                } else {
                    signal(shared.work[1])
                }
            }
        }
    }

    private static func signal(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
    }

    /// The client: one request at a time, busy-polling for each answer; latencies of the
    /// requests that start and end inside the measuring window.
    private static func client(_ shared: Shared) -> ConnectionResult {
        var result = ConnectionResult()
        if let core = shared.settings.clientCore, !pin(to: core) {
            result.ioErrors += 1
            result.firstError = "cannot pin the client to core \(core): \(String(cString: strerror(errno)))"
            return result
        }
        _ = fcntl(shared.client, F_SETFL, fcntl(shared.client, F_GETFL) | O_NONBLOCK)
        let request = [UInt8](repeating: 0x71, count: requestBytes)
        var input = [UInt8](repeating: 0, count: 4096)
        let settings = shared.settings
        result.latencies.reserveCapacity(Int(min(20_000 * settings.seconds, 4_000_000)))
        let window = MeasuringWindow(warmup: settings.warmup, seconds: settings.seconds)
        while !shared.stopped {
            let started = monotonicNanos()
            if started >= window.end { break }
            result.sent += 1
            guard writeAll(shared.client, request) else {
                result.ioErrors += 1
                result.firstError = "writing a request: \(String(cString: strerror(errno)))"
                break
            }
            var received = 0
            while received < answerBytes && !shared.stopped {
                let n = read(shared.client, &input, input.count)
                if n > 0 {
                    received += n
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    result.ioErrors += 1
                    result.firstError =
                        "reading an answer: \(n == 0 ? "the server closed its socket" : String(cString: strerror(errno)))"
                    break
                }
            }
            guard received >= answerBytes else { break }
            result.succeeded(started: started, in: window)
        }
        return result
    }

    /// Writes all of `bytes`, retrying partial writes (and EAGAIN on a non-blocking socket).
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EINTR || errno == EAGAIN) {
                continue
            } else {
                return false
            }
        }
        return true
    }

    private static func spin(nanoseconds: UInt64) {
        guard nanoseconds > 0 else { return }
        let end = monotonicNanos() + nanoseconds
        while monotonicNanos() < end {}
    }

    /// Pins the calling thread to `core`.
    private static func pin(to core: Int32) -> Bool {
        var mask = [UInt64](repeating: 0, count: 16)
        mask[Int(core) / 64] |= 1 << UInt64(core % 64)
        return mask.withUnsafeBytes { tokend_load_sched_setaffinity(0, UInt($0.count), $0.baseAddress) == 0 }
    }
}
