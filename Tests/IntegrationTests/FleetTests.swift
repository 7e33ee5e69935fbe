import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11 item 7: three tokend processes on one PostgreSQL database (DESIGN §10), each with
/// its own sockets, driven over those sockets as a fleet's clients would. Here what one node
/// wrote holds on the others once they restart; FleetFollowerTests shows it reaching running
/// nodes.
@Suite("A fleet of three tokends on one PostgreSQL database", .timeLimit(.minutes(3)))
struct FleetTests {
    @Test("a token issued by one node is active on the others; its revocation holds on them once they restart")
    func issueAnywhereRevokeAnywhere() async throws {
        try await withFleet("consistency") { fleet, nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            // Started at once, one of them migrated the database and the others found it done…
            let migrated = nodes.filter { $0.log.contains("migrated the token database") }.map(\.name)
            #expect(migrated.count == 1, "nodes that migrated: \(migrated)")
            // …and the three agree on one keyring: the same JWKS.
            let jwks = try await a.jwks()
            #expect(try await b.jwks() == jwks, "b serves another JWKS than a")
            #expect(try await c.jwks() == jwks, "c serves another JWKS than a")

            let issued = try await a.issue(sub: "fleet-alice", scope: "read")
            let bob = try await b.createUser("fleet-bob")
            let loggedOut = try await b.issue(sub: bob, scope: "read")
            let kept = try await c.issue(sub: "fleet-carol", scope: "read")
            for node in nodes {
                let answer = try await node.introspect(issued.accessToken)
                #expect(answer.json?["active"]?.boolValue == true, "\(node.name): \(answer.summary)")
                #expect(answer.string("sub") == "fleet-alice", "\(node.name): \(answer.summary)")
                #expect(try await node.isActive(loggedOut.accessToken), "\(node.name) on b's token")
                #expect(try await node.isActive(kept.accessToken), "\(node.name) on c's token")
            }

            // Revoked on a (by token), signed out on c (by subject): in force at once there.
            #expect(try await a.revoke(issued.accessToken).status == 200)
            #expect(try await !a.isActive(issued.accessToken))
            let logout = try await c.admin("POST", "/admin/users/\(bob)/logout")
            #expect(logout.status == 200, "\(logout.summary)")
            #expect(try await !c.isActive(loggedOut.accessToken))

            // The others hold them once they restart: both are in the database.
            let b2 = try await fleet.restart(b)
            let c2 = try await fleet.restart(c)
            let a2 = try await fleet.restart(a)
            for node in [a2, b2, c2] {
                #expect(try await !node.isActive(issued.accessToken), "\(node.name): a's revocation is lost")
                #expect(try await !node.isActive(loggedOut.accessToken), "\(node.name): c's sign-out is lost")
                #expect(try await node.isActive(kept.accessToken), "\(node.name): an unrevoked token went inactive")
            }
            // A token issued after the sign-out is not covered by it.
            let after = try await b2.issue(sub: bob)
            #expect(try await a2.isActive(after.accessToken))
        }
    }

    @Test(
        "32 concurrent refreshes of one token over three nodes: one successor, the same pair on retries from any node, reuse on another node ends the family"
    )
    func concurrentRefreshAcrossNodes() async throws {
        // A grace window no slow machine outlasts; the reuse is then shown on a node restarted
        // without one.
        try await withFleet("refresh", environment: ["TOKEND_REFRESH_GRACE": "60s"]) { fleet, nodes in
            let (a, b) = (nodes[0], nodes[1])
            let start = try await a.issue(sub: "fleet-frank", scope: "read write", refresh: true)
            let r0 = try #require(start.refreshToken)
            let request = refreshGrantRequest(r0)
            let results = try await concurrently((0..<32).map { (nodes[$0 % 3].apiSocket, request) })
            let (responses, failures) = repliesAndFailures(results)
            #expect(failures.isEmpty, "transport failures: \(failures.prefix(3))")
            let statuses = Dictionary(grouping: responses, by: \.status).mapValues(\.count)
            #expect(statuses == [200: 32], "every use inside the grace window gets the successor pair; got \(statuses)")
            for (index, result) in results.enumerated() {
                if case .success(let reply) = result, reply.status != 200 {
                    Issue.record("node \(nodes[index % 3].name) answered \(reply.summary)")
                }
            }
            let pairs = Set(responses.filter { $0.status == 200 }.compactMap(TokenResponse.init))
            #expect(pairs.count == 1, "\(pairs.count) different successor pairs: the family forked")
            let successor = try #require(pairs.first)
            let r1 = try #require(successor.refreshToken)
            let rotated = r1 != r0 && successor.accessToken != start.accessToken
            #expect(rotated, "the successor pair must be new tokens")

            // Retries inside the grace window, on any node: the same pair.
            for node in nodes {
                let retry = try await node.refresh(r0)
                #expect(retry.status == 200, "\(node.name): \(retry.summary)")
                let same = TokenResponse(retry) == successor
                #expect(same, "\(node.name) answered a retry inside the grace window with another pair")
                #expect(try await node.isActive(successor.accessToken), "\(node.name)")
            }

            // The client goes on, on b: R1 → (A2, R2).
            let second = try await b.refresh(r1)
            #expect(second.status == 200, "\(second.summary)")
            let newest = try #require(TokenResponse(second))
            let r2 = try #require(newest.refreshToken)

            // R0 shows up on c, now without a grace window: reuse. The family ends in the database.
            #expect(await nodes[2].stop() == .exited(0))
            let c = try await fleet.start(nodes[2].name, environment: ["TOKEND_REFRESH_GRACE": "0s"])
            let reuse = try await c.refresh(r0)
            #expect(reuse.status == 400, "\(reuse.summary)")
            #expect(reuse.string("error") == "invalid_grant", "\(reuse.summary)")
            #expect(try await !c.isActive(newest.accessToken), "the node that saw the reuse revokes the family")
            #expect(try await !c.isActive(successor.accessToken))
            // The family's newest refresh token is refused on every node: the end is in the database.
            for node in [a, b, c] {
                let refused = try await node.refresh(r2)
                #expect(refused.status == 400, "\(node.name): \(refused.summary)")
                #expect(refused.string("error") == "invalid_grant", "\(node.name): \(refused.summary)")
            }
            // And a node that restarts holds the family's access tokens inactive.
            let a2 = try await fleet.restart(a)
            #expect(try await !a2.isActive(newest.accessToken), "the family's end is not in the database")
        }
    }

    @Test("two nodes rotating at once make one rotation; after SIGHUP all three serve one identical JWKS")
    func oneRotation() async throws {
        let maxAge = 2
        try await withFleet("rotate", environment: ["TOKEND_JWKS_MAX_AGE": "\(maxAge)s"]) { fleet, nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            let before = try await a.keyStates()
            #expect(before.kid(in: "current") != nil && before.kid(in: "next") != nil, "\(before)")
            let jwksBefore = try await a.jwks()
            for node in [b, c] { #expect(try await node.keyStates() == before, "\(node.name) holds another keyring") }

            // Once the next key has been published for the max-age, a and b rotate at once;
            // then, once the new next key is old enough, all three at once. Published means by
            // every node, as its heartbeat (every second) says: the max-age counts from the
            // heartbeat that first names the key, up to a second after the node loaded it.
            var expected = before
            for (round, rotating) in [[a, b], nodes].enumerated() {
                let outgoing = try #require(expected.kid(in: "current"))
                let incoming = try #require(expected.kid(in: "next"))
                try await Task.sleep(for: .seconds(maxAge) + .milliseconds(1500))
                let rotate = requestBytes("POST", "/admin/keys/rotate", body: .json("{}"))
                let results = try await concurrently(rotating.map { ($0.adminSocket, rotate) })
                let replies = try results.map { try $0.get() }
                #expect(replies.filter { $0.status == 200 }.count == 1, "round \(round): \(replies.map(\.summary))")
                for reply in replies where reply.status != 200 {
                    // The others find a fresh next key, too young to promote: refused, not a 500.
                    #expect((400..<500).contains(reply.status), "round \(round): \(reply.summary)")
                }

                // SIGHUP: every node rereads the keyring from the database.
                for node in nodes { node.send(SIGHUP) }
                let states = try await eventually("every node to load round \(round)'s keyring", timeout: .seconds(20))
                {
                    () async throws -> [[String: String]]? in
                    var all: [[String: String]] = []
                    for node in nodes { all.append(try await node.keyStates()) }
                    let rotated = all.allSatisfy { $0[incoming] == "current" && $0[outgoing] == "previous" }
                    return rotated ? all : nil
                }
                let newNext = try #require(states[0].kid(in: "next"))
                #expect(
                    Set(states[0].keys) == Set(expected.keys).union([newNext]),
                    "round \(round): one rotation adds one key: \(states[0])"
                )
                #expect(states[1] == states[0] && states[2] == states[0], "different keyrings: \(states)")
                expected = states[0]

                // One JWKS, byte for byte and by ETag, on every node.
                let served = try await a.api("GET", "/.well-known/jwks.json")
                for node in [b, c] {
                    let other = try await node.api("GET", "/.well-known/jwks.json")
                    #expect(other.text == served.text, "\(node.name) serves another JWKS after reload")
                    #expect(other.header("ETag") == served.header("ETag"), "\(node.name)'s ETag differs")
                }
                #expect(served.text != jwksBefore)
                #expect(try await a.publishedKids() == Set(expected.filter { $0.value != "retired" }.keys))
            }
            let next = try #require(expected.kid(in: "current"))

            // Every node signs with the new current key, and the others accept it.
            for node in nodes {
                let token = try await node.issue(sub: "after-rotation-\(node.name)")
                #expect(token.accessToken.kid == next, "\(node.name) signs with \(token.accessToken.kid ?? "?")")
                for other in nodes { #expect(try await other.isActive(token.accessToken)) }
            }
            _ = fleet
        }
    }

    @Test("kill -9 of a node after its acknowledgements loses nothing: a fresh node has every one")
    func killNineLosesNothing() async throws {
        try await withFleet("kill9", environment: ["TOKEND_REFRESH_GRACE": "0s"]) { fleet, nodes in
            let (a, b) = (nodes[0], nodes[1])
            let revoked = try await b.issue(sub: "k9-revoked")
            let user = try await b.createUser("k9-signed-out")
            let signedOut = try await b.issue(sub: user)
            let family = try await b.issue(sub: "k9-family", refresh: true)
            let kept = try await b.issue(sub: "k9-kept")

            // a acknowledges a revocation, a sign-out, a refresh rotation and an emergency key
            // rotation…
            #expect(try await a.revoke(revoked.accessToken).status == 200)
            #expect(try await a.admin("POST", "/admin/users/\(user)/logout").status == 200)
            let rotation = try await a.refresh(try #require(family.refreshToken))
            #expect(rotation.status == 200, "\(rotation.summary)")
            let successor = try #require(TokenResponse(rotation))
            let keysBefore = try await a.keyStates()
            let rotate = try await a.admin("POST", "/admin/keys/rotate", json: #"{"force":true}"#)
            #expect(rotate.status == 200, "\(rotate.summary)")
            let newCurrent = try #require(keysBefore.kid(in: "next"))
            let signedAfter = try await a.issue(sub: "k9-after-rotation")
            #expect(signedAfter.accessToken.kid == newCurrent)
            // …and dies at once.
            try await a.kill9()

            let fresh = try await fleet.start("fresh")
            #expect(try await !fresh.isActive(revoked.accessToken), "the acknowledged revocation is lost")
            #expect(try await !fresh.isActive(signedOut.accessToken), "the acknowledged sign-out is lost")
            #expect(try await fresh.isActive(kept.accessToken))
            let states = try await fresh.keyStates()
            #expect(states[newCurrent] == "current", "the acknowledged key rotation is lost: \(states)")
            #expect(try await fresh.isActive(signedAfter.accessToken), "a token of the rotated-in key")
            #expect(try await fresh.issue(sub: "k9-fresh").accessToken.kid == newCurrent)
            // The rotation spent the first refresh token: using it again is reuse; the successor
            // was acknowledged, so it exists (and reuse then ends its family).
            #expect(try await fresh.isActive(successor.accessToken))
            let reuse = try await fresh.refresh(try #require(family.refreshToken))
            #expect(reuse.string("error") == "invalid_grant", "the spent refresh token was not spent: \(reuse.summary)")
            #expect(try await !fresh.isActive(successor.accessToken), "reuse ends the acknowledged successor's family")
        }
    }

    /// Seed 002's sign-up limits, counted over the fleet: attempts spread over the nodes are
    /// one count, as on one node (AccountAPITests/RateLimitTests.swift): the counts are kept
    /// in the database (`rate_windows`).
    @Test("sign-up limits per email and per address hold when the attempts alternate between nodes")
    func signupLimitsAcrossNodes() async throws {
        let environment = [
            "USER_SIGNUP_RATE_LIMIT_EMAIL": "2", "USER_SIGNUP_RATE_LIMIT_IP": "3",
            "TOKEND_TRUSTED_PROXIES": "uid:\(getuid())",
        ]
        let tooManyForEmail = "Too many signup attempts for this email address. Please try again later."
        let tooManyFromIP = "Too many signup attempts from your IP address. Please try again later."
        try await withFleet("signup", environment: environment) { _, nodes in
            let (a, b, c) = (nodes[0], nodes[1], nodes[2])
            func signUp(_ node: Tokend, _ username: String, _ email: String, ip: String) async throws -> Reply {
                try await node.api(
                    "POST",
                    "/user",
                    json: jsonText([
                        "username": .string(username), "email": .string(email), "password": "signup-password",
                    ]),
                    headers: [("X-Real-IP", ip)]
                )
            }
            let ip = "198.51.100.11"
            #expect(try await signUp(a, "fu1", "fe1@example.com", ip: ip).status == 200)
            // The second attempt for fe1, on b (taken: 409), counts for the email everywhere.
            #expect(try await signUp(b, "fu1", "fe1@example.com", ip: ip).status == 409)
            // The third, on c: over the email limit.
            let byEmail = try await signUp(c, "fu1c", "fe1@example.com", ip: ip)
            #expect(byEmail.status == 429, "c did not count a's and b's attempts: \(byEmail.summary)")
            #expect(byEmail.string("error") == tooManyForEmail, "\(byEmail.summary)")
            #expect(byEmail.header("Retry-After") != nil)
            // From another address, on a: still over the email limit.
            let elsewhere = try await signUp(a, "fu1d", "fe1@example.com", ip: "192.0.2.61")
            #expect(elsewhere.status == 429, "\(elsewhere.summary)")

            // The address has made 2 counted attempts (a, b; c's was refused by the email
            // limit first): one more is allowed, on c, then the limit holds on a.
            #expect(try await signUp(c, "fu2", "fe2@example.com", ip: ip).status == 200)
            let byIP = try await signUp(a, "fu3", "fe3@example.com", ip: ip)
            #expect(byIP.status == 429, "a did not count b's and c's attempts: \(byIP.summary)")
            #expect(byIP.string("error") == tooManyFromIP, "\(byIP.summary)")
            let onB = try await signUp(b, "fu4", "fe4@example.com", ip: ip)
            #expect(onB.status == 429, "\(onB.summary)")
        }
    }
}
