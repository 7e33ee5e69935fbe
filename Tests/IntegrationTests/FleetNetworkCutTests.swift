import Foundation
import JOSE
import Synchronization
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 12 item 6, its last bullet: a node in a network namespace of its own reaches
/// PostgreSQL over TCP through a veth pair; the link is cut with `ip link set … down`. The node
/// must fail closed once it is behind by more than `TOKEND_MAX_STALENESS` while the nodes on
/// the Unix socket keep serving, and catch up by itself once the link is back.
@Suite("A node cut off from the database by the network", .timeLimit(.minutes(3)))
struct FleetNetworkCutTests {
    /// Network namespaces and veth pairs need CAP_NET_ADMIN: when the tests do not run as root
    /// this test is skipped, and Swift Testing prints the reason with the skip.
    static let isRoot = geteuid() == 0

    /// The staleness bound of every node here.
    static let bound = Duration.seconds(3)

    /// One answer the cut-off node gave for the revoked token, and when it was asked.
    struct Answer: Sendable {
        let sent: ContinuousClock.Instant
        let status: Int
        let active: Bool?
        let summary: String
    }

    @Test(
        "a node cut off from PostgreSQL by `ip link set down` answers 503, never active:true, for a token revoked elsewhere once the staleness bound has passed; the others keep serving; it catches up when the link returns",
        .enabled(if: isRoot, "needs root: it creates a network namespace and a veth pair (CAP_NET_ADMIN)")
    )
    func cutOffNodeFailsClosed() async throws {
        try await withPrivateNetwork { network in
            let cluster = try await PostgresCluster.start(plainTCP: (network.hostAddress, network.cidr))
            do {
                try await Self.cutAndRestore(network, cluster: cluster)
                await cluster.stop()
            } catch {
                await cluster.stop()
                throw error
            }
        }
    }

    static func cutAndRestore(_ network: PrivateNetwork, cluster: PostgresCluster) async throws {
        let environment = [
            "TOKEND_MAX_STALENESS": "\(bound.components.seconds)s", "TOKEND_STORE_TIMEOUT": "2s",
        ]
        try await withFleet("netcut", count: 2, cluster: cluster, environment: environment) { fleet, nodes in
            let (a, b) = (nodes[0], nodes[1])
            let database = databaseName(fleet.storeURL)
            let port = try #require(cluster.tcpPort)
            let tcpURL =
                "postgres://\(PostgresCluster.user)@\(network.hostAddress):\(port)/\(database)"
                + "?sslmode=disable&connect_timeout=2"
            let cut = try await fleet.start(
                "cut",
                environment: ["TOKEND_STORE": tcpURL],
                launcher: [network.ip, "netns", "exec", network.namespace]
            )
            // The node really talks to PostgreSQL from inside the namespace, over the veth.
            let fromNamespace = try await eventually("the cut node's connections over the veth", timeout: .seconds(10))
            {
                let count = try await Fleet.value(
                    cluster,
                    "SELECT count(*) FROM pg_stat_activity WHERE client_addr = '\(network.namespaceAddress)'",
                    database: database
                )
                return (Int(count) ?? 0) > 0 ? count : nil
            }
            #expect(Int(fromNamespace) ?? 0 > 0)

            let revoked = try await a.issue(sub: "netcut-revoked")
            let kept = try await a.issue(sub: "netcut-kept")
            let later = try await a.issue(sub: "netcut-later")
            // Every node has checked (and cached) the tokens as active before the cut.
            for node in [a, b, cut] {
                for token in [revoked, kept, later] {
                    #expect(try await node.isActive(token.accessToken), "\(node.name) before the cut")
                }
            }

            try await network.setHostLink(up: false)
            do {
                let (revokedAt, answers) = try await Self.duringTheCut(
                    cut: cut,
                    others: [a, b],
                    revoked: revoked.accessToken,
                    later: later.accessToken,
                    kept: kept.accessToken
                )
                Self.checkFailedClosed(answers, revokedAt: revokedAt)
            } catch {
                try? await network.setHostLink(up: true)
                throw error
            }
            try await network.setHostLink(up: true)

            // Back on the network, the node catches up by itself: both revocations made during
            // the cut are in force on it, the kept token is active, and it says it is serving.
            for token in [revoked, later] {
                _ = try await eventually(
                    "the cut node to apply the revocations made during the cut",
                    timeout: .seconds(60)
                ) {
                    let reply = try await cut.introspect(token.accessToken)
                    return reply.status == 200 && reply.json?["active"]?.boolValue == false ? true : nil
                }
            }
            #expect(try await cut.isActive(kept.accessToken), "the cut node refuses a token nobody revoked")
            let health = try await eventually("the cut node's /healthz to be ok", timeout: .seconds(30)) {
                let health = try await cut.api("GET", "/healthz")
                return health.status == 200 ? health : nil
            }
            #expect(health.string("fleet") == "ok", "\(health.summary)")
            #expect(cut.log.contains("this node is behind the fleet; token checks answer 503"))
            #expect(cut.log.contains("caught up with the fleet; token checks are answered again"))
            #expect(cut.child.isRunning && a.child.isRunning && b.child.isRunning, "no node exited")
            try await expectConverged([a, b, cut], "after the link came back")
        }
    }

    /// With the link down: revokes `revoked` on b, then polls the cut node for it until it has
    /// answered 503 for a while, checking meanwhile that a and b serve (`kept` active, the
    /// revocation in force) and take another revocation (`later`). Returns when the revocation
    /// was acknowledged and every answer the cut node gave.
    static func duringTheCut(
        cut: Tokend,
        others: [Tokend],
        revoked: String,
        later: String,
        kept: String
    ) async throws -> (revokedAt: ContinuousClock.Instant, answers: [Answer]) {
        let (a, b) = (others[0], others[1])
        let revocation = try await b.revoke(revoked)
        #expect(revocation.status == 200, "\(revocation.summary)")
        let revokedAt = ContinuousClock.now
        var answers: [Answer] = []
        var refusedSince: ContinuousClock.Instant?
        let deadline = revokedAt + bound + .seconds(30)
        // Until the cut node has refused for two seconds, two seconds have passed beyond the
        // bound, and at least 20 checks were sent beyond it (on a loaded machine one check may
        // take seconds; or the deadline: checked below).
        while ContinuousClock.now < deadline {
            let beyond = answers.filter { $0.sent - revokedAt > bound }.count
            if let refusedSince, ContinuousClock.now - refusedSince > .seconds(2),
                ContinuousClock.now - revokedAt > bound + .seconds(2), beyond >= 20
            {
                break
            }
            let sent = ContinuousClock.now
            let reply = try await cut.introspect(revoked)
            answers.append(
                Answer(
                    sent: sent,
                    status: reply.status,
                    active: reply.json?["active"]?.boolValue,
                    summary: reply.summary
                )
            )
            if reply.status == 503 {
                if refusedSince == nil { refusedSince = sent }
            } else {
                refusedSince = nil
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(refusedSince != nil, "the cut node never refused to check tokens within \(bound + .seconds(30))")

        // It says why, on introspection, /v1/verify and /healthz.
        let refused = try await cut.introspect(kept)
        #expect(refused.status == 503, "\(refused.summary)")
        #expect(refused.header("Retry-After") != nil, "\(refused.summary)")
        #expect(refused.text.contains("behind the fleet by"), "\(refused.summary)")
        let verify = try await cut.api("GET", "/v1/verify", headers: [("Authorization", "Bearer \(kept)")])
        #expect(verify.status == 503, "\(verify.summary)")
        let health = try await cut.api("GET", "/healthz")
        #expect(health.status == 503, "\(health.summary)")
        #expect(health.string("fleet")?.contains("behind the fleet by") == true, "\(health.summary)")

        // The nodes on the Unix socket keep serving, with the revocation in force, and take
        // another one.
        for node in [a, b] {
            _ = try await eventually("b's revocation to be in force on \(node.name)", timeout: .seconds(5)) {
                try await node.isActive(revoked) ? nil : true
            }
            #expect(try await node.isActive(kept), "\(node.name) stopped vouching for a live token")
            let health = try await node.api("GET", "/healthz")
            #expect(health.status == 200 && health.string("fleet") == "ok", "\(node.name): \(health.summary)")
        }
        #expect(try await a.revoke(later).status == 200)
        _ = try await eventually("a's revocation to be in force on b", timeout: .seconds(5)) {
            try await b.isActive(later) ? nil : true
        }
        return (revokedAt, answers)
    }

    /// The acceptance rule: no answer to a check sent more than the staleness bound after the
    /// revocation was acknowledged says active:true; each is 503 (with the reason) or inactive.
    static func checkFailedClosed(_ answers: [Answer], revokedAt: ContinuousClock.Instant) {
        let beyond = answers.filter { $0.sent - revokedAt > bound }
        #expect(beyond.count >= 10, "too few checks after the bound to say anything: \(beyond.count)")
        for answer in beyond {
            let closed = answer.status == 503 || (answer.status == 200 && answer.active == false)
            #expect(
                closed,
                "\(answer.sent - revokedAt) after the revocation the cut node answered \(answer.summary)"
            )
        }
        let statuses = Dictionary(grouping: answers, by: \.status).mapValues(\.count)
        #expect(Set(statuses.keys).isSubset(of: [200, 503]), "answers during the cut: \(statuses)")
    }
}

/// A private network for one test: a network namespace and a veth pair, the host's end and
/// the namespace's end on a /30 of 10.0.0.0/8 picked at random. Created and removed by
/// `withPrivateNetwork`; needs root.
struct PrivateNetwork: Sendable {
    /// The `ip` binary.
    let ip: String
    let namespace: String
    /// The veth's end on the host, and its end in the namespace.
    let hostLink: String
    let namespaceLink: String
    let hostAddress: String
    let namespaceAddress: String
    /// The /30 both ends are on.
    let cidr: String
    /// Where `ip` writes its output.
    let scratch: TemporaryDirectory

    init() throws {
        guard
            let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw HarnessError("ip (iproute2) not found; `make test-deps` installs it")
        }
        self.ip = ip
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        namespace = "tokend-\(tag)"
        hostLink = "tkh\(tag)"
        namespaceLink = "tkn\(tag)"
        let (second, third, fourth) = (Int.random(in: 200...250), Int.random(in: 0...255), 4 * Int.random(in: 0...63))
        let prefix = "10.\(second).\(third)."
        cidr = "\(prefix)\(fourth)/30"
        hostAddress = "\(prefix)\(fourth + 1)"
        namespaceAddress = "\(prefix)\(fourth + 2)"
        scratch = try TemporaryDirectory(prefix: "tokend-netns")
    }

    /// Runs `ip ARGUMENTS`, throwing with its output when it fails.
    func runIP(_ arguments: [String]) async throws {
        let result = try await run(ip, arguments, in: scratch.path, timeout: .seconds(20))
        guard result.succeeded else { throw HarnessError("ip \(arguments.joined(separator: " ")) failed: \(result)") }
    }

    /// The namespace, the veth pair between it and the host, both ends addressed and up. Should
    /// the test process be killed before `remove()`, a watcher removes them once it is gone.
    func create() async throws {
        try afterThisProcess(
            #""$1" link del "$2" 2>/dev/null; "$1" netns del "$3" 2>/dev/null; rm -rf "$4""#,
            [ip, hostLink, namespace, scratch.path],
            name: "netns-watch"
        )
        try await runIP(["netns", "add", namespace])
        try await runIP(["link", "add", hostLink, "type", "veth", "peer", "name", namespaceLink])
        try await runIP(["link", "set", namespaceLink, "netns", namespace])
        try await runIP(["addr", "add", "\(hostAddress)/30", "dev", hostLink])
        try await runIP(["link", "set", hostLink, "up"])
        let inside = ["netns", "exec", namespace, ip]
        try await runIP(inside + ["addr", "add", "\(namespaceAddress)/30", "dev", namespaceLink])
        try await runIP(inside + ["link", "set", namespaceLink, "up"])
        try await runIP(inside + ["link", "set", "lo", "up"])
    }

    /// `ip link set HOSTLINK down|up`: the cable pulled, or plugged back in.
    func setHostLink(up: Bool) async throws {
        try await runIP(["link", "set", hostLink, up ? "up" : "down"])
    }

    /// Deletes the veth pair (both ends go) and the namespace, whatever of them exists.
    func remove() async {
        _ = try? await run(ip, ["link", "del", hostLink], in: scratch.path, timeout: .seconds(20))
        _ = try? await run(ip, ["netns", "del", namespace], in: scratch.path, timeout: .seconds(20))
        scratch.remove()
    }
}

/// Creates a private network, runs `body`, and always removes the namespace and the veth pair,
/// whatever `body` does.
func withPrivateNetwork<T>(_ body: (PrivateNetwork) async throws -> T) async throws -> T {
    let network = try PrivateNetwork()
    do {
        try await network.create()
        let result = try await body(network)
        await network.remove()
        return result
    } catch {
        await network.remove()
        throw error
    }
}
