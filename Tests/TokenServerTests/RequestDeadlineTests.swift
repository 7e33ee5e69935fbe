import Foundation
import Glibc
import Logging
import Testing
import TokenClient
import TokenTestSupport

@testable import TokenServer

/// Slow clients (issue 10, finding 4): a head or body that trickles is cut at its deadline,
/// however often bytes arrive, and each listener's cap is its own.
@Suite("HTTPServer: request deadlines and per-listener caps")
struct RequestDeadlineTests {
    private static func configuration(
        header: Duration = .seconds(1),
        body: Duration = .seconds(1)
    )
        -> HTTPServerConfiguration
    {
        var configuration = HTTPServerConfiguration()
        configuration.headerTimeout = header
        configuration.bodyTimeout = body
        return configuration
    }

    /// Sends `bytes` one at a time, `interval` apart, until the server closes; returns what it answered.
    private static func trickle(_ path: String, _ bytes: String, every interval: Duration) throws -> (Reply?, Bool) {
        let connection = try UnixConnection(path: path, timeout: 10)
        defer { connection.close() }
        for byte in bytes.utf8 {
            guard connection.write([byte]), !Self.answered(connection, within: interval) else { break }
        }
        let (bytes, closed) = connection.readToEnd()
        return (Reply.parseAll(bytes).first, closed)
    }

    /// Whether the server sent something (or closed) within `timeout`; nothing is read.
    private static func answered(_ connection: UnixConnection, within timeout: Duration) -> Bool {
        var request = pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(
            timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        )
        return poll(&request, 1, milliseconds) > 0
    }

    @Test(
        "a head trickled a byte at a time (or as empty lines) is answered 408 at the head deadline and closed",
        arguments: [
            "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + String(repeating: "a", count: 200),
            String(repeating: "\r\n", count: 200),
        ]
    )
    func trickledHead(_ text: String) async throws {
        let server = try await TestServer.start(configuration: Self.configuration())
        let path = server.socketPath
        let (reply, closed) = try await onThread { try Self.trickle(path, text, every: .milliseconds(100)) }
        #expect(reply?.status == 408, "\(reply?.summary ?? "no answer")")
        #expect(reply?.header("Connection") == "close")
        #expect(closed)
        let lines = server.logs.warnings.filter { $0.message.contains("closed slow connections") }
        #expect(lines.count == 1)
        #expect(lines.first?.metadata["closed"] == "1")
        try await server.stop()
    }

    @Test("a new connection that sends nothing is closed at the head deadline, long before the idle timeout")
    func silentNewConnection() async throws {
        let server = try await TestServer.start(configuration: Self.configuration())
        let path = server.socketPath
        let (reply, closed) = try await onThread { () -> (Reply?, Bool) in
            // Reads until the server closes (or the 10 s read timeout, far beyond the deadline).
            let (bytes, closed) = try UnixConnection(path: path, timeout: 10).readToEnd()
            return (Reply.parseAll(bytes).first, closed)
        }
        #expect(closed)
        #expect(reply?.status == 408, "\(reply?.summary ?? "no answer")")
        try await server.stop()
    }

    @Test("a keep-alive connection between requests is governed by the idle timeout, not the head deadline")
    func keepAliveOutlivesHeadDeadline() async throws {
        let server = try await TestServer.start(configuration: Self.configuration())
        let path = server.socketPath
        let (first, closedEarly, second) = try await onThread { () -> (Int?, Bool, Int?) in
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let first = try connection.readResponses(1).first?.status
            // Three head deadlines without a byte: still open.
            let closedEarly = connection.isClosedByPeer(within: .seconds(3))
            connection.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let second = try connection.readResponses(1).first?.status
            return (first, closedEarly, second)
        }
        #expect(first == 200)
        #expect(!closedEarly)
        #expect(second == 200)
        try await server.stop()
    }

    @Test("a body that stops arriving is answered 408 at the body deadline and closed")
    func stalledBody() async throws {
        let server = try await TestServer.start(configuration: Self.configuration(header: .seconds(30)))
        let path = server.socketPath
        let (reply, closed) = try await onThread { () -> (Reply?, Bool) in
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write(
                "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    + "Content-Length: 50\r\n\r\na="
            )
            for _ in 0..<40 {
                guard connection.write("b"), !Self.answered(connection, within: .milliseconds(100)) else { break }
            }
            let (bytes, closed) = connection.readToEnd()
            return (Reply.parseAll(bytes).first, closed)
        }
        #expect(reply?.status == 408, "\(reply?.summary ?? "no answer")")
        #expect(closed)
        try await server.stop()
    }

    @Test("a listener at its cap refuses its clients while another listener still serves")
    func capPerListener() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 2
        let server = try await TestServer.start(
            configuration: configuration,
            listeners: { router, directory in
                [
                    HTTPListener(address: .unixPath(directory + "/api.sock", mode: 0o600), kind: .api, router: router),
                    HTTPListener(
                        address: .unixPath(directory + "/admin.sock", mode: 0o600),
                        kind: .admin,
                        router: router,
                        maxConnections: 1
                    ),
                ]
            }
        )
        let api = server.socketPath
        let admin = URL(fileURLWithPath: api).deletingLastPathComponent().path + "/admin.sock"
        let (apiRefused, adminServed, adminRefused) = try await onThread { () -> (Int?, Int?, Int?) in
            // Two API connections fill the API listener.
            let held = try (0..<2).map { _ in try UnixConnection(path: api, timeout: 10) }
            for connection in held {
                connection.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try connection.readResponses(1)
            }
            let third = try UnixConnection(path: api, timeout: 10)
            let apiRefused = Reply.parseAll(third.readToEnd().bytes).first?.status
            // The admin listener has its own room...
            let adminHeld = try UnixConnection(path: admin, timeout: 10)
            adminHeld.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let adminServed = try adminHeld.readResponses(1).first?.status
            // ...and its own cap.
            let adminSecond = try UnixConnection(path: admin, timeout: 10)
            let adminRefused = Reply.parseAll(adminSecond.readToEnd().bytes).first?.status
            withExtendedLifetime((held, adminHeld)) {}
            return (apiRefused, adminServed, adminRefused)
        }
        #expect(apiRefused == 503)
        #expect(adminServed == 200)
        #expect(adminRefused == 503)
        try await server.stop()
    }
}
