import CodedErrors
import Foundation
import PostgresStore
import Testing
import TokenStore
import TokenTestSupport

/// What only the PostgreSQL store has to do: several stores (nodes) on one database, the
/// migration race, retries the database asks for, and a server that goes away and comes back.
/// The contracts it shares with the other stores are tested with them (`StoreKind.postgres`).
@Suite("PostgresTokenStore: several nodes, migrations, retries and outages", .timeLimit(.minutes(5)))
struct PostgresStoreTests {
    let now = StoreFixtures.now

    static func open(_ url: String, timeout: Duration = .seconds(30)) async throws -> PostgresTokenStore {
        try await PostgresTokenStore.open(
            location: try PostgresLocation(parsing: url),
            password: nil,
            logger: StoreFixtures.quietLogger,
            operationTimeout: timeout,
            maximumConnections: 4
        )
    }

    @Test("32 concurrent uses of one refresh token spread over three nodes: exactly one rotation")
    func concurrentRotationAcrossNodes() async throws {
        let url = try await SharedPostgresCluster.freshDatabase()
        let nodes = [try await Self.open(url), try await Self.open(url), try await Self.open(url)]
        let first = StoreFixtures.activeToken("rt-0")
        try await nodes[0].createRefreshFamily(StoreFixtures.family(), firstToken: first)
        let now = now
        let uses = try await withThrowingTaskGroup(of: RefreshRotationTests.Use.self) { group in
            for index in 0..<32 {
                let node = nodes[index % 3]
                group.addTask {
                    try await node.updateRefreshToken(hash: first.hash, now: now + 1) { token, family in
                        RefreshRotationTests.rotateIfActive(
                            token,
                            family,
                            next: "rt-\(index + 1)",
                            at: now + 1,
                            jti: "jti-\(index)"
                        )
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(uses.filter { $0 == .rotated }.count == 1)
        #expect(uses.filter { $0 == .sawSpent }.count == 31)
        let rotations = try await nodes[2].allEvents().filter { $0.kind == TokenEvent.Kind.refreshRotated }
        #expect(rotations.count == 1)
        let spent = try await nodes[1].peek(first.hash)
        #expect(spent.token?.state == .spent)
        let successor = try #require(spent.token?.successorHash)
        #expect(try await nodes[0].peek(successor).token?.state == .active)
        for node in nodes { try await node.close() }
    }

    @Test("three nodes opening a new database at once migrate it once, and all of them work")
    func migrationRace() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let name = "race_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let url = try await cluster.createDatabase(name)
        let nodes = try await withThrowingTaskGroup(of: PostgresTokenStore.self) { group in
            for _ in 0..<3 { group.addTask { try await Self.open(url) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let versions = try await cluster.psql(
            "SELECT count(*), max(version) FROM tokend.schema_migrations",
            database: name
        )
        #expect(versions.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "5|5", "\(versions)")
        for (index, node) in nodes.enumerated() {
            try await node.revokeKey(kid: "k\(index)", at: now, reason: "test")
        }
        #expect(try await nodes[0].loadRevocations(now: now).revokedKeys == ["k0", "k1", "k2"])
        for node in nodes { try await node.close() }
    }

    @Test("a database migrated by a newer tokend is refused, naming the version found")
    func newerSchemaRefused() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let name = "newer_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let url = try await cluster.createDatabase(name)
        try await Self.open(url).close()
        let bumped = try await cluster.psql(
            "INSERT INTO tokend.schema_migrations (version, name) VALUES (999, 'from the future')",
            database: name
        )
        #expect(bumped.succeeded, "\(bumped)")
        let error = await #expect(throws: TokenStoreError.self) { try await Self.open(url) }
        #expect(error?.code == .schema)
        #expect(error?.reason.contains("version 999") == true, "\(String(describing: error))")
    }

    @Test("serialization failures and deadlocks are retried inside the store: the write lands once")
    func retriesWhatTheDatabaseAsksFor() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let name = "retry_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let url = try await cluster.createDatabase(name)
        let store = try await Self.open(url)
        // A trigger that fails the first four event inserts, alternating 40001 and 40P01; the
        // sequence it counts with is not rolled back with them.
        let rigged = try await cluster.psql(
            """
            CREATE SEQUENCE tokend.failures;
            CREATE FUNCTION tokend.fail_first_four() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE n bigint := nextval('tokend.failures');
            BEGIN
                IF n <= 4 THEN
                    RAISE EXCEPTION 'forced' USING ERRCODE = CASE WHEN n % 2 = 1 THEN '40001' ELSE '40P01' END;
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER fail_first_four BEFORE INSERT ON tokend.events
                FOR EACH ROW EXECUTE FUNCTION tokend.fail_first_four();
            """,
            database: name
        )
        #expect(rigged.succeeded, "\(rigged)")
        try await store.revokeAccessToken(jti: "j1", subject: "s", expiresAt: now + 60, at: now, reason: "r")
        let events = try await store.allEvents()
        #expect(events.map(\.kind) == [TokenEvent.Kind.revokeAccess])
        #expect(try await store.loadRevocations(now: now).revokedAccessTokens == ["j1": now + 60])
        let attempts = try await cluster.psql("SELECT last_value FROM tokend.failures", database: name)
        #expect(attempts.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "5", "\(attempts)")
        try await store.close()
    }

    @Test("connections the server ends (pg_terminate_backend) are replaced: the next write works")
    func terminatedConnections() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let name = "terminated_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let url = try await cluster.createDatabase(name)
        let store = try await Self.open(url)
        try await store.revokeKey(kid: "before", at: now, reason: "r")
        let terminated = try await cluster.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '\(name)' AND pid <> pg_backend_pid()"
        )
        #expect(terminated.succeeded, "\(terminated)")
        try await store.revokeKey(kid: "after", at: now, reason: "r")
        #expect(try await store.loadRevocations(now: now).revokedKeys == ["before", "after"])
        try await store.close()
    }

    @Test("a one-step rotation waiting for a locked family gives up inside the store's deadline and commits nothing")
    func rotationLockWaitIsBounded() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let database = "lockwait_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let url = try await cluster.createDatabase(database)
        // Lock waits of a rotation end at half the store's deadline (1 s here).
        let store = try await Self.open(url, timeout: .seconds(2))
        let directory = try TemporaryDirectory(prefix: "tokend-lockwait")
        defer { directory.remove() }
        let first = StoreFixtures.activeToken("rt-0")
        try await store.createRefreshFamily(StoreFixtures.family(), firstToken: first)
        let locker = try PostgresFollowingTests.Session(
            "locker",
            cluster: cluster,
            database: database,
            in: directory.path,
            steps: ["BEGIN; SELECT id FROM tokend.refresh_families WHERE id = 'fam-1' FOR UPDATE;", "COMMIT;"]
        )
        locker.go(0)
        try await PostgresFollowingTests.waitHoldingTransaction(locker, cluster, database: database)
        let rotation = ConditionalRotationTests.rotation(to: "rt-1", at: now + 5, jti: "jti-1")
        await #expect(throws: (any Error).self, "the family stays locked past the rotation's lock wait") {
            try await store.rotateIfCurrent(rotation)
        }
        // The lock goes only now: a CALL still waiting for it (its caller long answered)
        // would commit the rotation here.
        locker.go(1)
        await PostgresFollowingTests.finish(locker)
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await store.peek(first.hash).token?.state == .active, "nothing rotated after the answer")
        #expect(try await store.allEvents().map(\.kind) == ["family_created"])
        try await store.close()
    }

    @Test("a stopped server: operations answer unavailable within the deadline, health says why; then it recovers")
    func outageAndRecovery() async throws {
        try await withPostgresCluster { cluster in
            let url = try await cluster.createDatabase("outage")
            // A long deadline: what ends the write below early is the store knowing PostgreSQL
            // is down, not the deadline.
            let store = try await Self.open(url, timeout: .seconds(30))
            try await store.revokeKey(kid: "before", at: now, reason: "r")
            try await cluster.stopServer()

            let health = await store.health()
            #expect(health.reads?.contains("cannot reach PostgreSQL") == true, "\(health)")
            #expect(health.writes != nil)
            // Known to be down: a write fails within about a second (plus the 1 s grace an
            // abandoned body gets), far inside the 30 s deadline.
            let started = ContinuousClock.now
            let error = await #expect(throws: TokenStoreError.self) {
                try await store.revokeKey(kid: "during", at: now, reason: "r")
            }
            #expect(error?.code == .unavailable)
            #expect(ContinuousClock.now - started < .seconds(15), "a write while down fails fast, not at 30 s")
            await #expect(throws: TokenStoreError.self) { _ = try await store.refreshFamily(id: "x") }

            try await cluster.startServer()
            var recovered = false
            for _ in 0..<100 where !recovered {
                recovered = (try? await store.revokeKey(kid: "after", at: now, reason: "r")) != nil
                if !recovered { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(recovered, "the store reconnects by itself")
            #expect(await store.health() == StoreHealth())
            let keys = try await store.loadRevocations(now: now).revokedKeys
            #expect(keys == ["before", "after"], "the refused write is not there; the others are")
            try await store.close()
        }
    }

    @Test("rate windows are shared: attempts on two nodes count in one window, exactly the limit of them")
    func sharedRateWindows() async throws {
        let url = try await SharedPostgresCluster.freshDatabase()
        let a = try await Self.open(url)
        let b = try await Self.open(url)
        let now = now
        // 20 concurrent attempts over both nodes, limit 5 per 60 s: exactly 5 allowed.
        let waits = try await withThrowingTaskGroup(of: Double?.self) { group in
            for index in 0..<20 {
                let node = index % 2 == 0 ? a : b
                group.addTask {
                    try await node.take(rule: "signin_account", key: "alice", limit: 5, window: 60, now: now + 1)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(waits.filter { $0 == nil }.count == 5)
        #expect(waits.compactMap { $0 }.allSatisfy { $0 == 60 }, "refused until the window that opened at now+1 ends")
        // Another key and another rule have windows of their own.
        #expect(try await a.take(rule: "signin_account", key: "bob", limit: 5, window: 60, now: now + 2) == nil)
        #expect(try await a.take(rule: "signup_email", key: "alice", limit: 5, window: 60, now: now + 2) == nil)
        // A refund on either node gives one attempt back, however many were refused meanwhile.
        try await b.refund(rule: "signin_account", key: "alice", limit: 5, window: 60, takenAt: now + 1)
        #expect(try await a.take(rule: "signin_account", key: "alice", limit: 5, window: 60, now: now + 3) == nil)
        #expect(try await b.take(rule: "signin_account", key: "alice", limit: 5, window: 60, now: now + 3) == 58)
        // The window ends 60 s after its first attempt: then a new one opens.
        #expect(try await b.take(rule: "signin_account", key: "alice", limit: 5, window: 60, now: now + 61) == nil)
        // Ended windows go with compaction.
        _ = try await a.compact(now: now + 200)
        let cluster = try await SharedPostgresCluster.cluster()
        let database = try #require(url.split(separator: "@/").last?.split(separator: "?").first.map(String.init))
        let left = try await cluster.psql("SELECT count(*) FROM tokend.rate_windows", database: database)
        #expect(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(left)")
        try await a.close()
        try await b.close()
    }

    @Test(
        "TLS over TCP: verify-full trusts only the CA given and the name it signed; require encrypts; disable is refused"
    )
    func tlsModes() async throws {
        let cluster = try await PostgresCluster.start(tls: true)
        do {
            _ = try await cluster.createDatabase("tls")
            let port = try #require(cluster.tcpPort)
            let base = "postgres://tokend@localhost:\(port)/tls"

            let verified = try await Self.open("\(base)?sslmode=verify-full&sslrootcert=\(cluster.caFile)")
            try await verified.revokeKey(kid: "over-tls", at: now, reason: "r")
            let encrypted = try await cluster.psql(
                "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND datname = 'tls'"
            )
            #expect((Int(encrypted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 1, "\(encrypted)")
            try await verified.close()

            let unverified = try await Self.open("\(base)?sslmode=require")
            #expect(try await unverified.loadRevocations(now: now).revokedKeys == ["over-tls"])
            try await unverified.close()

            for (refused, because) in [
                // No name to check (an IP address): refused rather than trusted.
                (
                    "postgres://tokend@127.0.0.1:\(port)/tls?sslmode=verify-full&sslrootcert=\(cluster.caFile)",
                    "failedToValidateHostname"
                ),
                // The system's CAs never signed the test CA.
                ("\(base)?sslmode=verify-full", "CERTIFICATE_VERIFY_FAILED"),
                // The server takes TCP with TLS only.
                ("\(base)?sslmode=disable", "SQLSTATE 28000"),
            ] {
                let error = await #expect(throws: TokenStoreError.self, "\(refused)") { try await Self.open(refused) }
                #expect(error?.code == .unavailable, "\(refused): \(String(describing: error))")
                #expect(error?.reason.contains(because) == true, "\(refused): \(String(describing: error))")
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
