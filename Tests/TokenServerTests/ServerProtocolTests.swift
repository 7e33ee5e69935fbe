import Foundation
import JOSE
import Testing
import TokenClient
import TokenTestSupport

@testable import TokenServer

@Suite("HTTPServer: HTTP/1.1 over a Unix socket")
struct ServerProtocolTests {
    @Test("two requests share one keep-alive connection")
    func keepAlive() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let http = server.server
        let (first, second, opened, open) = try await onThread {
            let client = UnixHTTPClient(path: path, timeout: .seconds(10))
            let first = try client.send(method: "GET", path: "/hello")
            let second = try client.send(method: "GET", path: "/items/42")
            return (first, second, client.connectionsOpened, http.connectionCount)
        }
        #expect(first.status == 200)
        #expect(try json(first.body) == ["hello": "world"])
        #expect(second.status == 200)
        #expect(try json(second.body) == ["id": "42"])
        #expect(header(second.headers, "Connection") == nil)
        #expect(opened == 1)
        #expect(open == 1)
        try await server.stop()
    }

    @Test("pipelined requests are answered in order, a slow async one first")
    func pipelining() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let responses = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            let requests = [
                "GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n",
                "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    + "Content-Length: 6\r\n\r\nn=3%33",
                "GET /items/4 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]
            connection.write(requests.joined())
            return try connection.readResponses(4)
        }
        #expect(responses.map(\.status) == [200, 200, 200, 200])
        #expect(try json(responses[0].body) == ["slept": 200])
        #expect(try json(responses[1].body) == ["id": "2"])
        #expect(try json(responses[2].body) == ["n": "33"])
        #expect(try json(responses[3].body) == ["id": "4"])
        try await server.stop()
    }

    @Test("an unknown path is 404 with a JSON error")
    func notFound() async throws {
        let server = try await TestServer.start()
        let client = server.socketPath
        let response = try await onThread { try UnixHTTPClient(path: client).send(method: "GET", path: "/nope") }
        #expect(response.status == 404)
        #expect(header(response.headers, "Content-Type") == "application/json")
        #expect(try json(response.body)["error"] == "not_found")
        try await server.stop()
    }

    @Test("a known path with a wrong method is 405 with Allow")
    func methodNotAllowed() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (hello, item) = try await onThread {
            let client = UnixHTTPClient(path: path)
            return (
                try client.send(method: "POST", path: "/hello", body: Array("{}".utf8)),
                try client.send(method: "DELETE", path: "/items/7")
            )
        }
        #expect(hello.status == 405)
        #expect(header(hello.headers, "Allow") == "GET, HEAD")
        #expect(try json(hello.body)["error"] == "method_not_allowed")
        #expect(item.status == 405)
        #expect(header(item.headers, "Allow") == "GET, HEAD, POST")
        try await server.stop()
    }

    @Test("HEAD answers like GET without a body, with the GET body's Content-Length")
    func head() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (get, head, after) = try await onThread {
            let client = UnixHTTPClient(path: path)
            return (
                try client.send(method: "GET", path: "/hello"), try client.send(method: "HEAD", path: "/hello"),
                try client.send(method: "GET", path: "/items/1")
            )
        }
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(header(head.headers, "Content-Length") == String(get.body.count))
        #expect(after.status == 200)  // the connection stayed in sync after the bodiless answer
        try await server.stop()
    }

    @Test("every response has Content-Length and Cache-Control: no-store unless the handler sets its own")
    func defaultHeaders() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (plain, cached, missing) = try await onThread {
            let client = UnixHTTPClient(path: path)
            return (
                try client.send(method: "GET", path: "/hello"), try client.send(method: "GET", path: "/cached"),
                try client.send(method: "GET", path: "/missing")
            )
        }
        for response in [plain, cached, missing] {
            #expect(header(response.headers, "Content-Length") == String(response.body.count))
        }
        #expect(header(plain.headers, "Cache-Control") == "no-store")
        #expect(header(missing.headers, "Cache-Control") == "no-store")
        #expect(header(cached.headers, "Cache-Control") == "max-age=300")
        #expect(header(cached.headers, "Content-Type") == "text/plain")
        try await server.stop()
    }

    @Test("a handler can end the connection; framing headers stay the server's")
    func handlerCloses() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (bytes, closed) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write("GET /bye HTTP/1.1\r\nHost: x\r\n\r\n")
            return connection.readToEnd()
        }
        #expect(closed)
        let response = try #require(Reply.parseAll(bytes).first)
        #expect(response.header("Connection") == "close")
        #expect(response.header("Content-Length") == "3")
        #expect(response.text == "bye")
        try await server.stop()
    }

    @Test("query parameters and encoded path segments reach the handler decoded")
    func queryAndPath() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (query, item, bad) = try await onThread {
            let client = UnixHTTPClient(path: path)
            return (
                try client.send(method: "GET", path: "/query?a=1&b=two+words&a=%C3%A9"),
                try client.send(method: "GET", path: "/items/a%20b"),
                try client.send(method: "GET", path: "/query?a=%zz")
            )
        }
        #expect(try json(query.body) == [["a", "1"], ["b", "two words"], ["a", "é"]])
        #expect(try json(item.body) == ["id": "a b"])
        #expect(bad.status == 400)
        #expect(try json(bad.body)["error"] == "invalid_request")
        try await server.stop()
    }

    @Test("HTTP/1.0 without keep-alive gets its answer and the connection closes")
    func http10() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let (bytes, closed) = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write("GET /hello HTTP/1.0\r\n\r\n")
            return connection.readToEnd()
        }
        #expect(closed)
        let response = try #require(Reply.parseAll(bytes).first)
        #expect(response.status == 200)
        #expect(response.header("Connection") == "close")
        try await server.stop()
    }

    @Test("Expect: 100-continue gets an interim 100 before the answer")
    func expectContinue() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let responses = try await onThread {
            let connection = try UnixConnection(path: path, timeout: 10)
            connection.write(
                "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
            )
            let interim = try connection.readResponses(1)
            connection.write("a=1")
            return interim + (try connection.readResponses(1))
        }
        #expect(responses.map(\.status) == [100, 200])
        #expect(try json(responses[1].body) == ["a": "1"])
        try await server.stop()
    }

    @Test("form and JSON bodies reach handlers; duplicates and wrong types are 400; other types 415")
    func bodies() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        let results = try await onThread { () throws -> [(Int, JSONValue)] in
            let client = UnixHTTPClient(path: path)
            let cases: [(String?, String)] = [
                ("application/x-www-form-urlencoded", "token=abc&hint=x+y"),
                ("application/json; charset=utf-8", #"{"token":"abc"}"#),
                ("application/x-www-form-urlencoded", "token=a&token=b"),
                ("application/json", #"{"token":123}"#),
                ("application/json", #"{"token":"a","token":"b"}"#),
                ("text/plain", "token=abc"),
                (nil, "token=abc"),
            ]
            return try cases.map { contentType, body in
                let response = try client.send(
                    method: "POST",
                    path: "/form",
                    headers: contentType.map { [("Content-Type", $0)] } ?? [],
                    body: Array(body.utf8)
                )
                return (response.status, try json(response.body))
            }
        }
        #expect(results.map(\.0) == [200, 200, 400, 400, 400, 415, 415])
        #expect(results[0].1 == ["hint": "x y", "token": "abc"])
        #expect(results[1].1 == ["token": "abc"])
        #expect(
            results[2].1["error_description"]?.stringValue?.contains("\"token\" is included more than once") == true
        )
        #expect(results[3].1["error_description"]?.stringValue?.contains("\"token\" must be a string") == true)
        #expect(results[4].1["error_description"]?.stringValue?.contains("duplicate member") == true)
        #expect(
            results[5].1["error_description"]?.stringValue?.contains(
                "application/x-www-form-urlencoded or application/json"
            ) == true
        )
        #expect(results[6].1["error"] == "unsupported_media_type")
        try await server.stop()
    }
}
