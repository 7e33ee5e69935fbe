import CArgon2Load

#if canImport(Glibc)
import Glibc
#endif

/// Refresh-token rotations through tokend (issue 11 item 8): every connection owns one refresh
/// family, issued through the admin socket, and rotates it back to back with
/// `POST /oauth2/token` `grant_type=refresh_token`, always presenting the newest refresh token
/// it was given. Each rotation is one durable write in tokend, so the rate is the store's.
///
/// Any answer but 200 with a new `refresh_token` is an error and ends that connection's loop:
/// without the successor it has nothing valid left to present, and a load that quietly
/// retried would measure something else.
enum RefreshRunner {
    /// Issues `count` refresh families through the admin socket (`POST /admin/tokens` with
    /// `"refresh": true`, subjects `<prefix><i>`); returns their first refresh tokens.
    static func issue(adminSocket: String, count: Int, subjectPrefix: String) throws -> [[UInt8]] {
        let connection: HTTPConnection
        do { connection = try HTTPConnection(path: adminSocket) } catch {
            throw LoadError("admin socket: \(error)")
        }
        var tokens: [[UInt8]] = []
        for i in 0..<count {
            let request = RequestPlan.json(
                path: "/admin/tokens",
                body: #"{"sub":"\#(subjectPrefix)\#(i)","scope":"read write","client_id":"tokend-load","refresh":true}"#
            )
            let response: HTTPConnection.Response
            do {
                try request.withUnsafeBytes { try connection.send($0) }
                response = try connection.receive()
            } catch {
                throw LoadError("issuing refresh family \(i): \(error)")
            }
            guard response.status == 200, let token = refreshToken(in: response.body) else {
                throw LoadError(
                    "issuing refresh family \(i): POST /admin/tokens answered \(response.status): "
                        + String(decoding: response.body.prefix(300), as: UTF8.self)
                )
            }
            tokens.append(token)
        }
        return tokens
    }

    /// The value of `"refresh_token":"…"` in a JSON body (tokend writes it without escapes:
    /// refresh tokens are base64url).
    static func refreshToken(in body: UnsafeRawBufferPointer) -> [UInt8]? {
        let key = Array(#""refresh_token":""#.utf8)
        guard let base = body.baseAddress,
            let hit = key.withUnsafeBytes({ tokend_load_memmem(base, body.count, $0.baseAddress, $0.count) })
        else { return nil }
        let start = UnsafeRawPointer(base).distance(to: hit) + key.count
        var end = start
        while end < body.count, body[end] != UInt8(ascii: "\"") { end += 1 }
        guard end < body.count, end > start else { return nil }
        return Array(body[start..<end])
    }

    /// `POST /oauth2/token` with `grant_type=refresh_token&refresh_token=TOKEN` into `request`.
    static func rotation(_ request: inout [UInt8], token: [UInt8]) {
        var body = Array("grant_type=refresh_token&refresh_token=".utf8)
        for byte in token {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                body.append(byte)
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                body.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            }
        }
        request.removeAll(keepingCapacity: true)
        request.append(
            contentsOf:
                "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                .utf8
        )
        request.append(contentsOf: String(body.count).utf8)
        request.append(contentsOf: "\r\n\r\n".utf8)
        request.append(contentsOf: body)
    }

    /// One thread per connection, each rotating its own family back to back. With `busyPoll`
    /// a thread waits for its answer by polling its socket (yielding between polls) instead of
    /// sleeping in `read`: as for the other loads (`--busy-poll`), the server's core is then not
    /// charged the inter-processor interrupt of waking a sleeping load thread per response.
    static func run(_ settings: RunSettings, tokens: [[UInt8]], busyPoll: Bool) throws -> RunSummary {
        let n = settings.connections
        precondition(tokens.count >= n, "one refresh family per connection")
        let barrier = Barrier(n)
        let slots = (0..<n).map { _ in Slot(ConnectionResult()) }
        let cpuBefore = processCPUSeconds()
        try Threads.runAll(n) { c in
            slots[c].value = loop(settings: settings, token: tokens[c], barrier: barrier, busyPoll: busyPoll)
        }
        return RunSummary(
            settings: settings,
            plan: .fixed([]),
            results: slots.map(\.value),
            cpuSeconds: processCPUSeconds() - cpuBefore
        )
    }

    private static func loop(
        settings: RunSettings,
        token first: [UInt8],
        barrier: Barrier,
        busyPoll: Bool
    ) -> ConnectionResult {
        var result = ConnectionResult()
        let connection = HTTPConnection.opened(settings.socket, counting: &result)
        result.latencies.reserveCapacity(Int(min(20_000 * settings.seconds, 4_000_000)))
        barrier.wait()
        guard let connection else { return result }
        let window = MeasuringWindow(warmup: settings.warmup, seconds: settings.seconds)
        var token = first
        var request: [UInt8] = []
        request.reserveCapacity(512)
        while true {
            let started = monotonicNanos()
            if started >= window.end { break }
            rotation(&request, token: token)
            result.sent += 1
            let response: HTTPConnection.Response
            do {
                try request.withUnsafeBytes { try connection.send($0) }
                if busyPoll {
                    var parsed = try connection.parse()
                    while parsed == nil {
                        if !(try connection.receiveAvailable()) { sched_yield() }
                        parsed = try connection.parse()
                    }
                    response = parsed!
                } else {
                    response = try connection.receive()
                }
            } catch {
                result.ioErrors += 1
                result.firstError = "\(error)"
                break
            }
            let done = monotonicNanos()
            result.completed += 1
            let next = response.status == 200 ? refreshToken(in: response.body) : nil
            let counted = window.counts(started: started, done: done)
            if counted {
                result.latencies.append(done &- started)
                result.statuses[response.status, default: 0] += 1
            }
            guard let next else {
                // Counted whenever it happens, warm-up included: a refused rotation is a bug.
                if response.status == 200 { result.bodyErrors += 1 } else { result.statusErrors += 1 }
                result.firstError =
                    "status \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))"
                break
            }
            if counted { result.ok += 1 }
            token = next
            if response.closes {
                result.ioErrors += 1
                result.firstError = "tokend closed the connection"
                break
            }
        }
        return result
    }
}
