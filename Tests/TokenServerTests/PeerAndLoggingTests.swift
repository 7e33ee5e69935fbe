import Foundation
import JOSE
import Logging
import Testing
import TokenClient
import TokenTestSupport

@testable import TokenServer

@Suite("HTTPServer: peer credentials and logs")
struct PeerAndLoggingTests {
    @Test("SO_PEERCRED shows this process's pid, uid and gid")
    func peerCredentials() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let response = try await onThread { try UnixHTTPClient(path: path).send(method: "GET", path: "/peer") }
        let body = try json(response.body)
        #expect(body["pid"] == .number(JSONNumber(Int(getpid()))))
        #expect(body["uid"] == .number(JSONNumber(Int(getuid()))))
        #expect(body["gid"] == .number(JSONNumber(Int(getgid()))))
        try await server.stop()
    }

    @Test("one debug line per request with method, route, status, duration and peer — never secrets")
    func logs() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let statuses = try await onThread {
            let client = UnixHTTPClient(path: path)
            return [
                try client.send(method: "GET", path: "/auth", headers: [("Authorization", "Bearer SECRET-AUTH-VALUE")])
                    .status,
                try client.send(method: "GET", path: "/query?token=SECRET-QUERY-VALUE").status,
                try client.send(
                    method: "POST",
                    path: "/form",
                    headers: [("Content-Type", "application/x-www-form-urlencoded")],
                    body: Array("password=SECRET-BODY-VALUE".utf8)
                ).status,
                try client.send(
                    method: "POST",
                    path: "/form",
                    headers: [("Content-Type", "application/x-www-form-urlencoded")],
                    body: Array("password=SECRET-DUP-VALUE&password=SECRET-DUP-VALUE".utf8)
                ).status,
            ]
        }
        #expect(statuses == [200, 200, 200, 400])
        try await server.stop()

        let records = server.logs.all
        for record in records {
            #expect(!record.text.contains("SECRET"), "logged a secret: \(record.text)")
        }
        let requests = records.filter { $0.level == .debug && $0.message == "request" }
        #expect(requests.count == 4)
        let auth = try #require(requests.first)
        #expect(auth.metadata["method"] == "GET")
        #expect(auth.metadata["route"] == "auth")
        #expect(auth.metadata["status"] == "200")
        #expect(auth.metadata["duration_ms"] != nil)
        #expect(auth.metadata["peer"] == "pid=\(getpid()) uid=\(getuid()) gid=\(getgid())")
        #expect(requests.last?.metadata["status"] == "400")
    }
}

@Suite("HTTPServer: metrics")
struct MetricsTests {
    @Test("requests are counted by route and status, timed by route, and connections gauged")
    func metrics() async throws {
        let metrics = RecordingMetrics()
        var configuration = HTTPServerConfiguration()
        configuration.metricsFactory = metrics
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        _ = try await onThread {
            let client = UnixHTTPClient(path: path)
            return [
                try client.send(method: "GET", path: "/items/1").status,
                try client.send(method: "GET", path: "/items/2").status,
                try client.send(method: "GET", path: "/nope").status,
            ]
        }
        try await server.stop()

        #expect(metrics.values("tokend_http_requests_total", [("route", "item"), ("status", "200")]) == [1, 1])
        #expect(metrics.values("tokend_http_requests_total", [("route", "unmatched"), ("status", "404")]) == [1])
        let durations = metrics.values("tokend_http_request_duration_seconds", [("route", "item")])
        #expect(durations.count == 2)
        #expect(durations.allSatisfy { $0 > 0 && $0 < 5e9 })
        let connections = metrics.values("tokend_http_connections")
        #expect(connections.first == 1)
        #expect(connections.last == 0)
    }
}
