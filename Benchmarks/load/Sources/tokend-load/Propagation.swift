import CArgon2Load

#if canImport(Glibc)
import Glibc
#endif

/// Propagation across a fleet (issue 12 item 7): how long after one node acknowledges a
/// revocation the other nodes answer `{"active":false}` for the token.
///
/// For each of `count` revocations, in turn: an access token is issued on the revoking node
/// (admin socket), introspected once on every watched node (each must say active, and now
/// holds it in its verified-token cache), then, after a random pause, revoked on the revoking
/// node's API socket. The clock starts when the 200 of the revocation arrives; one thread per
/// watched node introspects the token until the answer is inactive, and the time of that
/// answer's arrival is the node's sample. A watcher polls every `pollMicros` (its resolution),
/// so the load it adds to the nodes stays small. A node that still says active after
/// `timeout` seconds counts as a miss, and the run's verdict is then failed.
enum Propagation {
    struct Settings {
        var revokeSocket = ""
        var adminSocket = ""
        var watchSockets: [String] = []
        var count = 500
        var pollMicros = 500
        var jitterMillis = 100
        var timeout = 10.0
        var label = "propagation"
    }

    /// Samples per watched node, in milliseconds, and the misses.
    struct Outcome {
        var samples: [[Double]]
        var misses: [Int]
        var seconds: Double
    }

    static func run(_ settings: Settings) throws -> Outcome {
        let admin = try HTTPConnection(path: settings.adminSocket)
        let revoker = try HTTPConnection(path: settings.revokeSocket)
        let watchers = try settings.watchSockets.map { try HTTPConnection(path: $0) }
        var samples = Array(repeating: [Double](), count: watchers.count)
        var misses = Array(repeating: 0, count: watchers.count)
        var generator = SystemRandomNumberGenerator()
        let began = monotonicNanos()
        for i in 0..<settings.count {
            let token = try issue(admin, subject: "\(settings.label)-\(i)")
            let introspection = token.withUnsafeBytes {
                RequestPlan.introspection(path: "/oauth2/introspect", token: $0)
            }
            for (w, watcher) in watchers.enumerated() {
                guard try active(watcher, introspection) == true else {
                    throw LoadError("\(settings.watchSockets[w]) does not say a fresh token is active")
                }
            }
            if settings.jitterMillis > 0 {
                let pause = UInt64.random(in: 0...UInt64(settings.jitterMillis) * 1_000_000, using: &generator)
                sleepUntil(monotonicNanos() + pause)
            }
            let revocation = revokeRequest(token)
            let response = try revocation.withUnsafeBytes { bytes -> Int in
                try revoker.send(bytes)
                return try revoker.receive().status
            }
            let acknowledged = monotonicNanos()
            guard response == 200 else { throw LoadError("revocation \(i) answered \(response)") }
            let results = (0..<watchers.count).map { _ in Slot<Double?>(nil) }
            let connections = watchers.map { Slot($0) }
            try Threads.runAll(watchers.count) { w in
                results[w].value = watch(
                    connections[w].value,
                    introspection,
                    since: acknowledged,
                    poll: UInt64(settings.pollMicros) * 1000,
                    timeout: UInt64(settings.timeout * 1e9)
                )
            }
            for w in 0..<watchers.count {
                if let milliseconds = results[w].value { samples[w].append(milliseconds) } else { misses[w] += 1 }
            }
        }
        return Outcome(samples: samples, misses: misses, seconds: Double(monotonicNanos() - began) / 1e9)
    }

    /// Introspects until the answer is inactive: milliseconds from `since` to that answer, or
    /// nil after `timeout` nanoseconds (or when the connection fails).
    static func watch(
        _ connection: HTTPConnection,
        _ request: [UInt8],
        since: UInt64,
        poll: UInt64,
        timeout: UInt64
    ) -> Double? {
        while true {
            let sent = monotonicNanos()
            guard let answer = try? active(connection, request) else { return nil }
            let now = monotonicNanos()
            if answer == false { return Double(now - since) / 1e6 }
            if now - since > timeout { return nil }
            sleepUntil(sent + poll)
        }
    }

    /// Whether the introspection answer says active; nil for anything but 200.
    static func active(_ connection: HTTPConnection, _ request: [UInt8]) throws -> Bool? {
        try request.withUnsafeBytes { try connection.send($0) }
        let response = try connection.receive()
        guard response.status == 200 else { return nil }
        if contains(response.body, Array(#""active":true"#.utf8)) { return true }
        if contains(response.body, Array(#""active":false"#.utf8)) { return false }
        return nil
    }

    /// `POST /admin/tokens` for `subject`: the access token.
    static func issue(_ admin: HTTPConnection, subject: String) throws -> [UInt8] {
        let request = RequestPlan.json(path: "/admin/tokens", body: #"{"sub":"\#(subject)"}"#)
        try request.withUnsafeBytes { try admin.send($0) }
        let response = try admin.receive()
        let key = Array(#""access_token":""#.utf8)
        guard response.status == 200, let base = response.body.baseAddress,
            let hit = key.withUnsafeBytes({ tokend_load_memmem(base, response.body.count, $0.baseAddress, $0.count) })
        else {
            throw LoadError(
                "POST /admin/tokens answered \(response.status): "
                    + String(decoding: response.body.prefix(200), as: UTF8.self)
            )
        }
        let start = UnsafeRawPointer(base).distance(to: hit) + key.count
        var end = start
        while end < response.body.count, response.body[end] != UInt8(ascii: "\"") { end += 1 }
        return Array(response.body[start..<end])
    }

    /// `POST /oauth2/revoke` with `token=TOKEN` (a JWT needs no escaping in a form).
    static func revokeRequest(_ token: [UInt8]) -> [UInt8] {
        let body = Array("token=".utf8) + token
        var request = Array(
            "POST /oauth2/revoke HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.count)\r\n\r\n"
                .utf8
        )
        request.append(contentsOf: body)
        return request
    }

    /// The sample at quantile `q` (nearest rank) of sorted `values`.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    /// Per node and over all nodes: `RESULT`-style lines.
    static func report(_ outcome: Outcome, settings: Settings) -> String {
        func line(_ name: String, _ values: [Double], misses: Int) -> String {
            let sorted = values.sorted()
            return "label=\(settings.label) node=\(name) samples=\(sorted.count) misses=\(misses)"
                + " p50_ms=\(quantile(sorted, 0.5).fixed(2)) p90_ms=\(quantile(sorted, 0.9).fixed(2))"
                + " p99_ms=\(quantile(sorted, 0.99).fixed(2)) max_ms=\((sorted.last ?? .nan).fixed(2))"
                + " min_ms=\((sorted.first ?? .nan).fixed(2))"
        }
        var text = ""
        for (w, socket) in settings.watchSockets.enumerated() {
            text += "NODE " + line(socket, outcome.samples[w], misses: outcome.misses[w]) + "\n"
        }
        let all = outcome.samples.flatMap { $0 }
        let missed = outcome.misses.reduce(0, +)
        text +=
            "RESULT " + line("all", all, misses: missed) + " revocations=\(settings.count)"
            + " poll_us=\(settings.pollMicros) jitter_ms=\(settings.jitterMillis) seconds=\(outcome.seconds.fixed(1))"
            + " verdict=\(missed == 0 && !all.isEmpty ? "ok" : "failed")\n"
        return text
    }
}

/// A stream of revocations on one node (issue 12 item 7's "concurrent revocation stream"):
/// issue an access token through the admin socket, revoke it on the API socket, back to back
/// (or paced to `rate` per second) for `seconds`.
enum RevocationStream {
    static func run(
        apiSocket: String,
        adminSocket: String,
        seconds: Double,
        rate: Double?,
        label: String
    ) throws
        -> String
    {
        let admin = try HTTPConnection(path: adminSocket)
        let api = try HTTPConnection(path: apiSocket)
        let began = monotonicNanos()
        let end = began + UInt64(seconds * 1e9)
        var done = 0
        var errors = 0
        while monotonicNanos() < end {
            let token = try Propagation.issue(admin, subject: "\(label)-\(done)")
            let status = try Propagation.revokeRequest(token).withUnsafeBytes { bytes -> Int in
                try api.send(bytes)
                return try api.receive().status
            }
            if status == 200 { done += 1 } else { errors += 1 }
            if let rate { sleepUntil(began + UInt64(Double(done + errors) / rate * 1e9)) }
        }
        let elapsed = Double(monotonicNanos() - began) / 1e9
        return "RESULT label=\(label) revocations=\(done) errors=\(errors) seconds=\(elapsed.fixed(2))"
            + " rate=\((Double(done) / elapsed).fixed(1)) verdict=\(errors == 0 ? "ok" : "failed")\n"
    }
}
