import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 12 items 1, 2 and 6: three running tokends on one PostgreSQL database, each following
/// the others' changes through the event log, without a restart; and a node that cannot follow
/// any more says so (503) instead of vouching for tokens.
@Suite("A fleet follows every node's changes live", .timeLimit(.minutes(3)))
struct FleetFollowerTests {
    /// How long a change may take to reach another node here: NOTIFY brings it in
    /// milliseconds, the read every second within one; the rest is a slow machine's margin.
    static let propagation = Duration.seconds(5)

    /// Waits until `token` introspects inactive on every node of `nodes` (no restart).
    static func inactiveEverywhere(_ token: String, on nodes: [Tokend], _ what: String) async throws {
        for node in nodes {
            _ = try await eventually("\(what) to be in force on \(node.name)", timeout: propagation) {
                try await node.isActive(token) ? nil : true
            }
        }
    }

    @Test(
        "revocation, sign-out, deactivation, an ended session and a key revocation on one node are in force on the others without a restart"
    )
    func changesReachEveryNode() async throws {
        try await withFleet("follow") { _, nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            let pids = nodes.map(\.pid)
            let revoked = try await a.issue(sub: "follow-revoked")
            let signedOutUser = try await b.createUser("follow-signed-out")
            let signedOut = try await c.issue(sub: signedOutUser)
            let deactivatedUser = try await c.createUser("follow-deactivated")
            let deactivated = try await a.issue(sub: deactivatedUser)
            let session = try await b.issue(sub: "follow-session", refresh: true)
            let kept = try await c.issue(sub: "follow-kept")
            // Every node has checked (and cached) every token as active first: a cached answer
            // from before a change must not be served after it.
            for node in nodes {
                for token in [revoked, signedOut, deactivated, session, kept] {
                    #expect(try await node.isActive(token.accessToken), "\(node.name) before any change")
                }
            }

            #expect(try await b.revoke(revoked.accessToken).status == 200)
            try await Self.inactiveEverywhere(revoked.accessToken, on: [a, c], "b's revocation")

            #expect(try await c.admin("POST", "/admin/users/\(signedOutUser)/logout").status == 200)
            try await Self.inactiveEverywhere(signedOut.accessToken, on: [a, b], "c's sign-out")

            let deactivation = try await a.admin("POST", "/admin/users/\(deactivatedUser)/deactivate")
            #expect(deactivation.status == 200, "\(deactivation.summary)")
            try await Self.inactiveEverywhere(deactivated.accessToken, on: [b, c], "a's deactivation")

            // Revoking the refresh token ends the session: its access token goes inactive too.
            #expect(try await c.revoke(try #require(session.refreshToken)).status == 200)
            try await Self.inactiveEverywhere(session.accessToken, on: [a, b], "c's end of a session")

            for node in nodes { #expect(try await node.isActive(kept.accessToken), "\(node.name): kept") }

            // The current key revoked on c: every token it signed is refused on a and b, and they
            // publish c's new keyring.
            let current = try #require(try await c.keyStates().kid(in: "current"))
            #expect(kept.accessToken.kid == current)
            let revokeKey = try await c.admin("POST", "/admin/keys/\(current)/revoke")
            #expect(revokeKey.status == 200, "\(revokeKey.summary)")
            try await Self.inactiveEverywhere(kept.accessToken, on: [a, b], "c's key revocation")
            let keyring = try await c.keyStates()
            #expect(keyring[current] == "revoked", "\(keyring)")
            let jwks = try await c.jwks()
            for node in [a, b] {
                let states = try await eventually("\(node.name) to load c's keyring", timeout: Self.propagation) {
                    let states = try await node.keyStates()
                    return states == keyring ? states : nil
                }
                #expect(states[current] == "revoked")
                #expect(try await node.jwks() == jwks, "\(node.name) serves another JWKS than c")
                // And signs with the new current key, which every node accepts.
                let fresh = try await node.issue(sub: "follow-after-\(node.name)")
                #expect(fresh.accessToken.kid == keyring.kid(in: "current"))
                for other in nodes { #expect(try await other.isActive(fresh.accessToken), "\(other.name)") }
            }
            #expect(nodes.map(\.pid) == pids && nodes.allSatisfy(\.child.isRunning), "no node restarted")
        }
    }

    @Test(
        "a transaction left open in another database of the cluster holds nothing back: --wait returns, every node refuses the token, none is behind"
    )
    func longTransactionElsewhere() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        try await withFleet("long-txn", cluster: cluster) { _, nodes in
            let (a, b) = (nodes[0], nodes[1])
            let directory = try TemporaryDirectory(prefix: "tokend-long-txn")
            defer { directory.remove() }
            // Someone's psql: BEGIN, a transaction id taken, then nothing, in another database.
            // Every snapshot in the cluster lists it as running while it stays open.
            let name = "long-txn-\(getpid())"
            let release = directory.file("release")
            let holder = try ChildProcess(
                "/bin/sh",
                [
                    "-c",
                    "( echo 'BEGIN; SELECT pg_current_xact_id();'; while [ ! -f \"$5\" ]; do sleep 0.05; done; "
                        + "echo 'COMMIT;' ) | \"$1\" -X -q -A -t -v ON_ERROR_STOP=1 -h \"$2\" -p \"$3\" -U tokend -d \"$4\"",
                    name, "\(try PostgresCluster.binaryDirectory())/psql", cluster.socketDirectory,
                    "\(cluster.tcpPort ?? 5432)", "postgres", release,
                ],
                environment: minimalEnvironment(["PGAPPNAME": name]),
                stdout: .file(directory.file("psql.out")),
                stderr: .file(directory.file("psql.out")),
                name: name
            )
            // Ends the other session's transaction and waits for psql to exit (by its pid).
            let finish = {
                _ = FileManager.default.createFile(atPath: release, contents: nil)
                _ = await holder.waitForExit(timeout: .seconds(20))
            }
            do {
                _ = try await eventually("the other session to hold its transaction open", timeout: .seconds(20)) {
                    let holding = try await Fleet.value(
                        cluster,
                        """
                        SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(name)'
                        AND backend_xid IS NOT NULL AND state = 'idle in transaction'
                        """,
                        database: "postgres"
                    )
                    return holding == "1" ? true : nil
                }

                let token = try await a.issue(sub: "long-txn")
                for node in nodes { #expect(try await node.isActive(token.accessToken), "\(node.name)") }
                let revoke = try await b.tokenctl([
                    "token", "revoke", "--wait", "--wait-timeout", "10s", token.accessToken,
                ])
                #expect(revoke.succeeded, "a wait held back by a transaction that has nothing to do with it: \(revoke)")
                #expect(revoke.stdout.contains("in force on every live node (3)"), "\(revoke.stdout)")
                for node in nodes { #expect(try await node.isActive(token.accessToken) == false, "\(node.name)") }
                // Nor does the fleet listing show any node behind because of it.
                let settled = try await eventually("every node to show nothing left to apply", timeout: .seconds(10)) {
                    let listing = try await a.admin("GET", "/admin/fleet")
                    let rows = listing.json?["nodes"]?.arrayValue ?? []
                    return rows.count == 3 && rows.allSatisfy { $0["behind_events"]?.numberValue?.text == "0" }
                        ? true : nil
                }
                #expect(settled)
                let stillOpen = try await Fleet.value(
                    cluster,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(name)' AND backend_xid IS NOT NULL",
                    database: "postgres"
                )
                #expect(stillOpen == "1", "the other transaction was open all along")
            } catch {
                await finish()
                throw error
            }
            await finish()
        }
    }

    @Test("the listening connection killed with pg_terminate_backend: a later revocation still reaches every node")
    func listenerKilled() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        try await withFleet("listen-kill", cluster: cluster) { fleet, nodes in
            let database = databaseName(fleet.storeURL)
            let listeners = """
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = '\(database)' AND application_name = 'tokend listener'
                """
            let listening = try await eventually("three listening connections", timeout: .seconds(10)) {
                try await Fleet.value(cluster, listeners, database: database) == "3" ? true : nil
            }
            #expect(listening)
            let terminated = try await Fleet.value(
                cluster,
                """
                SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = '\(database)' AND application_name = 'tokend listener'
                """,
                database: database
            )
            #expect(terminated == "3", "terminated \(terminated) listening connections")

            let token = try await nodes[0].issue(sub: "after-the-kill")
            #expect(try await nodes[2].isActive(token.accessToken))
            #expect(try await nodes[1].revoke(token.accessToken).status == 200)
            try await Self.inactiveEverywhere(
                token.accessToken,
                on: [nodes[0], nodes[2]],
                "a revocation after the kill"
            )

            // Each node said so, reconnected and listens again, by itself.
            for node in nodes {
                _ = try await eventually("\(node.name) to listen again", timeout: .seconds(10)) {
                    node.log.contains("listening for the fleet's changes again") ? true : nil
                }
                #expect(node.log.contains("lost the connection that listens for the fleet's changes"))
            }
            _ = try await eventually("three listening connections again", timeout: .seconds(10)) {
                try await Fleet.value(cluster, listeners, database: database) == "3" ? true : nil
            }
            // And notifications work again: a revocation now arrives too.
            let second = try await nodes[2].issue(sub: "after-the-reconnect")
            #expect(try await nodes[0].revoke(second.accessToken).status == 200)
            try await Self.inactiveEverywhere(second.accessToken, on: [nodes[1], nodes[2]], "a revocation later")
            try await expectConverged(nodes, "after the listeners were killed")
        }
    }

    @Test("writers NOTIFY only for changes of other nodes' memory: not for sign-ins, sign-ups or refresh rotations")
    func notifiesOnlyFollowedChanges() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        try await withFleet("notify", cluster: cluster) { fleet, nodes in
            let (a, b) = (nodes[0], nodes[1])
            let database = databaseName(fleet.storeURL)
            // A psql session LISTENing on the channel, printing what arrives until told to stop.
            let stop = fleet.sandbox.file("psql-stop")
            let output = fleet.sandbox.file("psql-listen.out")
            let psql = "\(try PostgresCluster.binaryDirectory())/psql"
            let script = """
                ( echo 'LISTEN tokend_events;'; echo "SELECT 'listening';"
                  while [ ! -f "$1" ]; do sleep 0.1; echo 'SELECT 1;'; done ) |
                "$2" -X -A -t -h "$3" -p "$4" -U tokend -d "$5"
                """
            let listener = try ChildProcess(
                "/bin/sh",
                [
                    "-c", script, "listen", stop, psql, cluster.socketDirectory, "\(cluster.tcpPort ?? 5432)",
                    database,
                ],
                environment: minimalEnvironment(),
                stdout: output,
                stderr: output,
                name: "psql-listen"
            )
            defer { _ = FileManager.default.createFile(atPath: stop, contents: nil) }
            @Sendable func notifications() -> [String] {
                let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
                return text.split(separator: "\n").filter { $0.contains("Asynchronous notification") }.map(String.init)
            }
            _ = try await eventually("psql to listen", timeout: .seconds(10)) {
                ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("listening") ? true : nil
            }

            // Sign-up, sign-in, an issued session and two refresh rotations, on two nodes.
            let user = try await a.createUser("notify-user")
            let signIn = try await b.api(
                "POST",
                "/api/v1/auths/sign-in",
                json: #"{"username":"notify-user","password":"fleet-password"}"#
            )
            #expect(signIn.status == 200, "\(signIn.summary)")
            let session = try await a.issue(sub: user, refresh: true)
            let first = try await b.refresh(try #require(session.refreshToken))
            #expect(first.status == 200, "\(first.summary)")
            let second = try await a.refresh(try #require(TokenResponse(first)?.refreshToken))
            #expect(second.status == 200, "\(second.summary)")
            try await Task.sleep(for: .milliseconds(1500))
            #expect(notifications().isEmpty, "notified for rotations or sign-ins: \(notifications())")

            // A revocation notifies, once, with its event's sequence.
            let token = try await b.issue(sub: "notify-revoked")
            #expect(try await a.revoke(token.accessToken).status == 200)
            let arrived = try await eventually("the revocation's notification", timeout: .seconds(10)) {
                notifications().isEmpty ? nil : notifications()
            }
            let sequence = try await Fleet.value(
                cluster,
                "SELECT max(sequence) FROM tokend.events WHERE kind = 'revoke_access'",
                database: database
            )
            #expect(arrived.count == 1, "\(arrived)")
            #expect(
                arrived.first?.contains(#""tokend_events" with payload "\#(sequence)""#) == true,
                "\(arrived) (the revocation is event \(sequence))"
            )
            _ = FileManager.default.createFile(atPath: stop, contents: nil)
            _ = await listener.stop()
        }
    }

    @Test(
        "PostgreSQL down longer than TOKEND_MAX_STALENESS: every node answers token checks 503 and /healthz says it is behind; serving again once it is back"
    )
    func outageBeyondTheBound() async throws {
        try await withPostgresCluster { cluster in
            // A bound a loaded machine's one-second reads keep within before the outage.
            let environment = ["TOKEND_MAX_STALENESS": "4s", "TOKEND_STORE_TIMEOUT": "2s"]
            try await withFleet("stale", cluster: cluster, environment: environment) { _, nodes in
                let live = try await nodes[0].issue(sub: "stale-live")
                // Every node caught up before the outage: on a machine loaded by the other suites
                // a node may be behind for a moment already (and says so with a 503), so this
                // waits for it rather than assuming it.
                for node in nodes {
                    let reply = try await eventually("\(node.name) to answer token checks", timeout: .seconds(20)) {
                        let reply = try await node.introspect(live.accessToken)
                        return reply.status == 503 ? nil : reply
                    }
                    #expect(
                        reply.status == 200 && reply.json?["active"]?.boolValue == true,
                        "\(node.name): \(reply.summary)"
                    )
                }
                let stopped = ContinuousClock.now
                try await cluster.stopServer()
                for node in nodes {
                    let refused = try await eventually("\(node.name) to refuse token checks", timeout: .seconds(15)) {
                        let reply = try await node.introspect(live.accessToken)
                        return reply.status == 503 ? reply : nil
                    }
                    // Not before the bound, counted from the last read that caught up (at most about
                    // a second before the server stopped).
                    #expect(ContinuousClock.now - stopped >= .milliseconds(800), "\(node.name) refused too early")
                    #expect(refused.header("Retry-After") != nil, "\(node.name): \(refused.summary)")
                    #expect(refused.string("error") == "temporarily_unavailable", "\(refused.summary)")
                    #expect(refused.text.contains("behind the fleet by"), "\(refused.summary)")
                    #expect(refused.json?["active"] == nil, "a 503 never says active: \(refused.summary)")
                    let verify = try await node.api(
                        "GET",
                        "/v1/verify",
                        headers: [("Authorization", "Bearer \(live.accessToken)")]
                    )
                    #expect(verify.status == 503, "\(node.name): \(verify.summary)")
                    #expect(verify.header("Retry-After") != nil, "\(node.name): \(verify.summary)")
                    let health = try await node.api("GET", "/healthz")
                    #expect(health.status == 503, "\(node.name): \(health.summary)")
                    #expect(health.string("fleet")?.contains("behind the fleet by") == true, "\(health.summary)")
                    #expect(health.string("reason")?.contains("behind the fleet by") == true, "\(health.summary)")
                }
                try await cluster.startServer()
                for node in nodes {
                    _ = try await eventually("\(node.name) to serve token checks again", timeout: .seconds(20)) {
                        try await node.introspect(live.accessToken).status == 200 ? true : nil
                    }
                    #expect(try await node.isActive(live.accessToken))
                    let health = try await eventually("\(node.name)'s /healthz to be ok", timeout: .seconds(20)) {
                        let health = try await node.api("GET", "/healthz")
                        return health.status == 200 ? health : nil
                    }
                    #expect(health.string("fleet") == "ok", "\(health.summary)")
                    #expect(node.log.contains("this node is behind the fleet; token checks answer 503"))
                    #expect(node.log.contains("caught up with the fleet; token checks are answered again"))
                }
                // Following works again: a revocation on one node reaches the others.
                #expect(try await nodes[2].revoke(live.accessToken).status == 200)
                try await Self.inactiveEverywhere(live.accessToken, on: [nodes[0], nodes[1]], "a revocation after")
                try await expectConverged(nodes, "after the outage")
            }
        }
    }
}
