import Foundation
import JOSE
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TokenClient
import TokenTestSupport

@testable import TokenServer

/// Counts of what the test routes saw, shared with the test.
final class RouteProbe: Sendable {
    private let started = Mutex(0)
    private let finished = Mutex(0)

    var slowStarted: Int { started.withLock { $0 } }
    var slowFinished: Int { finished.withLock { $0 } }

    func markStarted() { started.withLock { $0 += 1 } }
    func markFinished() { finished.withLock { $0 += 1 } }
}

extension Router {
    /// The routes every server test uses.
    static func testRoutes(probe: RouteProbe) -> Router {
        var router = Router()
        router.add("GET", "/hello", name: "hello", .sync { _ in .json(200, ["hello": "world"]) })
        router.add(
            "GET",
            "/items/{id}",
            name: "item",
            .sync { request in
                .json(200, ["id": .string(request.pathParameters["id"] ?? "")])
            }
        )
        router.add("POST", "/items/{id}", name: "item_update", .sync { _ in .json(200, ["updated": true]) })
        router.add(
            "POST",
            "/form",
            name: "form",
            .sync { request in
                do {
                    let parameters = try request.formOrJSONParameters()
                    return .json(
                        200,
                        .object(JSONObject(parameters.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
                    )
                } catch let error as HTTPError {
                    return error.response
                } catch {
                    return HTTPResponse(status: 500)
                }
            }
        )
        router.add(
            "GET",
            "/query",
            name: "query",
            .sync { request in
                .json(200, .array(request.query.map { .array([.string($0.name), .string($0.value)]) }))
            }
        )
        router.add(
            "GET",
            "/peer",
            name: "peer",
            .sync { request in
                guard let peer = request.peer else { return .json(200, ["peer": nil]) }
                return .json(
                    200,
                    [
                        "pid": .number(JSONNumber(Int(peer.pid))), "uid": .number(JSONNumber(Int(peer.uid))),
                        "gid": .number(JSONNumber(Int(peer.gid))),
                    ]
                )
            }
        )
        router.add(
            "GET",
            "/whoami",
            name: "whoami",
            .sync { request in
                .json(200, ["listener": .string(request.listener.rawValue), "path": .string(request.path)])
            }
        )
        router.add(
            "GET",
            "/auth",
            name: "auth",
            .sync { request in
                .json(200, ["authorized": .bool(request.header("authorization") != nil)])
            }
        )
        router.add(
            "GET",
            "/cached",
            name: "cached",
            .sync { _ in
                HTTPResponse(
                    status: 200,
                    headers: [("Cache-Control", "max-age=300"), ("Content-Type", "text/plain")],
                    body: Array("ok".utf8)
                )
            }
        )
        router.add(
            "GET",
            "/bye",
            name: "bye",
            .sync { _ in
                HTTPResponse(
                    status: 200,
                    headers: [("Connection", "close"), ("Content-Length", "999")],
                    body: Array("bye".utf8)
                )
            }
        )
        router.add(
            "GET",
            "/slow",
            name: "slow",
            .async { request in
                probe.markStarted()
                let milliseconds = Int(request.queryValue("ms") ?? "") ?? 300
                try? await Task.sleep(for: .milliseconds(milliseconds))
                probe.markFinished()
                return .json(200, ["slept": .number(JSONNumber(milliseconds))])
            }
        )
        return router
    }
}

/// A real HTTPServer on a temporary Unix socket, run in a ServiceGroup like tokend does.
final class TestServer: Sendable {
    let server: HTTPServer
    let group: ServiceGroup
    let task: Task<Void, any Error>
    /// The server's directory, removed by `stop()`.
    let scratch: TemporaryDirectory
    let socketPath: String
    let logs: LogCapture
    let probe: RouteProbe

    private init(
        server: HTTPServer,
        group: ServiceGroup,
        task: Task<Void, any Error>,
        scratch: TemporaryDirectory,
        socketPath: String,
        logs: LogCapture,
        probe: RouteProbe
    ) {
        self.server = server
        self.group = group
        self.task = task
        self.scratch = scratch
        self.socketPath = socketPath
        self.logs = logs
        self.probe = probe
    }

    /// Starts a server and returns once every listener accepts.
    static func start(
        configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
        mode: UInt32 = 0o600,
        extraListeners: (Router) -> [HTTPListener] = { _ in [] },
        listeners makeListeners: ((_ router: Router, _ directory: String) -> [HTTPListener])? = nil
    ) async throws -> TestServer {
        let scratch = try TemporaryDirectory(prefix: "tsrv")
        let directory = scratch.path
        let socketPath = directory + "/api.sock"
        let logs = LogCapture()
        let probe = RouteProbe()
        let router = Router.testRoutes(probe: probe)
        let listeners =
            makeListeners?(router, directory)
            ?? [HTTPListener(address: .unixPath(socketPath, mode: mode), kind: .api, router: router)]
            + extraListeners(router)
        let ready = ReadySignal()
        let server = HTTPServer(
            listeners: listeners,
            configuration: configuration,
            logger: logs.logger(),
            onReady: { ready.fire(nil) }
        )
        let group = ServiceGroup(services: [server], logger: logs.logger(level: .warning))
        let task = Task {
            do {
                try await group.run()
            } catch {
                ready.fire(error)
                throw error
            }
        }
        if let error = await ready.wait() {
            scratch.remove()
            throw error
        }
        return TestServer(
            server: server,
            group: group,
            task: task,
            scratch: scratch,
            socketPath: socketPath,
            logs: logs,
            probe: probe
        )
    }

    /// Graceful shutdown, then waits for `run()` to return and removes the directory.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        scratch.remove()
    }

    var directory: String { scratch.path }

    /// A blocking client for this server's socket.
    func client(timeout: Duration = .seconds(10)) -> UnixHTTPClient {
        UnixHTTPClient(path: socketPath, timeout: timeout)
    }
}

/// Fired once by onReady (nil) or by a failing run() (the error).
final class ReadySignal: Sendable {
    private struct State {
        var fired = false
        var error: (any Error)?
        var waiter: CheckedContinuation<(any Error)?, Never>?
    }

    private let state = Mutex(State())

    func fire(_ error: (any Error)?) {
        let waiter = state.withLock { state -> CheckedContinuation<(any Error)?, Never>? in
            guard !state.fired else { return nil }
            state.fired = true
            state.error = error
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: error)
    }

    func wait() async -> (any Error)? {
        await withCheckedContinuation { continuation in
            let result = state.withLock { state -> (Bool, (any Error)?) in
                if state.fired { return (true, state.error) }
                state.waiter = continuation
                return (false, nil)
            }
            if result.0 { continuation.resume(returning: result.1) }
        }
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}

/// The first value of a header in a client response.
func header(_ headers: [(String, String)], _ name: String) -> String? {
    headers.first { $0.0.lowercased() == name.lowercased() }?.1
}

/// Parses a JSON body with JOSE's parser.
func json(_ body: [UInt8]) throws -> JSONValue {
    try JSONParser().parse(body)
}
