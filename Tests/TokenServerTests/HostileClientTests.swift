import Foundation
import Logging
import NIOCore
import Testing
import TokenClient
import TokenTestSupport

@testable import TokenServer

#if canImport(Glibc)
import Glibc
#endif

/// Clients that pipeline without reading, half-close, or keep knocking at the connection cap
/// (issue 10, findings 2 and 11).
@Suite("HTTPServer under hostile clients")
struct HostileClientTests {
    @Test("a client that pipelines and never reads is not read from: it blocks after a bounded amount")
    func pipeliningWithoutReadingBlocks() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let request = Array("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let limit = 8 << 20
        let (sent, other, answered) = try await onThread { () -> (Int, Int, Int) in
            let connection = try UnixConnection(path: path, timeout: 30)
            defer { connection.close() }
            let fd = connection.descriptor
            let batch = Array((0..<1000).map { _ in request }.joined())
            var sent = 0
            var stalledSince: ContinuousClock.Instant?
            while sent < limit {
                let offset = sent % batch.count
                let n = batch[offset...].withUnsafeBytes {
                    send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if n > 0 {
                    sent += n
                    stalledSince = nil
                    continue
                }
                guard n < 0, errno == EAGAIN || errno == EINTR else { throw HarnessError("send: \(errno)") }
                let now = ContinuousClock.now
                if let since = stalledSince, now - since > .seconds(1) { break }
                if stalledSince == nil { stalledSince = now }
                usleep(20_000)
            }
            // Others are served meanwhile.
            let other = try UnixHTTPClient(path: path).send(method: "GET", path: "/hello").status
            // Once the client reads, every whole request it sent is answered.
            var answered = 0
            for _ in 0..<(sent / request.count) where try connection.readResponse().status == 200 { answered += 1 }
            return (sent, other, answered)
        }
        #expect(sent < limit, "the server kept reading \(sent >> 20) MB of requests nobody read the answers to")
        #expect(other == 200)
        #expect(answered == sent / request.count)
        try await server.stop()
    }

    @Test("a half-closed client reads the answer of an async route, then the connection closes")
    func halfClosedClientIsAnswered() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (status, closed) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            defer { connection.close() }
            connection.write("GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            shutdown(connection.descriptor, Int32(SHUT_WR))
            let statuses = try connection.readResponses(2).map(\.status)
            return (statuses, connection.isClosedByPeer(within: .seconds(5)))
        }
        #expect(status == [200, 200])
        #expect(closed)
        try await server.stop()
    }

    @Test("an empty Transfer-Encoding, with or without Content-Length, is 400 on the wire")
    func emptyTransferEncoding() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        for head in ["Transfer-Encoding:\r\nContent-Length: 2", "Transfer-Encoding: ,\r\nContent-Length: 2"] {
            let status = try await onThread {
                let connection = try UnixConnection(path: path, timeout: 10)
                defer { connection.close() }
                connection.write("POST /form HTTP/1.1\r\nHost: x\r\n\(head)\r\n\r\nab")
                return try connection.readResponse().status
            }
            #expect(status == 400, "\(head)")
        }
        try await server.stop()
    }

    @Test("connections refused at the cap give one log line, not one each")
    func refusalsAreLoggedOncePerInterval() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 1
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        let refused = try await onThread { () -> Int in
            let held = try UnixConnection(path: path, timeout: 10)
            held.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = try held.readResponses(1)
            var refused = 0
            for _ in 0..<20 {
                let connection = try UnixConnection(path: path, timeout: 10)
                if Reply.parseAll(connection.readToEnd().bytes).first?.status == 503 { refused += 1 }
            }
            held.close()
            return refused
        }
        #expect(refused == 20)
        let lines = server.logs.warnings.filter { $0.message.contains("refused") }
        #expect(lines.count == 1, "\(lines.map(\.text))")
        #expect(lines.first?.metadata["refused"] == "1")
        try await server.stop()
    }

    @Test("the refusal count: the first at once, then one line per interval with the count since the last")
    func refusalCount() {
        let log = IntervalLog(interval: .seconds(10))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        #expect(log.record(now: start) == .log(count: 1))
        #expect(log.record(now: start + .seconds(1)) == .logAt(start + .seconds(10)))
        for second in 2..<9 {
            #expect(log.record(now: start + .seconds(Int64(second))) == .counted)
        }
        #expect(log.take(now: start + .seconds(10)) == 8)
        #expect(log.take(now: start + .seconds(10)) == 0)
        // A quiet interval later, the next refusal is logged at once.
        #expect(log.record(now: start + .seconds(25)) == .log(count: 1))
    }
}
