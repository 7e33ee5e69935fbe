import Foundation
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Clients that do not play by the rules of one request, one read (issue 10, findings 2 and 11):
/// pipelining without reading, half-closing, and keep-alive across a SIGTERM.
@Suite("Hostile connections to the daemon's socket")
struct HostileConnectionTests {
    @Test("a client that pipelines GET /metrics and never reads moves RSS by < 64 MB, then reads only whole 200s")
    func pipeliningFloodIsBounded() async throws {
        try await withTokend("backpressure") { daemon in
            let api = daemon.apiSocket
            let pid = daemon.pid
            let before = try residentBytes(pid)
            let request = requestBytes("GET", "/metrics", keepAlive: true)
            // Sends until the socket takes nothing more for a while (or 50,000 requests), then
            // asks on another connection, then reads.
            let (sent, peak, health, statuses) = try await onThread { () -> (Int, Int, Int, [Int: Int]) in
                let flooder = try UnixConnection(path: api, timeout: 30)
                defer { flooder.close() }
                let fd = flooder.descriptor
                let total = 50_000
                let batch = Array((0..<1000).map { _ in request }.joined())
                var sentBytes = 0
                var peak = 0
                var stalledSince: ContinuousClock.Instant?
                while sentBytes < total * request.count {
                    let offset = sentBytes % batch.count
                    let left = min(batch.count - offset, total * request.count - sentBytes)
                    let n = batch[offset..<(offset + left)].withUnsafeBytes {
                        Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    }
                    if n > 0 {
                        sentBytes += n
                        stalledSince = nil
                        continue
                    }
                    guard n < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                        throw HarnessError("send: \(String(cString: strerror(errno)))")
                    }
                    peak = max(peak, (try? residentBytes(pid)) ?? 0)
                    let now = ContinuousClock.now
                    if let since = stalledSince, now - since > .seconds(3) { break }
                    if stalledSince == nil { stalledSince = now }
                    usleep(50_000)
                }
                peak = max(peak, try residentBytes(pid))
                let sent = sentBytes / request.count

                let other = try UnixConnection(path: api, timeout: 10)
                try other.send(requestBytes("GET", "/healthz"))
                let health = try other.readResponse().status

                // Now it reads: every answer is a whole 200, as many as it sent whole requests.
                var counts: [Int: Int] = [:]
                for _ in 0..<sent {
                    let reply = try flooder.readResponse()
                    counts[reply.status, default: 0] += 1
                    guard reply.text.contains("tokend_") else { throw HarnessError("an incomplete /metrics body") }
                }
                return (sent, peak, health, counts)
            }
            let growth = peak - before
            #expect(growth < 64 << 20, "RSS grew by \(growth >> 20) MB after \(sent) pipelined requests")
            #expect(sent > 1000, "the socket took only \(sent) requests")
            #expect(health == 200, "another client is served meanwhile")
            #expect(statuses == [200: sent])
        }
    }

    @Test("a client that half-closes after a request to an async route reads the whole answer")
    func halfClosedClientIsAnswered() async throws {
        try await withTokend("half-close") { daemon in
            for (socket, method, path, body) in [
                (daemon.apiSocket, "POST", "/oauth2/revoke", RequestBody.form([("token", "not.a.token")])),
                (daemon.adminSocket, "GET", "/admin/status", nil),
            ] {
                let reply = try await onThread {
                    let connection = try UnixConnection(path: socket, timeout: 10)
                    defer { connection.close() }
                    try connection.send(requestBytes(method, path, body: body, keepAlive: true))
                    shutdown(connection.descriptor, Int32(SHUT_WR))
                    let reply = try connection.readResponse()
                    return (reply, connection.isClosedByPeer(within: .seconds(5)))
                }
                #expect(reply.0.status == 200, "\(method) \(path): \(reply.0.summary)")
                #expect(reply.1, "the connection closes after the answer")
            }
        }
    }

    @Test("after SIGTERM a keep-alive answer carries Connection: close and the connection ends")
    func answersAfterSIGTERMCloseTheConnection() async throws {
        try await withTokend("quiesce") { daemon in
            let api = daemon.apiSocket
            let user = RequestBody.json(
                #"{"username":"quiesce-user","email":"q@example.com","password":"correct horse battery"}"#
            )
            let created = try await http(daemon.adminSocket, "POST", "/admin/users", body: user)
            #expect(created.status < 300, "\(created.summary)")
            let (first, second, closed) = try await onThread {
                let connection = try UnixConnection(path: api, timeout: 10)
                defer { connection.close() }
                try connection.send(requestBytes("GET", "/healthz", keepAlive: true))
                let first = try connection.readResponse()
                // A sign-in hashes for a while: SIGTERM lands while it runs.
                let signIn = RequestBody.json(#"{"username":"quiesce-user","password":"correct horse battery"}"#)
                try connection.send(requestBytes("POST", "/user/auth", body: signIn, keepAlive: true))
                usleep(5_000)
                daemon.send(SIGTERM)
                let second = try connection.readResponse()
                return (first, second, connection.isClosedByPeer(within: .seconds(5)))
            }
            #expect(first.header("Connection") != "close")
            #expect(second.header("Connection") == "close", "\(second.status) \(second.headers)")
            #expect(closed)
        }
    }

    @Test("keep-alive clients busy across a SIGTERM see answers and ends of stream, never a reset")
    func noResetsAcrossSIGTERM() async throws {
        try await withTokend("quiesce-busy") { daemon in
            let api = daemon.apiSocket
            // SIGTERM goes once every client has had an answer: a connection still in the
            // listen backlog when tokend closes its listener is reset by the kernel, which says
            // nothing about connections tokend serves (seen on a loaded machine).
            let served = ServedCount()
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        try await onThread { () -> String in
                            let connection = try UnixConnection(path: api, timeout: 10)
                            defer { connection.close() }
                            for n in 0..<1_000_000 {
                                let request = requestBytes("GET", "/healthz", keepAlive: true)
                                guard try connection.send(request) else { return "reset on send" }
                                // The harness reads a reset as an end of stream: look first.
                                var byte: UInt8 = 0
                                let peeked = recv(connection.descriptor, &byte, 1, Int32(MSG_PEEK))
                                if peeked < 0 { return errno == ECONNRESET ? "reset on read" : "recv errno \(errno)" }
                                if peeked == 0 { return "end of stream" }
                                let reply = try connection.readResponse()
                                if n == 0 { served.value.add(1, ordering: .relaxed) }
                                if reply.header("Connection") == "close" {
                                    return connection.isClosedByPeer(within: .seconds(5))
                                        ? "closed after Connection: close" : "open after Connection: close"
                                }
                            }
                            return "never stopped"
                        }
                    }
                }
                _ = try await eventually("every client to have its first answer", timeout: .seconds(20)) {
                    served.value.load(ordering: .relaxed) >= 12 ? true : nil
                }
                try await Task.sleep(for: .milliseconds(100))
                daemon.send(SIGTERM)
                var outcomes: [String] = []
                for try await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            let clean: Set = ["end of stream", "closed after Connection: close"]
            #expect(outcomes.allSatisfy(clean.contains), "\(outcomes)")
        }
    }
}

/// VmRSS of a process, in bytes.
private func residentBytes(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { throw HarnessError("no VmRSS in /proc/\(pid)/status") }
    return kilobytes * 1024
}

/// Clients that have had their first answer.
private final class ServedCount: Sendable {
    let value = Atomic<Int>(0)
}
