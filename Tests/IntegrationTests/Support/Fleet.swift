import Foundation
import JOSE
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Several tokend processes on one PostgreSQL database (DESIGN §10, issue 11 item 7): one
/// sandbox for their sockets and logs, one key-encryption key every node reads, one
/// `TOKEND_STORE` URL. Every node started through the fleet is stopped by `stopAll()`, by pid.
final class Fleet: Sendable {
    let sandbox: Sandbox
    /// The `TOKEND_STORE` every node opens.
    let storeURL: String
    /// The key-encryption key file (32 random bytes, mode 0600) every node reads.
    let kekFile: String
    /// The environment every node gets (plus its own sockets).
    let environment: [String: String]
    private let started = Mutex<[Tokend]>([])

    init(_ name: String, storeURL: String, environment extra: [String: String] = [:]) throws {
        sandbox = try Sandbox(name)
        self.storeURL = storeURL
        var generator = SystemRandomNumberGenerator()
        kekFile = try sandbox.directory.write("kek", (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        environment = [
            "TOKEND_STORE": storeURL,
            "TOKEND_KEY_ENCRYPTION_KEY_FILE": kekFile,
            // Three nodes per database, several databases per cluster: stay well under the
            // server's max_connections (100).
            "TOKEND_STORE_MAX_CONNECTIONS": "4",
        ].merging(extra) { $1 }
    }

    /// Starts node `name` (its own sockets and log), through `launcher` when given (see
    /// `Tokend.start`), and returns once it serves.
    func start(
        _ name: String,
        environment extra: [String: String] = [:],
        launcher: [String] = []
    ) async throws -> Tokend {
        let node = try await Tokend.start(
            sandbox,
            name: name,
            environment: environment.merging(extra) { $1 },
            launcher: launcher
        )
        started.withLock { $0.append(node) }
        return node
    }

    /// Starts the nodes `names` at once (they race to migrate the database and create the
    /// keyring), in the order given.
    func start(_ names: [String], environment extra: [String: String] = [:]) async throws -> [Tokend] {
        try await withThrowingTaskGroup(of: (Int, Tokend).self) { group in
            for (index, name) in names.enumerated() {
                group.addTask { (index, try await self.start(name, environment: extra)) }
            }
            var nodes: [(Int, Tokend)] = []
            for try await node in group { nodes.append(node) }
            return nodes.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// Stops `node` (SIGTERM, by pid) and starts it again under the same name: a restart.
    func restart(_ node: Tokend) async throws -> Tokend {
        let status = await node.stop()
        #expect(status == .exited(0), "\(node.name) stopped with \(status.map(\.description) ?? "no exit")")
        return try await start(node.name)
    }

    /// Everything every node of the fleet has logged so far.
    var logs: [(name: String, text: String)] {
        started.withLock { nodes in nodes.map { ($0.name, $0.log) } }
    }

    /// Stops every node still running (by pid), then removes the sandbox.
    func stopAll() async {
        let nodes = started.withLock { $0 }
        for node in nodes where node.child.isRunning { await node.stop() }
        sandbox.remove()
    }

    /// psql's one-value answer, trimmed.
    static func value(_ cluster: PostgresCluster, _ sql: String, database: String) async throws -> String {
        let result = try await cluster.psql(sql, database: database)
        guard result.succeeded else { throw HarnessError("psql failed: \(result)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A fresh database in the test process's shared cluster, a fleet on it with `environment`,
/// and `count` nodes `a`, `b`, `c`, … started at once; runs `body` and always stops every node
/// the fleet started, whatever `body` does.
func withFleet<T>(
    _ name: String,
    count: Int = 3,
    cluster: PostgresCluster? = nil,
    environment: [String: String] = [:],
    _ body: (Fleet, [Tokend]) async throws -> T
) async throws -> T {
    let url: String
    if let cluster {
        url = try await cluster.createDatabase("f_" + String(UInt64.random(in: 0...UInt64.max), radix: 36))
    } else {
        url = try await SharedPostgresCluster.freshDatabase()
    }
    let fleet = try Fleet("fleet-\(name)", storeURL: url, environment: environment)
    do {
        let names = ["a", "b", "c", "d", "e"].prefix(count).map { $0 }
        let nodes = try await fleet.start(names)
        let result = try await body(fleet, nodes)
        await fleet.stopAll()
        return result
    } catch {
        await fleet.stopAll()
        throw error
    }
}

/// The database name of a `postgres://USER@/DB?…` URL.
func databaseName(_ url: String) -> String {
    let path = url.split(separator: "?")[0]
    return String(path.split(separator: "/").last ?? "")
}

extension Tokend {
    /// The keyring as `GET /admin/keys` shows it: kid → state.
    func keyStates() async throws -> [String: String] {
        let reply = try await admin("GET", "/admin/keys")
        guard reply.status == 200, let keys = reply.json?["keys"]?.arrayValue else {
            throw HarnessError("GET /admin/keys answered \(reply.summary)")
        }
        var states: [String: String] = [:]
        for key in keys {
            if let kid = key["kid"]?.stringValue, let state = key["state"]?.stringValue { states[kid] = state }
        }
        return states
    }

    /// `POST /admin/users` (no limits): the new user's public id, the `sub` of its tokens.
    func createUser(_ username: String) async throws -> String {
        let body = jsonText([
            "username": .string(username), "email": .string("\(username)@example.com"),
            "password": "fleet-password",
        ])
        let reply = try await admin("POST", "/admin/users", json: body)
        guard reply.status == 201, let id = reply.string("id") else {
            throw HarnessError("POST /admin/users answered \(reply.summary)")
        }
        return id
    }

    /// The JWKS body this node serves.
    func jwks() async throws -> String {
        let reply = try await api("GET", "/.well-known/jwks.json")
        guard reply.status == 200 else { throw HarnessError("GET /.well-known/jwks.json answered \(reply.summary)") }
        return reply.text
    }

    /// The kids this node's JWKS publishes.
    func publishedKids() async throws -> Set<String> {
        let reply = try await api("GET", "/.well-known/jwks.json")
        let keys = reply.json?["keys"]?.arrayValue ?? []
        return Set(keys.compactMap { $0["kid"]?.stringValue })
    }
}

extension Dictionary where Key == String, Value == String {
    /// The kid in `state` (there is one current and one next at a time).
    func kid(in state: String) -> String? { first { $0.value == state }?.key }
}

/// After a fault: every node is live and has applied every followed event the store holds (its
/// heartbeat's applied position is the log's head), as `tokenctl fleet --json` on `nodes[0]`
/// reports from the database. Together with the revocations each test checks by token, this
/// holds every node's state to the store's.
func expectConverged(_ nodes: [Tokend], _ what: String) async throws {
    _ = try await eventually("every node to have applied the whole log \(what)", timeout: .seconds(20)) {
        () -> Bool? in
        let result = try await nodes[0].tokenctl(["fleet", "--json"])
        guard result.succeeded, let body = try? JSONParser().parse(result.stdout),
            let rows = body["nodes"]?.arrayValue, rows.count == nodes.count
        else { return nil }
        let settled = rows.allSatisfy {
            $0["state"]?.stringValue == "live" && $0["behind_events"]?.numberValue?.text == "0"
        }
        return settled ? true : nil
    }
}
