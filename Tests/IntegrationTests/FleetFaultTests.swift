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
                            summary: reply.summary
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
                                summary: issued.summary
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
                            summary: reply.summary
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

    @Test(
        "pg_ctl restart -m fast under write load: no acknowledged write lost, 503 with Retry-After (never 500) meanwhile, every node serves again without restart"
    )
    func restartUnderLoad() async throws {
        try await withPostgresCluster { cluster in
            try await withFleet("pg-restart", cluster: cluster, environment: ["TOKEND_STORE_TIMEOUT": "2s"]) {
                fleet,
                nodes in
                let database = databaseName(fleet.storeURL)
                let load = Load()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for node in nodes { group.addTask { await Self.write(to: node, load: load) } }
                    do {
                        // Some writes go through before the restart…
                        _ = try await eventually("30 acknowledged writes", timeout: .seconds(60)) {
                            load.acknowledged >= 30 ? true : nil
                        }
                        try await cluster.restart()
                        // …and the load goes on until every node has had writes acknowledged
                        // again after it.
                        let restartedAt = load.outcomes.withLock { $0.count }
                        _ = try await eventually("every node to acknowledge writes again", timeout: .seconds(60)) {
                            let after = load.outcomes.withLock { Array($0[restartedAt...]) }
                            let nodesWriting = Set(after.filter { $0.status == 200 }.map(\.node))
                            return nodesWriting.count == nodes.count ? true : nil
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
                let statuses = Dictionary(grouping: outcomes, by: \.status).mapValues(\.count)
                #expect(Set(statuses.keys).isSubset(of: [200, 503]), "answers during the restart: \(statuses)")
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
                    "SELECT string_agg(jti, ' ') FROM revoked_access_tokens",
                    database: database
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
                    let node = nodes[index % nodes.count]
                    let reply = try await node.refresh(token)
                    #expect(reply.status == 200, "an acknowledged refresh family is lost: \(reply.summary)")
                }

                // Every node serves without a restart: healthy, and it wrote before and after.
                for node in nodes {
                    #expect(node.child.isRunning, "\(node.name) exited")
                    let health = try await node.api("GET", "/healthz")
                    #expect(health.status == 200, "\(node.name): \(health.summary)")
                    #expect(health.string("status") == "serving", "\(node.name): \(health.summary)")
                }
                // A node started now holds every acknowledged revocation.
                let checker = try await fleet.start("checker")
                var active = 0
                for (_, token) in revoked where try await checker.isActive(token) { active += 1 }
                #expect(active == 0, "\(active) acknowledged revocations are not in force on a new node")
            }
        }
    }
}
