import Foundation
import Testing
import TokenStore
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// tokend under a stand-in for systemd's NOTIFY_SOCKET (DESIGN §6): READY=1 only once the
/// sockets accept, STATUS=, RELOADING=1…READY=1 around SIGHUP, WATCHDOG=1, and STOPPING=1 then a
/// drained, clean exit on SIGTERM.
@Suite("sd_notify protocol of the real daemon")
struct NotifyTests {
    /// Starts tokend in a fresh sandbox with NOTIFY_SOCKET pointing at a listener of its own,
    /// without waiting, runs `body`, then stops tokend (by pid) and expects a clean exit. On a
    /// failure its log is recorded.
    private func withNotifiedTokend(
        _ name: String,
        environment: [String: String] = [:],
        _ body: (Tokend, NotifyListener) async throws -> Void
    ) async throws {
        let sandbox = try Sandbox(name)
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox, environment: environment, notify: true, waitUntilServing: false)
        do {
            try await body(daemon, try #require(daemon.notify))
        } catch {
            Issue.record("tokend log:\n\(daemon.log.lastLines(30).redactingSecrets)")
            await daemon.stop()
            throw error
        }
        #expect(await daemon.stop() == .exited(0))
    }

    @Test("READY=1 comes from tokend's own pid once both sockets accept, with a STATUS= line")
    func readyAfterSocketsAccept() async throws {
        try await withNotifiedTokend("notify") { daemon, listener in
            let (_, ready) = try await listener.waitFor("READY=1") { $0["READY"] == "1" }
            // No retry: at the moment READY=1 arrives, both sockets must already accept and answer.
            let health = try await http(daemon.apiSocket, "GET", "/healthz", timeout: 5)
            let status = try await http(daemon.adminSocket, "GET", "/admin/status", timeout: 5)
            #expect(health.status == 200)
            #expect(status.status == 200)
            #expect(ready.senderPID == daemon.pid, "READY=1 must come from the main pid (NotifyAccess=main)")
            let statusLine = listener.messages.compactMap { $0["STATUS"] }.first
            #expect(statusLine?.isEmpty == false, "tokend sends a STATUS= summary")
            #expect(!listener.messages.contains { $0["WATCHDOG"] != nil }, "no WATCHDOG=1 without WATCHDOG_USEC")
            #expect(!listener.messages.contains { $0["STOPPING"] != nil })
            #expect(!listener.messages.contains { $0["EXTEND_TIMEOUT_USEC"] != nil }, "a new database migrates at once")
        }
    }

    @Test(
        "a database of an older schema: STATUS= says it migrates and EXTEND_TIMEOUT_USEC= asks for time, then READY=1"
    )
    func migrationAsksForTime() async throws {
        let sandbox = try Sandbox("notify-migrate")
        defer { sandbox.remove() }
        // A database as the binaries before v4 left it.
        let old = try await SQLiteTokenStore.openForTesting(
            path: sandbox.storePath,
            logger: StoreFixtures.quietLogger,
            upTo: "v3-user-identifiers"
        )
        try await old.close()
        let daemon = try await Tokend.start(sandbox, notify: true, waitUntilServing: false)
        do {
            let listener = try #require(daemon.notify)
            let (extendIndex, extend) = try await listener.waitFor("EXTEND_TIMEOUT_USEC=") {
                $0["EXTEND_TIMEOUT_USEC"] != nil
            }
            #expect(extend["EXTEND_TIMEOUT_USEC"] == "30000000", "\(extend)")
            let status = listener.messages.compactMap { $0["STATUS"] }
            #expect(
                status.first == "migrating the token database to v5-refresh-keys-in-issue-order",
                "\(status)"
            )
            _ = try await listener.waitFor("READY=1 after the migration", after: extendIndex + 1) { $0["READY"] == "1" }
            #expect(daemon.log.contains("migrating the token database"))
            #expect(daemon.log.contains("migrated the token database"))
            let token = try await daemon.issue(sub: "after-migration")
            #expect(try await daemon.isActive(token.accessToken))
        } catch {
            Issue.record("tokend log:\n\(daemon.log.lastLines(30).redactingSecrets)")
            await daemon.stop()
            throw error
        }
        #expect(await daemon.stop() == .exited(0))
    }

    @Test("SIGTERM: STOPPING=1, the request in flight still gets its answer, exit code 0, socket files removed")
    func sigtermDrainsAndExitsCleanly() async throws {
        let sandbox = try Sandbox("drain")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(sandbox, notify: true, waitUntilServing: false)
        let listener = try #require(daemon.notify)
        defer { daemon.send(SIGKILL) }
        _ = try await listener.waitFor("READY=1") { $0["READY"] == "1" }

        // A keep-alive connection whose first request has been answered (so tokend has surely
        // accepted it), then a second request cut off halfway through its body.
        let api = daemon.apiSocket
        let body = Array("token=not-a-real-token&token_type_hint=access_token".utf8)
        let half = body.count / 2
        let connection = try await onThread {
            let connection = try UnixConnection(path: api, timeout: 10)
            try connection.send(requestBytes("GET", "/healthz", keepAlive: true))
            let first = try connection.readResponse()
            guard first.status == 200 else { throw HarnessError("GET /healthz answered \(first.status)") }
            try connection.send(
                requestBytes(
                    "POST",
                    "/oauth2/introspect",
                    body: .raw(contentType: "application/x-www-form-urlencoded", body),
                    keepAlive: true
                ).dropLast(body.count - half).map { $0 }
            )
            return SendableBox(connection)
        }

        let clock = ContinuousClock()
        let signalled = clock.now
        daemon.send(SIGTERM)
        let (_, stopping) = try await listener.waitFor("STOPPING=1", timeout: .seconds(3)) { $0["STOPPING"] == "1" }
        #expect(stopping.senderPID == daemon.pid)

        // Once stopping, tokend stops accepting new connections promptly (the old one stays open).
        let refused = try? await eventually("new connections to be refused", timeout: .seconds(10)) {
            () async throws -> Bool? in
            try await onThread {
                do {
                    _ = try UnixConnection(path: api, timeout: 1)
                    return nil
                } catch is UnixConnection.ConnectFailed {
                    return true
                }
            }
        }
        #expect(refused == true, "tokend still accepts new connections 10 s after SIGTERM")
        let acceptingFor = clock.now - signalled
        #expect(
            acceptingFor < .seconds(2),
            "tokend kept accepting new connections for \(acceptingFor) after SIGTERM"
        )

        // The request in flight is finished, not dropped.
        let answer: Result<Reply, any Error> = await Result(catching: {
            try await onThread {
                try connection.value.send(Array(body[half...]))
                return try connection.value.readResponse()
            }
        })
        switch answer {
        case .success(let response):
            #expect(response.status == 200)
            #expect(response.text == #"{"active":false}"#)
        case .failure(let error):
            Issue.record(
                "the request in flight at SIGTERM got no answer: \(error); tokend's log:\n\(daemon.log.lastLines(15).redactingSecrets)"
            )
        }
        connection.value.close()

        let exit = await daemon.child.waitForExit(timeout: Timeouts.stop)
        #expect(exit == .exited(0), "tokend's log:\n\(daemon.log.lastLines(15).redactingSecrets)")
        #expect(!FileManager.default.fileExists(atPath: daemon.apiSocket), "the API socket file is left behind")
        #expect(!FileManager.default.fileExists(atPath: daemon.adminSocket), "the admin socket file is left behind")
        await daemon.stop()
    }

    @Test("SIGHUP: RELOADING=1 with MONOTONIC_USEC=, then READY=1 again, and tokend keeps serving")
    func sighupReloads() async throws {
        try await withNotifiedTokend("reload") { daemon, listener in
            let (readyIndex, _) = try await listener.waitFor("READY=1") { $0["READY"] == "1" }
            try await daemon.waitUntilServing()
            daemon.send(SIGHUP)
            let (reloadingIndex, reloading) = try await listener.waitFor("RELOADING=1", after: readyIndex + 1) {
                $0["RELOADING"] == "1"
            }
            #expect(reloading["MONOTONIC_USEC"].flatMap { UInt64($0) } != nil, "RELOADING=1 carries MONOTONIC_USEC=")
            let (_, readyAgain) = try await listener.waitFor("READY=1 after RELOADING=1", after: reloadingIndex + 1) {
                $0["READY"] == "1"
            }
            #expect(readyAgain.senderPID == daemon.pid)
            let health = try await http(daemon.apiSocket, "GET", "/healthz")
            #expect(health.status == 200)
            #expect(daemon.child.isRunning)
        }
    }

    @Test("WATCHDOG_USEC=2000000: WATCHDOG=1 arrives about every second, well inside the 2 s period")
    func watchdogPings() async throws {
        try await withNotifiedTokend("watchdog", environment: ["WATCHDOG_USEC": "2000000"]) { daemon, listener in
            let (readyIndex, _) = try await listener.waitFor("READY=1") { $0["READY"] == "1" }
            var pings: [NotifyMessage] = []
            var after = readyIndex
            while pings.count < 3 {
                let (index, ping) = try await listener.waitFor(
                    "WATCHDOG=1 #\(pings.count + 1)",
                    after: after,
                    timeout: .seconds(5)
                ) {
                    $0["WATCHDOG"] == "1"
                }
                #expect(ping.senderPID == daemon.pid)
                pings.append(ping)
                after = index + 1
            }
            // systemd kills a service that lets WATCHDOG_USEC pass without a ping. tokend
            // pings every half period, so even a loaded machine keeps each gap below it.
            // Measured between pings, not from READY=1, so start-up time does not count.
            for (earlier, later) in zip(pings, pings.dropFirst()) {
                let gap = later.receivedAt - earlier.receivedAt
                #expect(gap < .seconds(2), "\(gap) between two WATCHDOG=1")
                #expect(gap > .milliseconds(200), "pings are paced, not sent in a burst: \(gap)")
            }
        }
    }

    @Test("A NOTIFY_SOCKET nobody listens on never stops tokend")
    func deadNotifySocketIsHarmless() async throws {
        let sandbox = try Sandbox("deadnotify")
        defer { sandbox.remove() }
        let daemon = try await Tokend.start(
            sandbox,
            environment: ["NOTIFY_SOCKET": sandbox.file("nobody.sock"), "WATCHDOG_USEC": "200000"]
        )
        let health = try await http(daemon.apiSocket, "GET", "/healthz")
        #expect(health.status == 200)
        daemon.send(SIGHUP)
        let again = try await http(daemon.apiSocket, "GET", "/healthz")
        #expect(again.status == 200)
        #expect(await daemon.stop() == .exited(0))
    }
}

/// Hands a non-Sendable value across one thread hop (used strictly sequentially).
final class SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
