import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 12 items 3-5: the nodes see each other (heartbeats, `tokenctl fleet`), a revocation
/// can be waited for until it is in force everywhere (`--wait`, `?wait=`), and keys change
/// across the fleet as one. Three real tokends on one PostgreSQL, driven over their sockets.
@Suite("Operating a fleet: heartbeats, --wait, keys", .timeLimit(.minutes(3)))
struct FleetOpsTests {
    /// A staleness bound of 3 s makes `--wait` stop waiting for a silent node after 5 s
    /// (max(5 s, bound + 1 s)), which keeps the tests short.
    static let environment = ["TOKEND_MAX_STALENESS": "3s"]

    /// `tokenctl fleet --json` on `node`, once it lists `count` nodes.
    static func fleet(_ node: Tokend, count: Int) async throws -> [JSONValue] {
        try await eventually("\(node.name) to list \(count) nodes", timeout: .seconds(15)) {
            let result = try await node.tokenctl(["fleet", "--json"])
            guard result.succeeded, let body = try? JSONParser().parse(result.stdout) else { return nil }
            let nodes = body["nodes"]?.arrayValue ?? []
            return nodes.count == count ? nodes : nil
        }
    }

    /// How long `node`'s heartbeat has been silent, as `observer` lists it.
    static func silence(of node: Tokend, on observer: Tokend) async throws -> Double {
        let listing = try await observer.admin("GET", "/admin/fleet")
        let row = Self.row(listing.json?["nodes"]?.arrayValue ?? [], pid: node.pid)
        return try #require(row?["seconds_since_seen"]?.numberValue?.doubleValue, "\(listing.summary)")
    }

    /// Seconds since 1970 of an ISO 8601 time as tokend writes it (`…:ssZ` or `…:ss.mmmZ`).
    static func seconds(iso8601 text: String) -> Double? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)?.timeIntervalSince1970
    }

    static func row(_ nodes: [JSONValue], pid: Int32) -> JSONValue? {
        nodes.first { $0["pid"]?.numberValue?.text == "\(pid)" }
    }

    @Test("tokenctl fleet lists the three nodes with their lag and clock offset; /healthz shows the offset")
    func fleetListsEveryNode() async throws {
        try await withFleet("ops-list", environment: Self.environment) { _, nodes in
            let (a, b) = (nodes[0], nodes[1])
            // A change on b: every node applies it, so each one's lag goes back to nothing.
            let token = try await a.issue(sub: "ops-list")
            #expect(try await b.revoke(token.accessToken).status == 200)
            let rows = try await eventually("every node to show live, caught up, with an offset") {
                let rows = try await Self.fleet(a, count: 3)
                let settled = rows.allSatisfy {
                    $0["state"]?.stringValue == "live" && $0["behind_events"]?.numberValue?.text == "0"
                        && $0["clock_offset_seconds"]?.numberValue != nil
                }
                return settled ? rows : nil
            }
            for node in nodes {
                let row = try #require(Self.row(rows, pid: node.pid), "\(node.name) (pid \(node.pid)) is listed")
                let offset = try #require(row["clock_offset_seconds"]?.numberValue?.doubleValue)
                #expect(abs(offset) < 1, "\(node.name): one machine, one clock: \(offset)")
                #expect(row["this_node"]?.boolValue == (node.pid == a.pid))
            }
            // For people: one line per node, its pid and state.
            let text = try await a.tokenctl(["fleet"])
            #expect(text.succeeded, "\(text)")
            for node in nodes { #expect(text.stdout.contains("\(node.pid)"), "\(text.stdout)") }
            #expect(text.stdout.contains("0 events"), "\(text.stdout)")
            let health = try await b.api("GET", "/healthz")
            #expect(health.json?["clock_offset_seconds"]?.numberValue != nil, "\(health.summary)")
            #expect(health.string("clock") == "ok", "\(health.summary)")
        }
    }

    @Test("--wait returns only once every node applied the change: right after it, every node refuses the token")
    func waitMeansEverywhere() async throws {
        try await withFleet("ops-wait", environment: Self.environment) { _, nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            _ = try await Self.fleet(a, count: 3)
            let revoked = try await a.issue(sub: "ops-wait-revoked")
            let user = try await b.createUser("ops-wait-user")
            let signedOut = try await c.issue(sub: user)
            let deactivatedUser = try await c.createUser("ops-wait-deactivated")
            let deactivated = try await a.issue(sub: deactivatedUser)
            for node in nodes {
                for token in [revoked, signedOut, deactivated] {
                    #expect(try await node.isActive(token.accessToken), "\(node.name) before any change")
                }
            }

            let revoke = try await b.tokenctl(["token", "revoke", "--wait", revoked.accessToken])
            #expect(revoke.succeeded, "\(revoke)")
            #expect(revoke.stdout.contains("in force on every live node (3)"), "\(revoke.stdout)")
            // Right after the return, not eventually: --wait promised it.
            for node in nodes { #expect(try await node.isActive(revoked.accessToken) == false, "\(node.name)") }

            let logout = try await c.tokenctl(["subject", "logout", "--wait", user])
            #expect(logout.succeeded, "\(logout)")
            for node in nodes { #expect(try await node.isActive(signedOut.accessToken) == false, "\(node.name)") }

            let deactivate = try await a.tokenctl(["user", "deactivate", "--wait", "--json", deactivatedUser])
            #expect(deactivate.succeeded, "\(deactivate)")
            let summary = try JSONParser().parse(deactivate.stdout)["fleet_wait"]
            #expect(summary?["applied"]?.arrayValue?.count == 3, "\(deactivate.stdout)")
            for node in nodes { #expect(try await node.isActive(deactivated.accessToken) == false, "\(node.name)") }

            // A key revoked with --wait: no node accepts what it signed any more.
            let kept = try await c.issue(sub: "ops-wait-kept")
            let kid = try #require(kept.accessToken.kid)
            let revokeKey = try await a.tokenctl(["keys", "revoke", "--wait", kid])
            #expect(revokeKey.succeeded, "\(revokeKey)")
            for node in nodes { #expect(try await node.isActive(kept.accessToken) == false, "\(node.name)") }

            // A malformed wait is refused before anything changes.
            let bad = try await a.admin("POST", "/admin/users/\(user)/logout?wait=soon")
            #expect(bad.status == 400, "\(bad.summary)")
            #expect(bad.string("error_description")?.contains("wait must be a duration") == true)
        }
    }

    @Test(
        "kill -9 of a node: it shows as stopped and --wait stops waiting for it, while a live node that cannot apply fails the wait by name"
    )
    func stoppedAndStuckNodes() async throws {
        try await withFleet("ops-kill", environment: Self.environment) { _, nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            _ = try await Self.fleet(a, count: 3)
            let first = try await a.issue(sub: "ops-kill-1")
            try await c.kill9()
            let began = ContinuousClock.now
            let revoke = try await a.tokenctl(["token", "revoke", "--wait", "--wait-timeout", "20s", first.accessToken])
            let ended = ContinuousClock.now
            #expect(revoke.succeeded, "\(revoke)")
            #expect(revoke.stdout.contains("not waited for"), "\(revoke.stdout)")
            #expect(revoke.stdout.contains("/\(c.pid) "), "names the killed node: \(revoke.stdout)")
            #expect(ended - began < .seconds(15), "\(ended - began)")
            // c is waited for until its heartbeat has been silent for the cutoff
            // (max(5 s, bound + 1 s)), counted from its last heartbeat, not from the kill:
            // how long the wait took depends on how long before the kill c last wrote one.
            let listed = ContinuousClock.now
            let silent = try await Self.silence(of: c, on: a)
            // c's last heartbeat was no earlier than `listed - silent` (the listing was read
            // after `listed`), so the wait may not have ended before that plus the cutoff.
            let earliestEnd = listed - .seconds(silent) + .seconds(5)
            #expect(
                ended >= earliestEnd - .milliseconds(100),
                "stopped waiting for c \(earliestEnd - ended) before its heartbeat had been silent for 5 s"
            )
            let rows = try await Self.fleet(a, count: 3)
            #expect(Self.row(rows, pid: c.pid)?["state"]?.stringValue == "stopped", "\(rows)")
            #expect(Self.row(rows, pid: b.pid)?["state"]?.stringValue == "live", "\(rows)")

            // b paused (SIGSTOP): alive as far as anyone knows, but applying nothing. A wait
            // shorter than the cutoff fails naming b, not a, and not the stopped c.
            let second = try await a.issue(sub: "ops-kill-2")
            b.send(SIGSTOP)
            do {
                let reply = try await a.api(
                    "POST",
                    "/oauth2/revoke",
                    body: .form([("token", second.accessToken)])
                )
                #expect(reply.status == 200, "the API socket ignores wait: \(reply.summary)")
                // b counts as live until its heartbeat has been silent for 5 s, and each wait
                // below needs it live throughout: each one runs only while there is time left
                // (a loaded machine may have used it up already).
                let third = try await a.issue(sub: "ops-kill-3")
                guard try await Self.silence(of: b, on: a) < 3.5 else {
                    b.send(SIGCONT)
                    return
                }
                let waited = try await a.admin(
                    "POST",
                    "/oauth2/revoke?wait=1s",
                    json: jsonText(["token": .string(third.accessToken)])
                )
                #expect(waited.status == 504, "\(waited.summary)")
                #expect(waited.string("error") == "fleet_wait_timeout")
                let pending = (waited.json?["pending"]?.arrayValue ?? []).compactMap(\.stringValue)
                #expect(pending.count == 1 && pending[0].contains("/\(b.pid) "), "\(pending)")
                let skipped = (waited.json?["not_waited_for"]?.arrayValue ?? []).compactMap(\.stringValue)
                #expect(skipped.contains { $0.contains("/\(c.pid) ") }, "\(skipped)")
                #expect(waited.string("error_description")?.contains("/\(b.pid) ") == true, "\(waited.summary)")
                // tokenctl: exit 1, naming b on stderr.
                let fourth = try await a.issue(sub: "ops-kill-4")
                guard try await Self.silence(of: b, on: a) < 3.5 else {
                    b.send(SIGCONT)
                    return
                }
                let failed = try await a.tokenctl([
                    "token", "revoke", "--wait", "--wait-timeout", "1s", fourth.accessToken,
                ])
                #expect(failed.status == .exited(1), "\(failed)")
                #expect(failed.stderr.contains("not in force everywhere yet"), "\(failed.stderr)")
                #expect(failed.stderr.contains("/\(b.pid) "), "\(failed.stderr)")
            } catch {
                b.send(SIGCONT)
                throw error
            }
            b.send(SIGCONT)
        }
    }

    @Test("after a rotation every node serves the same JWKS, ETag included, and reports it in its heartbeat")
    func sameJWKSEverywhere() async throws {
        try await withFleet("ops-jwks", environment: Self.environment) { _, nodes in
            let a = nodes[0]
            let rotate = try await a.tokenctl(["keys", "rotate", "--force"])
            #expect(rotate.succeeded, "\(rotate)")
            let reference = try await a.api("GET", "/.well-known/jwks.json")
            let etag = try #require(reference.header("ETag"))
            for node in nodes.dropFirst() {
                _ = try await eventually("\(node.name) to serve a's JWKS", timeout: FleetFollowerTests.propagation) {
                    let reply = try await node.api("GET", "/.well-known/jwks.json")
                    return reply.header("ETag") == etag && reply.text == reference.text ? true : nil
                }
            }
            _ = try await eventually("every heartbeat to report the same JWKS") {
                let rows = try await Self.fleet(a, count: 3)
                return rows.allSatisfy { $0["jwks_etag"]?.stringValue == etag } ? true : nil
            }
        }
    }

    @Test("the next key is promoted only once every live node has published it for the JWKS max-age")
    func rotationWaitsForTheWholeFleet() async throws {
        // A max-age well inside the 5 s after which a silent node counts as stopped: c, paused,
        // must still count as a live node that lacks the key when the max-age has passed.
        let environment = Self.environment.merging(["TOKEND_JWKS_MAX_AGE": "2"]) { $1 }
        try await withFleet("ops-maxage", environment: environment) { _, nodes in
            let (a, c) = (nodes[0], nodes[2])
            _ = try await Self.fleet(a, count: 3)
            // c paused: it cannot publish the next key the rotation below creates. It counts as
            // a live node until its heartbeat has been silent for 5 s; every check that needs it
            // live asks how long it has been silent (a loaded machine eats that time), and the
            // steps go through the admin socket rather than a tokenctl process. Paused just
            // after a heartbeat, so that the whole 5 s are left.
            _ = try await eventually("a fresh heartbeat from c", timeout: .seconds(15)) {
                // Read without `silence`'s #require: an answer without the row is only a retry.
                let listing = try await a.admin("GET", "/admin/fleet")
                let row = Self.row(listing.json?["nodes"]?.arrayValue ?? [], pid: c.pid)
                let silent = row?["seconds_since_seen"]?.numberValue?.doubleValue
                return silent.map { $0 < 0.4 } == true ? true : nil
            }
            c.send(SIGSTOP)
            let next: String
            do {
                let forced = try await a.admin("POST", "/admin/keys/rotate", json: #"{"force":true}"#)
                #expect(forced.status == 200, "\(forced.summary)")
                let created = ContinuousClock.now
                next = try #require(try await a.keyStates().kid(in: "next"))
                // What the keys listing says meanwhile: no time yet, and who it waits for.
                let waiting = try await a.admin("GET", "/admin/keys")
                if try await Self.silence(of: c, on: a) < 4.5 {
                    #expect(waiting.json?["rotation_safe_at"] == nil, "\(waiting.summary)")
                    let names = (waiting.json?["rotation_waits_for"]?.arrayValue ?? []).compactMap(\.stringValue)
                    // c among them (a and b may not have said yet, in a heartbeat, that they have it).
                    #expect(names.contains { $0.contains("/\(c.pid) ") }, "\(waiting.summary)")
                }
                // Past the max-age since the key was created: on one host that would be enough.
                try await Task.sleep(until: created + .milliseconds(2300))
                let early = try await a.admin("POST", "/admin/keys/rotate", json: "{}")
                // c still live once the answer came (silent for less than 5 s): it was live
                // while the rotation was decided, so the rotation must have been refused.
                if try await Self.silence(of: c, on: a) < 4.9 {
                    #expect(early.status == 409, "c never published \(next): \(early.summary)")
                    #expect(early.string("error_description")?.contains(next) == true, "\(early.summary)")
                } else if early.status == 200 {
                    // Too slow a machine: c counted as stopped, so the rotation went ahead and
                    // c can never publish `next` as the next key. Nothing more to check here.
                    c.send(SIGCONT)
                    return
                }
            } catch {
                c.send(SIGCONT)
                throw error
            }
            // c can publish the key only once it runs again: the max-age counts from then.
            let resumed = Date().timeIntervalSince1970
            c.send(SIGCONT)
            _ = try await eventually("c to publish \(next) and say so", timeout: .seconds(15)) {
                let rows = try await Self.fleet(a, count: 3)
                return Self.row(rows, pid: c.pid)?["next_kid"]?.stringValue == next ? true : nil
            }
            let keys = try await a.admin("GET", "/admin/keys")
            #expect(keys.json?["rotation_waits_for"] == nil, "\(keys.summary)")
            let safeAt = try #require(
                keys.string("rotation_safe_at").flatMap(Self.seconds(iso8601:)),
                "\(keys.summary)"
            )
            #expect(safeAt >= resumed + 2 - 0.05, "safe \(safeAt - resumed) s after c could first publish the key")
            let stillEarly = try await a.tokenctl(["keys", "rotate"])
            let answeredAt = Date().timeIntervalSince1970
            if answeredAt < safeAt - 0.05 {
                #expect(stillEarly.status == .exited(1), "c has published it for less than 2 s: \(stillEarly)")
                #expect(stillEarly.stderr.contains("by every node"), "\(stillEarly.stderr)")
            }
            // On a slow machine that ask may already come after the safe time and rotate: then
            // it is the rotation (asking again would rotate once more, past `next`).
            let rotated =
                stillEarly.succeeded
                ? answeredAt
                : try await eventually("the rotation to be allowed", timeout: .seconds(15)) {
                    let result = try await a.tokenctl(["keys", "rotate"])
                    return result.succeeded ? Date().timeIntervalSince1970 : nil
                }
            #expect(rotated >= safeAt - 0.05, "allowed \(safeAt - rotated) s before rotation_safe_at")
            #expect(try await a.keyStates()[next] == "current")
        }
    }

    @Test("on SQLite, tokenctl fleet says there is no fleet and --wait returns at once")
    func sqliteHasNoFleet() async throws {
        try await withTokend("ops-sqlite") { node in
            let fleet = try await node.tokenctl(["fleet"])
            #expect(fleet.succeeded, "\(fleet)")
            #expect(fleet.stdout.contains("no fleet"), "\(fleet.stdout)")
            let token = try await node.issue(sub: "ops-sqlite")
            let began = ContinuousClock.now
            let revoke = try await node.tokenctl(["token", "revoke", "--wait", token.accessToken])
            #expect(revoke.succeeded, "\(revoke)")
            #expect(revoke.stdout.contains("one node (no fleet)"), "\(revoke.stdout)")
            #expect(ContinuousClock.now - began < .seconds(5))
            #expect(try await node.isActive(token.accessToken) == false)
        }
    }
}
