import Foundation
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Slow clients (issue 10, finding 4): 1,030 connections that each send a byte of a request
/// head every few hundred milliseconds used to keep every connection slot, the admin socket's
/// included, past the idle timeout. Now a head must be whole within the head deadline, each
/// listener has its own cap, and the admin socket keeps room API clients never take.
@Suite("Slow clients cannot take tokend from its operators")
struct SlowClientTests {
    @Test(
        "while 1,030 slow connections hold the API socket, tokenctl status and keys revoke work; after the head deadline the slow connections are closed with 408 and a new API client gets 200"
    )
    func slowConnectionsLeaveAdminAndExpire() async throws {
        try raiseOpenFileLimit(to: 4096)
        let environment = ["TOKEND_HEADER_TIMEOUT": "2s", "TOKEND_MAX_CONNECTIONS": "64"]
        try await withTokend("slowloris", environment: environment) { daemon in
            let kid = try await nextKid(daemon)
            let attack = SlowAttack(path: daemon.apiSocket, connections: 1_030)
            let attacker = Thread { attack.run() }
            attacker.start()
            defer { attack.stop() }

            // The API socket is full: a new client is refused.
            _ = try await eventually("the API socket to refuse new clients", timeout: .seconds(60)) {
                () async throws -> Bool? in
                (try? await http(daemon.apiSocket, "GET", "/healthz", timeout: 5))?.status == 503 ? true : nil
            }
            let refusedBefore = attack.outcomes.refused

            // Operators still get through on the admin socket.
            let status = try await daemon.tokenctl(["status"])
            #expect(status.succeeded, "tokenctl status during the attack:\n\(status)")
            let revoke = try await daemon.tokenctl(["keys", "revoke", kid])
            #expect(revoke.succeeded, "tokenctl keys revoke during the attack:\n\(revoke)")
            let states = try await daemon.tokenctl(["keys", "list", "--json"])
            #expect(states.stdout.contains("revoked"), "the key was not revoked:\n\(states)")

            // The attack was going on all along: the API kept refusing its connections.
            _ = try await eventually("the API to refuse more of the attack's connections", timeout: .seconds(60)) {
                attack.outcomes.refused > refusedBefore ? true : nil
            }

            // The attacker stops opening connections but keeps trickling on those it holds: the
            // head deadline closes each of them, with a 408 for those tokend served.
            attack.stopReconnecting()
            let outcomes = try await eventually("every slow connection to be closed", timeout: .seconds(60)) {
                attack.openCount == 0 ? attack.outcomes : nil
            }
            #expect(outcomes.timedOut >= 64, "\(outcomes)")
            #expect(outcomes.other == 0, "answers other than 408 and 503: \(outcomes)")

            let health = try await http(daemon.apiSocket, "GET", "/healthz")
            #expect(health.status == 200, "a new API client after the attack: \(health.summary)")

            // One warning line per interval for the closed connections, not one per connection.
            let warnings = daemon.log.components(separatedBy: "\n").filter { $0.contains("closed slow connections") }
            #expect(!warnings.isEmpty, "no log line for the slow connections")
            #expect(warnings.count < outcomes.timedOut, "\(warnings.count) lines for \(outcomes.timedOut) connections")
        }
    }

    @Test("a body that stops arriving is answered 408 and its connection closed, and the next client is served")
    func stalledBodyIsCut() async throws {
        try await withTokend("slowbody", environment: ["TOKEND_BODY_TIMEOUT": "1s"]) { daemon in
            let api = daemon.apiSocket
            let reply = try await onThread { () -> (Reply?, Bool) in
                let connection = try UnixConnection(path: api, timeout: 30)
                defer { connection.close() }
                try connection.send(
                    "POST /oauth2/introspect HTTP/1.1\r\nHost: x\r\n"
                        + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken="
                )
                // A byte of the body now and then, never all of it.
                for _ in 0..<20 {
                    guard try connection.send("a") else { break }
                    usleep(200_000)
                }
                let (bytes, closed) = connection.readToEnd()
                return (Reply.parseAll(bytes).first, closed)
            }
            #expect(reply.0?.status == 408, "\(reply.0?.summary ?? "no answer")")
            #expect(reply.1, "the connection stayed open")
            #expect(try await http(api, "GET", "/healthz").status == 200)
        }
    }

    /// The kid of the key in state `next`, which can be revoked without stopping issuance.
    private func nextKid(_ daemon: Tokend) async throws -> String {
        let listed = try await daemon.tokenctl(["keys", "list", "--json"])
        guard let object = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]],
            let kid = keys.first(where: { $0["state"] as? String == "next" })?["kid"] as? String
        else { throw HarnessError("tokenctl keys list --json:\n\(listed)") }
        return kid
    }

    private func raiseOpenFileLimit(to wanted: rlim_t) throws {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { throw HarnessError("getrlimit: \(errno)") }
        guard limit.rlim_cur < wanted else { return }
        limit.rlim_cur = min(wanted, limit.rlim_max)
        guard setrlimit(resource, &limit) == 0, limit.rlim_cur >= 1_100 else {
            throw HarnessError("the test needs 1,100 open files; the hard limit is \(limit.rlim_max)")
        }
    }
}

/// Many connections that each send one byte of a request head every half second and never
/// finish it; a connection that is closed (or refused with 503) is opened again two seconds
/// later until `stopReconnecting()`. Runs on a thread of its own, non-blocking sockets.
final class SlowAttack: Sendable {
    struct Outcomes: Sendable, CustomStringConvertible {
        /// Closed after a 408 (tokend served the connection, then cut it at the head deadline).
        var timedOut = 0
        /// Closed after a 503 (over the connection cap).
        var refused = 0
        /// Closed with any other answer, or none.
        var other = 0
        var description: String { "408: \(timedOut), 503: \(refused), other: \(other)" }
    }

    private struct State {
        var outcomes = Outcomes()
        var open = 0
        var reconnecting = true
        var stopped = false
    }

    private let path: String
    private let connections: Int
    private let state = Mutex(State())

    init(path: String, connections: Int) {
        self.path = path
        self.connections = connections
    }

    var outcomes: Outcomes { state.withLock { $0.outcomes } }
    var openCount: Int { state.withLock { $0.open } }
    func stopReconnecting() { state.withLock { $0.reconnecting = false } }
    func stop() { state.withLock { $0.stopped = true } }

    private struct Slot {
        var fd: Int32 = -1
        var sent = 0
        var answer: [UInt8] = []
        var reopenAt = ContinuousClock.now
    }

    private static let head = Array(
        "POST /oauth2/introspect HTTP/1.1\r\nHost: x\r\nX-Slow: \(String(repeating: "a", count: 4000))".utf8
    )

    func run() {
        var slots = [Slot](repeating: Slot(), count: connections)
        var lastTrickle = ContinuousClock.now
        while !state.withLock({ $0.stopped }) {
            let reconnecting = state.withLock { $0.reconnecting }
            let now = ContinuousClock.now
            let trickle = now - lastTrickle >= .milliseconds(500)
            if trickle { lastTrickle = now }
            for index in slots.indices {
                if slots[index].fd < 0 {
                    if reconnecting, now >= slots[index].reopenAt { open(&slots[index]) }
                    continue
                }
                if readAndCheckClosed(&slots[index]) {
                    finish(&slots[index], now: now)
                } else if trickle {
                    let byte = Self.head[slots[index].sent % Self.head.count]
                    let n = withUnsafeBytes(of: byte) {
                        Glibc.send(slots[index].fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    }
                    if n == 1 { slots[index].sent += 1 }
                }
            }
            usleep(50_000)
        }
        for slot in slots where slot.fd >= 0 { Glibc.close(slot.fd) }
    }

    private func open(_ slot: inout Slot) {
        let fd = socket(
            AF_UNIX,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
            0
        )
        guard fd >= 0 else { return }
        guard connectUnixSocket(fd, to: path) == 0 else {
            // The backlog is full (EAGAIN): try again later.
            Glibc.close(fd)
            slot.reopenAt = ContinuousClock.now + .milliseconds(200)
            return
        }
        slot = Slot(fd: fd)
        // The first byte of the head at once.
        var first = Self.head[0]
        if Glibc.send(fd, &first, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) == 1 { slot.sent = 1 }
        state.withLock { $0.open += 1 }
    }

    /// Reads what tokend sent; true once it closed the connection.
    private func readAndCheckClosed(_ slot: inout Slot) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(slot.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                if slot.answer.count < 64 { slot.answer += chunk[..<min(n, 64)] }
                continue
            }
            if n == 0 { return true }
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
        }
    }

    private func finish(_ slot: inout Slot, now: ContinuousClock.Instant) {
        Glibc.close(slot.fd)
        let status = String(decoding: slot.answer.prefix(12), as: UTF8.self)
        state.withLock { state in
            state.open -= 1
            switch status {
            case "HTTP/1.1 408": state.outcomes.timedOut += 1
            case "HTTP/1.1 503": state.outcomes.refused += 1
            default: state.outcomes.other += 1
            }
        }
        slot = Slot(reopenAt: now + .seconds(2))
    }
}
