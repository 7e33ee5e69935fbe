import Foundation
import JOSE
import Logging
import Testing
import TokenClient
import TokenTestSupport

@testable import TokenServer

@Suite("HTTPServer: limits")
struct ServerLimitTests {
    @Test("a Content-Length over the limit is 413 before any body byte is read")
    func contentLengthTooLarge() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (bytes, closed) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write(
                "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
            )
            return connection.readToEnd()
        }
        let response = try #require(Reply.parseAll(bytes).first)
        #expect(response.status == 413)
        #expect(response.header("Connection") == "close")
        #expect(try json(response.body)["error"] == "request_too_large")
        #expect(try json(response.body)["error_description"]?.stringValue?.contains("65536") == true)
        #expect(closed)
        try await server.stop()
    }

    @Test("a client that sends a whole oversized body still reads the 413")
    func oversizedBodyWithClient() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (large, atLimit) = try await onThread {
            (
                try UnixHTTPClient(path: path).send(
                    method: "POST",
                    path: "/form",
                    headers: [("Content-Type", "application/x-www-form-urlencoded")],
                    body: Array("a=".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 200_000)
                ),
                try UnixHTTPClient(path: path).send(
                    method: "POST",
                    path: "/form",
                    headers: [("Content-Type", "application/x-www-form-urlencoded")],
                    body: Array("a=".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 65534)
                )
            )
        }
        #expect(large.status == 413)
        #expect(atLimit.status == 200)
        try await server.stop()
    }

    @Test("a client still writing when the server stops draining reads the 413, not a broken pipe")
    func oversizedBodyPastLinger() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.lingerTimeout = .milliseconds(50)
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        let response = try await onThread {
            try UnixHTTPClient(path: path).send(
                method: "POST",
                path: "/form",
                headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: [UInt8](repeating: UInt8(ascii: "x"), count: 64 << 20)
            )
        }
        #expect(response.status == 413)
        try await server.stop()
    }

    @Test("a chunked body that grows over the limit is 413")
    func chunkedTooLarge() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (bytes, _) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write(
                "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            let chunk = "4000\r\n" + String(repeating: "x", count: 0x4000) + "\r\n"
            for _ in 0..<5 where connection.write(chunk) {}
            connection.write("0\r\n\r\n")
            return connection.readToEnd()
        }
        let response = try #require(Reply.parseAll(bytes).first)
        #expect(response.status == 413)
        #expect(response.header("Connection") == "close")
        try await server.stop()
    }

    @Test("a chunked body within the limit is accepted")
    func chunkedWithinLimit() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let responses = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write(
                "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "3\r\na=1\r\n4\r\n&b=2\r\n0\r\n\r\n"
            )
            return try connection.readResponses(1)
        }
        #expect(responses.first?.status == 200)
        #expect(try json(responses[0].body) == ["a": "1", "b": "2"])
        try await server.stop()
    }

    /// A request whose head (request line, header lines, blank line) is exactly `size` bytes.
    private static func request(headSize size: Int) -> String {
        let start = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Filler: "
        let end = "\r\n\r\n"
        return start + String(repeating: "a", count: size - start.utf8.count - end.utf8.count) + end
    }

    @Test("a head of 16 KiB + 1 is 431; exactly 16 KiB passes; the server keeps serving")
    func headersTooLarge() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (over, exact, normal) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write(Self.request(headSize: 16385))
            let over = connection.readToEnd()
            let exactConnection = try UnixConnection(path: path, timeout: 10)
            exactConnection.write(Self.request(headSize: 16384))
            let exact = try exactConnection.readResponses(1)
            let normal = try UnixHTTPClient(path: path).send(method: "GET", path: "/hello")
            return (over, exact, normal)
        }
        let response = try #require(Reply.parseAll(over.bytes).first)
        #expect(response.status == 431)
        #expect(response.header("Connection") == "close")
        #expect(try json(response.body)["error"] == "request_header_fields_too_large")
        #expect(over.closed)
        #expect(exact.first?.status == 200)
        #expect(normal.status == 200)
        try await server.stop()
    }

    @Test("many small headers over the limit are 431 too")
    func manyHeaders() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (bytes, _) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            var request = "GET /hello HTTP/1.1\r\nHost: x\r\n"
            for i in 0..<2000 { request += "X-H\(i): v\r\n" }
            connection.write(request + "\r\n")
            return connection.readToEnd()
        }
        #expect(Reply.parseAll(bytes).first?.status == 431)
        try await server.stop()
    }

    @Test("a request line that never ends is cut off at the limit with 431")
    func endlessRequestLine() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (bytes, closed) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write("GET /" + String(repeating: "a", count: 40000))
            return connection.readToEnd()
        }
        #expect(Reply.parseAll(bytes).first?.status == 431)
        #expect(closed)
        try await server.stop()
    }

    @Test(
        "a malformed request line is 400 with a JSON error, and the connection closes",
        arguments: [
            "GARBAGE\r\n\r\n", "GET /hello HTTP/9.9\r\n\r\n", "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n",
            "POST /form HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        ]
    )
    func malformed(_ request: String) async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (bytes, closed) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write(request)
            return connection.readToEnd()
        }
        let response = try #require(Reply.parseAll(bytes).first)
        #expect(response.status == 400)
        #expect(response.header("Connection") == "close")
        #expect(try json(response.body)["error"] == "invalid_request")
        #expect(closed)
        try await server.stop()
    }

    @Test("an idle keep-alive connection is closed after the idle timeout")
    func idleTimeout() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.idleTimeout = .milliseconds(300)
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        let http = server.server
        let (status, closed, elapsed) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let status = try connection.readResponses(1).first?.status
            let start = ContinuousClock.now
            let closed = connection.isClosedByPeer(within: .seconds(5))
            return (status, closed, ContinuousClock.now - start)
        }
        #expect(status == 200)
        #expect(closed)
        #expect(elapsed >= .milliseconds(250))
        _ = try await eventually("every connection to close") { http.connectionCount == 0 ? true : nil }
        try await server.stop()
    }

    @Test("a slow request is not cut by the idle timeout")
    func idleTimeoutSparesRequests() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.idleTimeout = .milliseconds(200)
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        let response = try await onThread { try UnixHTTPClient(path: path).send(method: "GET", path: "/slow?ms=700") }
        #expect(response.status == 200)
        try await server.stop()
    }

    @Test("beyond the connection cap a new connection gets 503 with Retry-After and is closed")
    func connectionCap() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 2
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        let http = server.server
        let (refused, closed) = try await onThread {
            let first = try UnixConnection(path: path, timeout: 10)
            let second = try UnixConnection(path: path, timeout: 10)
            for connection in [first, second] {
                connection.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try connection.readResponses(1)
            }
            let third = try UnixConnection(path: path, timeout: 10)
            third.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let (bytes, closed) = third.readToEnd()
            withExtendedLifetime((first, second)) {}  // both stay open until the third was refused
            return (Reply.parseAll(bytes).first, closed)
        }
        let response = try #require(refused)
        #expect(response.status == 503)
        #expect(response.header("Retry-After") == "1")
        #expect(response.header("Connection") == "close")
        #expect(try json(response.body)["error"] == "temporarily_unavailable")
        #expect(closed)
        // The first two are closed now: a new connection is served again.
        _ = try await eventually("every connection to close") { http.connectionCount == 0 ? true : nil }
        let status = try await onThread { try UnixHTTPClient(path: path).send(method: "GET", path: "/hello").status }
        #expect(status == 200)
        try await server.stop()
    }

    @Test("an async handler slower than the request timeout gets 503 and the reason is logged")
    func requestTimeout() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.requestTimeout = .milliseconds(200)
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        let (slow, next) = try await onThread {
            let client = UnixHTTPClient(path: path)
            return (
                try client.send(method: "GET", path: "/slow?ms=1500"), try client.send(method: "GET", path: "/hello")
            )
        }
        #expect(slow.status == 503)
        #expect(header(slow.headers, "Retry-After") == "1")
        #expect(try json(slow.body)["error"] == "temporarily_unavailable")
        #expect(next.status == 200)  // the connection stays usable
        let warnings = server.logs.all.filter { $0.level == .warning && $0.message.contains("timed out") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata["route"] == "slow")
        try await server.stop()
    }
}
