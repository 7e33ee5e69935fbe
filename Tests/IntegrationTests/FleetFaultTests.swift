import Foundation
import JOSE
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11 items 6 and 7: PostgreSQL restarting under a fleet's write load. A write is
/// acknowledged (200) only once it is committed; while the server is away, writes answer 503
/// with Retry-After, never 500; every node reconnects by itself.
@Suite("A fleet through a PostgreSQL restart", .timeLimit(.minutes(3)))
struct FleetFaultTests {
    /// One write a node answered, and what it wrote.
    struct Outcome: Sendable {
        enum Write: Sendable {
            /// An access token issued (it may or may not write to the store).
            case issue
            /// A revocation of `token`, whose jti is `jti`.
            case revocation(jti: String, token: String)
            /// A new refresh family, `refreshToken` its first token.
            case family(refreshToken: String)
        }
        let node: String
        let write: Write
        let status: Int
        let retryAfter: String?
        let summary: String
        /// When the request was sent, and when its answer came.
        let began: ContinuousClock.Instant
        var ended = ContinuousClock.now

        /// Whether the request was in flight at some time within `window`.
        func overlaps(_ window: ClosedRange<ContinuousClock.Instant>) -> Bool {
            began <= window.upperBound && ended >= window.lowerBound
        }
    }

    /// What one node's client did during the load.
    final class Load: Sendable {
        let outcomes = Mutex<[Outcome]>([])
        let errors = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)

        func record(_ outcome: Outcome) { outcomes.withLock { $0.append(outcome) } }
        var acknowledged: Int { outcomes.withLock { $0.filter { $0.status == 200 }.count } }
    }

    /// Writes against `node` until told to stop: an access token issued and revoked, and every
    /// other turn a refresh family created.
    static func write(to node: Tokend, load: Load) async {
        var turn = 0
        while !load.stop.load(ordering: .relaxed) {
            turn += 1
            var doing = turn % 2 == 0 ? "POST /admin/tokens (refresh)" : "POST /admin/tokens"
            let began = ContinuousClock.now
            do {
                if turn % 2 == 0 {
                    let reply = try await node.admin(
                        "POST",
                        "/admin/tokens",
                        json: #"{"sub":"load-\#(node.name)-\#(turn)","refresh":true}"#
                    )
                    let refreshToken = reply.status == 200 ? reply.string("refresh_token") ?? "" : ""
                    load.record(
                        Outcome(
                            node: node.name,
                            write: .family(refreshToken: refreshToken),
                            status: reply.status,
                            retryAfter: reply.header("Retry-After"),
                            summary: reply.summary,
                            began: began
                        )
                    )
                } else {
                    let issued = try await node.admin(
                        "POST",
                        "/admin/tokens",
                        json: #"{"sub":"load-\#(node.name)-\#(turn)"}"#
                    )
                    guard issued.status == 200, let token = issued.string("access_token") else {
                        load.record(
                            Outcome(
                                node: node.name,
                                write: .issue,
                                status: issued.status,
                                retryAfter: issued.header("Retry-After"),
                                summary: issued.summary,
                                began: began
                            )
                        )
                        continue
                    }
                    let jti = try TokenParts(token).jti ?? ""
                    doing = "POST /oauth2/revoke"
                    let reply = try await node.revoke(token)
                    load.record(
                        Outcome(
                            node: node.name,
                            write: .revocation(jti: jti, token: token),
                            status: reply.status,
                            retryAfter: reply.header("Retry-After"),
                            summary: reply.summary,
                            began: began
                        )
                    )
                }
            } catch {
                let elapsed = ContinuousClock.now - began
                load.errors.withLock { $0.append("\(node.name): \(doing) after \(elapsed): \(error)") }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Runs the write load on every node while `disturb` runs (it starts once 30 writes are
    /// acknowledged), until every node has had a write acknowledged after `disturb` ended;
    /// then checks what the clients saw and what the database holds: only 200 or 503 with
    /// Retry-After, every acknowledged revocation stored and in force on a node started now,
    /// every acknowledged refresh family usable, every node serving without a restart.
    /// Returns the outcomes and the time `disturb` took.
    static func writeLoad(
        _ fleet: Fleet,
        _ nodes: [Tokend],
        cluster: PostgresCluster,
        disturb: @Sendable () async throws -> Void
    ) async throws -> (outcomes: [Outcome], window: ClosedRange<ContinuousClock.Instant>) {
        let load = Load()
        var window = ContinuousClock.now...ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in nodes { group.addTask { await Self.write(to: node, load: load) } }
            do {
                _ = try await eventually("30 acknowledged writes", timeout: .seconds(60)) {
                    load.acknowledged >= 30 ? true : nil
                }
                let began = ContinuousClock.now
                try await disturb()
                window = began...ContinuousClock.now
                let after = load.outcomes.withLock { $0.count }
                _ = try await eventually("every node to acknowledge writes again", timeout: .seconds(60)) {
                    let since = load.outcomes.withLock { Array($0[after...]) }
                    return Set(since.filter { $0.status == 200 }.map(\.node)).count == nodes.count ? true : nil
                }
            } catch {
                load.stop.store(true, ordering: .relaxed)
                throw error
            }
            load.stop.store(true, ordering: .relaxed)
            try await group.waitForAll()
        }

        let outcomes = load.outcomes.withLock { $0 }
        let errors = load.errors.withLock { $0 }
        #expect(errors.isEmpty, "requests that got no answer: \(errors.prefix(5))")
        if !errors.isEmpty {
            for (name, log) in fleet.logs {
                print("--- \(name)'s log (end)\n\(log.lastLines(40).redactingSecrets)")
            }
        }
        for node in nodes {
            #expect(
                outcomes.contains { $0.node == node.name && $0.overlaps(window) },
                "\(node.name) sent no write while PostgreSQL was disturbed"
            )
        }
        let statuses = Dictionary(grouping: outcomes, by: \.status).mapValues(\.count)
        #expect(Set(statuses.keys).isSubset(of: [200, 503]), "answers meanwhile: \(statuses)")
        for outcome in outcomes where outcome.status != 200 {
            if outcome.status == 503 {
                #expect(outcome.retryAfter != nil, "a 503 without Retry-After from \(outcome.node)")
            } else {
                Issue.record("\(outcome.node) answered \(outcome.summary)")
            }
        }

        // Every acknowledged revocation is in the database…
        let acknowledged = outcomes.filter { $0.status == 200 }
        let revoked = acknowledged.compactMap { outcome -> (jti: String, token: String)? in
            if case .revocation(let jti, let token) = outcome.write { (jti, token) } else { nil }
        }
        let revokedJTIs = revoked.map(\.jti)
        let stored = try await Fleet.value(
            cluster,
            "SELECT string_agg(jti, ' ') FROM tokend.revoked_access_tokens",
            database: databaseName(fleet.storeURL)
        )
        let storedJTIs = Set(stored.split(separator: " ").map(String.init))
        let lost = revokedJTIs.filter { !storedJTIs.contains($0) }
        #expect(lost.isEmpty, "\(lost.count) of \(revokedJTIs.count) acknowledged revocations are not stored")
        // …and every acknowledged refresh family works, on any node.
        let families = acknowledged.compactMap { outcome -> String? in
            if case .family(let token) = outcome.write { token } else { nil }
        }
        #expect(!families.isEmpty && !revokedJTIs.isEmpty)
        for (index, token) in families.enumerated() {
            let reply = try await nodes[index % nodes.count].refresh(token)
            #expect(reply.status == 200, "an acknowledged refresh family is lost: \(reply.summary)")
        }

        // Every node serves without a restart.
        for node in nodes {
            #expect(node.child.isRunning, "\(node.name) exited")
            let health = try await node.api("GET", "/healthz")
            #expect(health.status == 200, "\(node.name): \(health.summary)")
            #expect(health.string("status") == "serving", "\(node.name): \(health.summary)")
        }
        // A node started now holds every acknowledged revocation.
        let checker = try await fleet.start("checker-\(UInt32.random(in: 0...UInt32.max))")
        var active = 0
        for (_, token) in revoked where try await checker.isActive(token) { active += 1 }
        #expect(active == 0, "\(active) acknowledged revocations are not in force on a new node")
        await checker.stop()
        return (outcomes, window)
    }

    @Test(
        "pg_ctl restart -m fast under write load: no acknowledged write lost, 503 with Retry-After (never 500) meanwhile, every node serves again without restart"
    )
    func restartUnderLoad() async throws {
        try await withPostgresCluster { cluster in
            try await withFleet("pg-restart", cluster: cluster, environment: ["TOKEND_STORE_TIMEOUT": "2s"]) {
                fleet,
                nodes in
                _ = try await Self.writeLoad(fleet, nodes, cluster: cluster) { try await cluster.restart() }
                try await expectConverged(nodes, "after the restart")
            }
        }
    }

    @Test(
        "PostgreSQL down for seconds under write load: writes 503 with Retry-After, tokens still checked, /healthz says why, each node reconnects by itself and says so once"
    )
    func outageUnderLoad() async throws {
        try await withPostgresCluster { cluster in
            // Tokens are checked from memory through the outage: it stays well within the
            // staleness bound (FleetFollowerTests shows what happens beyond it).
            let environment = ["TOKEND_STORE_TIMEOUT": "2s", "TOKEND_MAX_STALENESS": "5m"]
            try await withFleet("pg-outage", cluster: cluster, environment: environment) {
                fleet,
                nodes in
                let live = try await nodes[0].issue(sub: "outage-live")
                let revoked = try await nodes[1].issue(sub: "outage-revoked")
                #expect(try await nodes[2].revoke(revoked.accessToken).status == 200)
                // Restarted, every node holds the revocation (no live propagation yet).
                var again: [Tokend] = []
                for node in nodes { again.append(try await fleet.restart(node)) }
                let restarted = again
                let (outcomes, _) = try await Self.writeLoad(fleet, restarted, cluster: cluster) {
                    try await cluster.stopServer()
                    // Down until every node has refused a write; meanwhile token checks answer
                    // from memory and /healthz says the database is away.
                    _ = try await eventually("every node to answer a write with 503", timeout: .seconds(30)) {
                        () async throws -> Bool? in
                        for node in restarted {
                            let reply = try await node.revoke(try await node.issue(sub: "outage-probe").accessToken)
                            if reply.status != 503 { return nil }
                        }
                        return true
                    }
                    for node in restarted {
                        #expect(try await node.isActive(live.accessToken), "\(node.name)")
                        #expect(try await !node.isActive(revoked.accessToken), "\(node.name)")
                        let health = try await node.api("GET", "/healthz")
                        #expect(health.string("status") != "serving", "\(node.name): \(health.summary)")
                        #expect(health.text.contains("PostgreSQL"), "\(node.name): \(health.summary)")
                    }
                    try await cluster.startServer()
                }
                #expect(outcomes.contains { $0.status == 503 }, "no write was refused while PostgreSQL was down")
                for node in restarted {
                    let log = node.log
                    #expect(
                        log.components(separatedBy: "PostgreSQL is reachable again").count - 1 == 1,
                        "\(node.name) must say once that it reconnected:\n\(log.lastLines(20).redactingSecrets)"
                    )
                }
                try await expectConverged(restarted, "after the outage")
            }
        }
    }
}
