import CodedErrors
import Foundation
import JOSE
import Testing
import TokenClient
import TokenTestSupport

@testable import TokenServer

@Suite("UnixHTTPClient")
struct ClientTests {
    @Test("a missing socket says so and asks whether tokend is running")
    func missingSocket() throws {
        let temporary = try TemporaryDirectory(prefix: "tsrv")
        let directory = temporary.path
        let path = directory + "/tokend-admin.sock"
        #expect {
            try UnixHTTPClient(path: path).send(method: "GET", path: "/healthz")
        } throws: { error in
            (error as? HTTPClientError)?.reason
                == "cannot connect to \(path): No such file or directory — is tokend running?"
        }
    }

    @Test("a stale socket is 'Connection refused'")
    func staleSocket() throws {
        let temporary = try TemporaryDirectory(prefix: "tsrv")
        let directory = temporary.path
        let path = directory + "/api.sock"
        Foundation.close(try listeningUnixSocket(at: path))
        #expect {
            try UnixHTTPClient(path: path).send(method: "GET", path: "/healthz")
        } throws: { error in
            (error as? HTTPClientError)?.reason == "cannot connect to \(path): Connection refused — is tokend running?"
        }
    }

    @Test("a failure's description adds its kind and where it was raised to the reason; failures of a kind are equal")
    func errorShape() throws {
        let temporary = try TemporaryDirectory(prefix: "tsrv")
        let directory = temporary.path
        func failure(_ body: () throws -> Void) -> HTTPClientError? {
            do {
                try body()
                return nil
            } catch {
                return error as? HTTPClientError
            }
        }
        let missing = try #require(
            failure { _ = try UnixHTTPClient(path: directory + "/a.sock").send(method: "GET", path: "/") }
        )
        let otherMissing = try #require(
            failure { _ = try UnixHTTPClient(path: directory + "/b.sock").send(method: "GET", path: "/") }
        )
        let badPath = try #require(failure { _ = try UnixHTTPClient(path: directory).send(method: "GET", path: "a") })
        #expect(missing.code == .cannotConnect)
        #expect(missing.file == "TokenClient/UnixHTTPClient.swift")
        #expect(
            missing.description
                == "\(missing.reason) (cannot connect; TokenClient/UnixHTTPClient.swift:\(missing.line))"
        )
        #expect(missing == otherMissing)
        #expect(missing.reason != otherMissing.reason)
        #expect(badPath.code == .invalidRequest)
        #expect(badPath != missing)
    }

    @Test("chunked responses with extensions and trailers decode, and the connection is reused")
    func chunked() async throws {
        let temporary = try TemporaryDirectory(prefix: "tsrv")
        let directory = temporary.path
        let server = try RawServer(path: directory + "/raw.sock") { accept in
            guard let connection = accept() else { return }
            _ = connection.readRequest()
            connection.write(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
            _ = connection.readRequest()
            connection.write("HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc")
            _ = connection.readRequest()
        }
        let path = server.path
        let (first, second, opened) = try await onThread {
            let client = UnixHTTPClient(path: path, timeout: .seconds(5))
            return (
                try client.send(method: "GET", path: "/a"), try client.send(method: "POST", path: "/b"),
                client.connectionsOpened
            )
        }
        #expect(first.status == 200)
        #expect(first.body.text == "hello world")
        #expect(second.status == 201)
        #expect(second.body.text == "abc")
        #expect(opened == 1)
    }

    @Test("a response framed by the end of the connection is read to the end")
    func unframed() async throws {
        let temporary = try TemporaryDirectory(prefix: "tsrv")
        let directory = temporary.path
        let server = try RawServer(path: directory + "/raw.sock") { accept in
            guard let connection = accept() else { return }
            _ = connection.readRequest()
            connection.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        }
        let path = server.path
        let (body, connected) = try await onThread {
            let client = UnixHTTPClient(path: path, timeout: .seconds(5))
            let response = try client.send(method: "GET", path: "/")
            return (response.body.text, client.isConnected)
        }
        #expect(body == "all of it")
        #expect(!connected)
    }

    @Test("a server that never answers runs into the timeout")
    func timeout() async throws {
        let temporary = try TemporaryDirectory(prefix: "tsrv")
        let directory = temporary.path
        let server = try RawServer(path: directory + "/raw.sock") { accept in
            guard let connection = accept() else { return }
            _ = connection.readRequest()
            _ = connection.isClosedByPeer(within: .seconds(5))
        }
        let path = server.path
        let start = ContinuousClock.now
        await #expect {
            try await onThread {
                try UnixHTTPClient(path: path, timeout: .milliseconds(300)).send(method: "GET", path: "/")
            }
        } throws: { ($0 as? HTTPClientError)?.code == .timedOut }
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test("a connection the server closed while idle is replaced transparently")
    func reconnectsAfterIdleClose() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.idleTimeout = .milliseconds(150)
        let server = try await TestServer.start(configuration: configuration)
        let path = server.socketPath
        let http = server.server
        let (statuses, opened) = try await onThread {
            let client = UnixHTTPClient(path: path)
            let first = try client.send(method: "GET", path: "/hello").status
            // Until the server has closed the idle connection (a fixed sleep raced a server
            // whose idle timer ran late on a loaded machine: the close then crossed the POST).
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            while http.connectionCount > 0, ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.02)
            }
            let second = try client.send(method: "POST", path: "/items/1").status
            return ([first, second], client.connectionsOpened)
        }
        #expect(statuses == [200, 200])
        #expect(opened == 2)
        try await server.stop()
    }

    @Test("header values with line breaks are refused before anything is sent")
    func headerInjection() throws {
        #expect {
            try UnixHTTPClient(path: "/nonexistent.sock").send(
                method: "GET",
                path: "/",
                headers: [("X-A", "v\r\nInjected: yes")]
            )
        } throws: { ($0 as? HTTPClientError)?.code == .invalidRequest }
        #expect {
            try UnixHTTPClient(path: "/nonexistent.sock").send(method: "GET", path: "/a b")
        } throws: { ($0 as? HTTPClientError)?.code == .invalidRequest }
    }

    @Test("admin requests percent-encode ids in paths and queries, so any id reaches its own route")
    func adminRequestPaths() {
        #expect(AdminRequest.logout("ü/x y%").path == "/admin/users/%C3%BC%2Fx%20y%25/logout")
        #expect(AdminRequest.user("a-b_c.d~9").path == "/admin/users/a-b_c.d~9")
        #expect(
            AdminRequest.users(email: "a+b@x", username: "u 1", status: nil, limit: 5).path
                == "/admin/users?limit=5&email=a%2Bb%40x&username=u%201"
        )
        let issue = AdminRequest.issueToken(subject: "bob", scope: nil, policy: "1h", clientID: nil, refresh: true)
        #expect(issue.method == "POST")
        #expect(issue.body.map { JSONValue.object($0).compactText } == #"{"sub":"bob","refresh":true,"policy":"1h"}"#)
    }
}
