#if canImport(Glibc)
import Glibc
#endif

/// Token texts in one contiguous blob, immutable once loaded (shared by every thread).
struct TokenList: Sendable {
    let blob: [UInt8]
    let offsets: [Int]  // count + 1 entries
    var count: Int { offsets.count - 1 }

    init(file path: String) throws {
        let bytes = try readFile(path)
        var blob: [UInt8] = []
        blob.reserveCapacity(bytes.count)
        var offsets = [0]
        offsets.reserveCapacity(bytes.count / 256)
        bytes.withUnsafeBufferPointer { all in
            var start = 0
            for i in 0...all.count where i == all.count || all[i] == UInt8(ascii: "\n") {
                var end = i
                if end > start, all[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                if end > start {
                    blob.append(contentsOf: UnsafeBufferPointer(rebasing: all[start..<end]))
                    offsets.append(blob.count)
                }
                start = i + 1
            }
        }
        guard offsets.count > 1 else { throw LoadError("\(path) holds no tokens") }
        self.blob = blob
        self.offsets = offsets
    }

    init(single token: [UInt8]) {
        blob = token
        offsets = [0, token.count]
    }

    func withToken<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        blob.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[offsets[index]..<offsets[index + 1]])) }
    }
}

/// What each connection sends.
enum RequestPlan: Sendable {
    /// The same bytes on every request of connection `c`: `requests[c % requests.count]`.
    case fixed([[UInt8]])
    /// `POST path` with form body `token=<tokens[offset + c + k·N]>` (unique tokens).
    case uniqueTokens(TokenList, path: String, offset: Int)

    static func introspection(path: String, token: UnsafeRawBufferPointer) -> [UInt8] {
        var request: [UInt8] = []
        appendIntrospection(&request, path: path, token: token)
        return request
    }

    @inline(__always)
    static func appendIntrospection(_ request: inout [UInt8], path: String, token: UnsafeRawBufferPointer) {
        request.append(contentsOf: "POST ".utf8)
        request.append(contentsOf: path.utf8)
        request.append(
            contentsOf:
                " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                .utf8
        )
        request.append(contentsOf: String(6 + token.count).utf8)
        request.append(contentsOf: "\r\n\r\ntoken=".utf8)
        request.append(contentsOf: token)
    }

    static func json(method: String = "POST", path: String, body: String) -> [UInt8] {
        let bytes = Array(body.utf8)
        var request = Array(
            "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: \(bytes.count)\r\n\r\n"
                .utf8
        )
        request.append(contentsOf: bytes)
        return request
    }
}

/// What a correct answer looks like.
struct Expectation: Sendable {
    var status: Int
    var bodyContains: [UInt8]
}

struct RunSettings: Sendable {
    var socket: String
    var connections: Int
    var seconds: Double
    var warmup: Double
    /// Total requests per second over all connections, paced per connection; nil: back to back.
    var rate: Double?
    var label: String
}

/// What one connection thread measured.
extension HTTPConnection {
    /// A connection to `path`, or nil with the failure counted in `result` (an I/O error, the
    /// first error's text kept): a measuring loop then reports it rather than stopping the run.
    static func opened(_ path: String, counting result: inout ConnectionResult) -> HTTPConnection? {
        do {
            return try HTTPConnection(path: path)
        } catch {
            result.ioErrors += 1
            result.firstError = "\(error)"
            return nil
        }
    }
}

struct ConnectionResult: Sendable {
    var latencies: [UInt64] = []  // ns, requests completed inside the measuring window
    var statuses: [Int: Int] = [:]
    var ok = 0
    var statusErrors = 0
    var bodyErrors = 0
    var ioErrors = 0
    var reconnects = 0
    var warmupErrors = 0
    var sent = 0  // requests started, warm-up included
    var completed = 0  // responses received, warm-up included
    var firstError: String?
}

/// The merged outcome of a run.
struct RunSummary {
    var settings: RunSettings
    var requests = 0
    var ok = 0
    var statusErrors = 0
    var bodyErrors = 0
    var ioErrors = 0
    var reconnects = 0
    var warmupErrors = 0
    var statuses: [Int: Int] = [:]
    var sorted: [UInt64] = []
    var sent = 0
    var completed = 0
    var maxPerConnection = 0
    var firstError: String?
    var tokenNextOffset: Int?
    var tokensWrapped = false
    /// This process's user+system CPU seconds during the run (the load generator's own cost).
    var cpuSeconds = 0.0

    init(settings: RunSettings) {
        self.settings = settings
    }

    /// The merged results of every connection of a run.
    init(settings: RunSettings, plan: RequestPlan, results: [ConnectionResult], cpuSeconds: Double) {
        self.settings = settings
        self.cpuSeconds = cpuSeconds
        var all: [UInt64] = []
        for r in results {
            all.append(contentsOf: r.latencies)
            ok += r.ok
            statusErrors += r.statusErrors
            bodyErrors += r.bodyErrors
            ioErrors += r.ioErrors
            reconnects += r.reconnects
            warmupErrors += r.warmupErrors
            sent += r.sent
            completed += r.completed
            maxPerConnection = max(maxPerConnection, r.sent)
            for (code, count) in r.statuses { statuses[code, default: 0] += count }
            if firstError == nil { firstError = r.firstError }
        }
        requests = ok + statusErrors + bodyErrors
        all.sort()
        sorted = all
        if case .uniqueTokens(let tokens, _, let offset) = plan {
            let used = maxPerConnection * settings.connections
            tokenNextOffset = (offset + used) % tokens.count
            tokensWrapped = used > tokens.count
        }
    }

    var errors: Int { statusErrors + bodyErrors + ioErrors }
    var throughput: Double { Double(requests) / settings.seconds }

    func percentile(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
        return Double(sorted[min(max(rank, 0), sorted.count - 1)]) / 1000
    }

    var mean: Double {
        guard !sorted.isEmpty else { return 0 }
        var total = 0.0
        for v in sorted { total += Double(v) }
        return total / Double(sorted.count) / 1000
    }

    var verdict: String {
        if requests == 0 { return "no-responses" }
        return errors == 0 ? "ok" : "errors"
    }

    func report() -> String {
        var out = ""
        let s = settings
        out +=
            "tokend-load: \(s.label) socket=\(s.socket) connections=\(s.connections) seconds=\(s.seconds.fixed(1)) warmup=\(s.warmup.fixed(1))"
        if let rate = s.rate { out += " rate=\(rate.fixed(0))/s (paced; latency from the scheduled send time)" }
        out += "\n"
        out +=
            "  \(requests) responses in \(s.seconds.fixed(2)) s = \(throughput.fixed(1)) req/s; ok \(ok), errors \(errors)"
        out += " (status \(statusErrors), body \(bodyErrors), i/o \(ioErrors)); reconnects \(reconnects)\n"
        let statusText = statuses.keys.sorted().map { "\($0): \(statuses[$0]!)" }.joined(separator: ", ")
        out += "  statuses: \(statusText.isEmpty ? "none" : statusText)\n"
        out +=
            "  latency µs: p50 \(percentile(0.5).fixed(1))  p90 \(percentile(0.9).fixed(1))  p99 \(percentile(0.99).fixed(1))"
        out += "  p99.9 \(percentile(0.999).fixed(1))  max \(percentile(1).fixed(1))  mean \(mean.fixed(1))\n"
        if warmupErrors > 0 { out += "  warm-up errors: \(warmupErrors)\n" }
        if let firstError { out += "  first error: \(firstError)\n" }
        if tokensWrapped { out += "  WARNING: the token list wrapped; some unique tokens were sent twice\n" }
        if errors > 0 || requests == 0 { out += "  RESULT HAS ERRORS\n" }
        var fields: [(String, String)] = [
            ("label", s.label), ("connections", "\(s.connections)"), ("seconds", s.seconds.fixed(3)),
            ("rate", s.rate.map { $0.fixed(0) } ?? "max"),
            ("requests", "\(requests)"), ("rps", throughput.fixed(1)), ("ok", "\(ok)"), ("errors", "\(errors)"),
            ("status_errors", "\(statusErrors)"), ("body_errors", "\(bodyErrors)"), ("io_errors", "\(ioErrors)"),
            ("warmup_errors", "\(warmupErrors)"), ("reconnects", "\(reconnects)"),
            ("all_responses", "\(completed)"), ("load_cpu_s", cpuSeconds.fixed(2)),
            ("p50_us", percentile(0.5).fixed(1)), ("p90_us", percentile(0.9).fixed(1)),
            ("p99_us", percentile(0.99).fixed(1)),
            ("p999_us", percentile(0.999).fixed(1)), ("max_us", percentile(1).fixed(1)), ("mean_us", mean.fixed(1)),
        ]
        for code in statuses.keys.sorted() { fields.append(("status_\(code)", "\(statuses[code]!)")) }
        if let tokenNextOffset { fields.append(("token_next_offset", "\(tokenNextOffset)")) }
        fields.append(("tokens_wrapped", tokensWrapped ? "1" : "0"))
        fields.append(("verdict", verdict))
        out += "RESULT " + fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") + "\n"
        return out
    }
}

enum LoadRunner {
    /// One request on a fresh connection, checked against `expect`: fails fast on a wrong setup.
    static func preflight(socket: String, request: [UInt8], expect: Expectation) throws {
        let connection: HTTPConnection
        do { connection = try HTTPConnection(path: socket) } catch { throw LoadError("preflight: \(error)") }
        do {
            try request.withUnsafeBytes { try connection.send($0) }
            let response = try connection.receive()
            let body = String(decoding: response.body.prefix(400), as: UTF8.self)
            guard response.status == expect.status, contains(response.body, expect.bodyContains) else {
                throw LoadError(
                    "preflight: expected status \(expect.status) and a body containing \(String(decoding: expect.bodyContains, as: UTF8.self)); got \(response.status): \(body)"
                )
            }
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError("preflight: \(error)")
        }
    }

    static func run(_ settings: RunSettings, plan: RequestPlan, expect: Expectation) throws -> RunSummary {
        let n = settings.connections
        let barrier = Barrier(n)
        let slots = (0..<n).map { _ in Slot(ConnectionResult()) }
        let cpuBefore = processCPUSeconds()
        try Threads.runAll(n) { c in
            slots[c].value = connectionLoop(c, settings: settings, plan: plan, expect: expect, barrier: barrier)
        }
        return RunSummary(
            settings: settings,
            plan: plan,
            results: slots.map(\.value),
            cpuSeconds: processCPUSeconds() - cpuBefore
        )
    }

    static func connectionLoop(
        _ c: Int,
        settings: RunSettings,
        plan: RequestPlan,
        expect: Expectation,
        barrier: Barrier
    ) -> ConnectionResult {
        var result = ConnectionResult()
        let connection = HTTPConnection.opened(settings.socket, counting: &result)
        let expectedSeconds = settings.seconds + settings.warmup
        var estimate = 20_000.0 * settings.seconds / Double(settings.connections)
        if let rate = settings.rate { estimate = rate * settings.seconds / Double(settings.connections) * 1.1 }
        result.latencies.reserveCapacity(Int(min(estimate, 4_000_000)))
        barrier.wait()
        guard let connection else { return result }

        let t0 = monotonicNanos()
        let windowStart = t0 + UInt64(settings.warmup * 1e9)
        let windowEnd = t0 + UInt64(expectedSeconds * 1e9)
        let n = settings.connections
        var interval: UInt64 = 0
        var nextSend = t0
        if let rate = settings.rate {
            interval = UInt64(Double(n) / rate * 1e9)
            nextSend = t0 + interval * UInt64(c) / UInt64(n)
        }
        var scratch: [UInt8] = []
        scratch.reserveCapacity(4096)
        var k = 0
        while true {
            var started = monotonicNanos()
            if started >= windowEnd { break }
            if interval > 0 {
                if nextSend >= windowEnd { break }
                if started < nextSend {
                    sleepUntil(nextSend)
                }
                started = nextSend  // latency from the scheduled time (no coordinated omission)
                nextSend += interval
            }
            result.sent += 1
            let response: HTTPConnection.Response
            do {
                switch plan {
                case .fixed(let requests):
                    try requests[c % requests.count].withUnsafeBytes { try connection.send($0) }
                case .uniqueTokens(let tokens, let path, let offset):
                    let index = (offset + c + k * n) % tokens.count
                    scratch.removeAll(keepingCapacity: true)
                    tokens.withToken(index) { RequestPlan.appendIntrospection(&scratch, path: path, token: $0) }
                    try scratch.withUnsafeBytes { try connection.send($0) }
                }
                k += 1
                response = try connection.receive()
            } catch {
                let done = monotonicNanos()
                if done >= windowStart { result.ioErrors += 1 } else { result.warmupErrors += 1 }
                if result.firstError == nil { result.firstError = "\(error)" }
                do {
                    try connection.connect()
                    result.reconnects += 1
                } catch {
                    if result.firstError == nil { result.firstError = "\(error)" }
                    break
                }
                continue
            }
            let done = monotonicNanos()
            result.completed += 1
            let good = response.status == expect.status
            let bodyGood = good && contains(response.body, expect.bodyContains)
            if done >= windowStart && done <= windowEnd && started >= windowStart {
                result.latencies.append(done &- started)
                result.statuses[response.status, default: 0] += 1
                if !good {
                    result.statusErrors += 1
                } else if !bodyGood {
                    result.bodyErrors += 1
                } else {
                    result.ok += 1
                }
            } else if !bodyGood {
                result.warmupErrors += 1
            }
            if !bodyGood && result.firstError == nil {
                result.firstError =
                    "status \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))"
            }
            if response.closes {
                do {
                    try connection.connect()
                    result.reconnects += 1
                } catch {
                    if result.firstError == nil { result.firstError = "\(error)" }
                    break
                }
            }
        }
        return result
    }
}
