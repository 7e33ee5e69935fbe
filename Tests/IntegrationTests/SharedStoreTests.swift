import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Two tokend processes over one store (the way to DESIGN §10's fleet): each with its own
/// sockets, NOTIFY_SOCKET and log, both on one SQLite file (WAL) and one key directory.
@Suite("Two daemons over one SQLite store")
struct SharedStoreTests {
    @Test("A token daemon A issues is active on daemon B; a refresh token spent on B is reuse on A")
    func twoDaemonsOneStore() async throws {
        let sandbox = try Sandbox("shared")
        defer { sandbox.remove() }
        // No grace window: any second use of a spent refresh token is reuse.
        let environment = ["TOKEND_REFRESH_GRACE": "0s"]
        // A first: it creates the store and the signing keys, which B then loads.
        let a = try await Tokend.start(sandbox, name: "a", environment: environment, notify: true)
        defer { a.send(SIGKILL) }
        let b = try await Tokend.start(sandbox, name: "b", environment: environment, notify: true)
        defer { b.send(SIGKILL) }
        #expect(a.pid != b.pid)
        #expect(a.apiSocket != b.apiSocket && a.adminSocket != b.adminSocket)
        for daemon in [a, b] {
            let (_, ready) = try await #require(daemon.notify).waitFor("READY=1 from \(daemon.name)") {
                $0["READY"] == "1"
            }
            #expect(ready.senderPID == daemon.pid, "each daemon's READY=1 arrives on its own NOTIFY_SOCKET")
        }

        // B verifies what A signed: the same key directory.
        let issued = try await a.issue(sub: "shared-alice", scope: "read", refresh: true)
        let onB = try await b.introspect(issued.accessToken)
        #expect(onB.json?["active"]?.boolValue == true, "\(onB.summary)")
        #expect(onB.json?["sub"]?.stringValue == "shared-alice")

        // The refresh token is spent on B; A reads the same store, so using it again there is reuse.
        let spent = try #require(issued.refreshToken)
        let rotation = try await b.refresh(spent)
        #expect(rotation.status == 200, "\(rotation.summary)")
        let successor = try #require(TokenResponse(rotation))
        #expect(try await a.isActive(successor.accessToken))
        let reuse = try await a.refresh(spent)
        #expect(reuse.status == 400)
        #expect(reuse.string("error") == "invalid_grant", "\(reuse.summary)")
        #expect(try await !a.isActive(successor.accessToken), "the daemon that saw the reuse revokes the family")
        // The reuse ended the family in the store: B refuses its newest refresh token too.
        let afterReuse = try await b.refresh(try #require(successor.refreshToken))
        #expect(afterReuse.string("error") == "invalid_grant", "\(afterReuse.summary)")

        // Each stops on its own pid, cleanly, and each log tells of its own sockets only.
        #expect(await b.stop() == .exited(0))
        let health = try await http(a.apiSocket, "GET", "/healthz")
        #expect(health.status == 200, "A keeps serving once B has stopped")
        #expect(await a.stop() == .exited(0))
        #expect(a.log.contains(a.apiSocket) && !a.log.contains(b.apiSocket), "\(a.log.lastLines(5))")
        #expect(b.log.contains(b.apiSocket) && !b.log.contains(a.apiSocket), "\(b.log.lastLines(5))")
    }
}
