import CArgon2Load

#if canImport(Glibc)
import Glibc
#endif

/// Back-to-back load from one thread over every connection, as wrk does: an epoll loop that
/// answers each response with that connection's next request.
///
/// One blocking thread per connection (``LoadRunner/connectionLoop``) makes the server's
/// every write wake a sleeping thread on the load core, an inter-processor interrupt that the
/// kernel charges to the *server's* core and that grows as the load core idles. With one
/// thread waiting in `epoll_wait`, a wake-up covers every connection that became readable, the
/// way a busy sidecar's event loop receives answers; nginx and tokend are measured the same way.
enum MultiplexedRunner {
    private struct Connection {
        let http: HTTPConnection
        var sentAt: UInt64 = 0
        var k = 0
        var result = ConnectionResult()
    }

    static func run(
        _ settings: RunSettings,
        plan: RequestPlan,
        expect: Expectation,
        busyPoll: Bool
    ) throws -> RunSummary {
        let n = settings.connections
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw LoadError("epoll_create1: \(String(cString: strerror(errno)))") }
        defer { close(epoll) }

        var connections: [Connection] = []
        connections.reserveCapacity(n)
        for c in 0..<n {
            let http: HTTPConnection
            do { http = try HTTPConnection(path: settings.socket) } catch {
                throw LoadError("connection \(c): \(error)")
            }
            var connection = Connection(http: http)
            connection.result.latencies.reserveCapacity(Int(min(400_000.0 * settings.seconds / Double(n), 4_000_000)))
            connections.append(connection)
            try register(epoll, http.fd, c)
        }

        let cpuBefore = processCPUSeconds()
        let window = MeasuringWindow(warmup: settings.warmup, seconds: settings.seconds)
        var scratch: [UInt8] = []
        scratch.reserveCapacity(4096)

        func send(_ c: Int) -> Bool {
            var connection = connections[c]
            defer { connections[c] = connection }
            connection.result.sent += 1
            connection.sentAt = monotonicNanos()
            do {
                switch plan {
                case .fixed(let requests):
                    try requests[c % requests.count].withUnsafeBytes { try connection.http.send($0) }
                case .uniqueTokens(let tokens, let path, let offset):
                    let index = (offset + c + connection.k * n) % tokens.count
                    scratch.removeAll(keepingCapacity: true)
                    tokens.withToken(index) { RequestPlan.appendIntrospection(&scratch, path: path, token: $0) }
                    try scratch.withUnsafeBytes { try connection.http.send($0) }
                }
                connection.k += 1
                return true
            } catch {
                connection.result.ioErrors += 1
                if connection.result.firstError == nil { connection.result.firstError = "\(error)" }
                return false
            }
        }

        func reconnect(_ c: Int) -> Bool {
            let http = connections[c].http
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, http.fd, nil)
            do {
                try http.connect()
                try register(epoll, http.fd, c)
                connections[c].result.reconnects += 1
                return send(c)
            } catch {
                if connections[c].result.firstError == nil { connections[c].result.firstError = "\(error)" }
                return false
            }
        }

        for c in 0..<n where !send(c) { _ = reconnect(c) }

        var events = [epoll_event](repeating: epoll_event(), count: max(n, 1))
        while true {
            let now = monotonicNanos()
            if now >= window.end { break }
            let timeout = busyPoll ? 0 : Int32(min((window.end - now) / 1_000_000 + 1, 1000))
            let ready = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32(n), timeout) }
            if ready < 0 {
                if errno == EINTR { continue }
                throw LoadError("epoll_wait: \(String(cString: strerror(errno)))")
            }
            for e in 0..<Int(ready) {
                let c = Int(events[e].data.u64)
                let http = connections[c].http
                do {
                    guard try http.receiveAvailable() else { continue }
                    while let response = try http.parse() {
                        let done = monotonicNanos()
                        let started = connections[c].sentAt
                        let good = response.status == expect.status
                        let bodyGood = good && contains(response.body, expect.bodyContains)
                        connections[c].result.completed += 1
                        if window.counts(started: started, done: done) {
                            connections[c].result.latencies.append(done &- started)
                            connections[c].result.statuses[response.status, default: 0] += 1
                            if !good {
                                connections[c].result.statusErrors += 1
                            } else if !bodyGood {
                                connections[c].result.bodyErrors += 1
                            } else {
                                connections[c].result.ok += 1
                            }
                        } else if !bodyGood {
                            connections[c].result.warmupErrors += 1
                        }
                        if !bodyGood && connections[c].result.firstError == nil {
                            connections[c].result.firstError =
                                "status \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))"
                        }
                        if done >= window.end { break }
                        if response.closes {
                            _ = reconnect(c)
                        } else if !send(c) {
                            _ = reconnect(c)
                        }
                        break  // one request in flight per connection
                    }
                } catch {
                    let done = monotonicNanos()
                    if done >= window.start {
                        connections[c].result.ioErrors += 1
                    } else {
                        connections[c].result.warmupErrors += 1
                    }
                    if connections[c].result.firstError == nil { connections[c].result.firstError = "\(error)" }
                    _ = reconnect(c)
                }
            }
        }

        return RunSummary(
            settings: settings,
            plan: plan,
            results: connections.map(\.result),
            cpuSeconds: processCPUSeconds() - cpuBefore
        )
    }

    private static func register(_ epoll: Int32, _ fd: Int32, _ c: Int) throws {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        event.data.u64 = UInt64(c)
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw LoadError("epoll_ctl: \(String(cString: strerror(errno)))")
        }
    }
}
