import Foundation
import PostgresStore
import Testing
import TokenStore
import TokenTestSupport

/// Issue 12: the order a follower reads the event log in. Sequences are taken when a row is
/// inserted but become visible when their transaction commits, in another order; a follower
/// must never pass an event that commits later, and a transaction that stays open must hold
/// back only itself. Each test holds transactions open in psql sessions of their own (the
/// other connections) while the store reads.
@Suite("PostgresTokenStore: following the event log in commit-safe order", .timeLimit(.minutes(3)))
struct PostgresFollowingTests {
    /// A psql session that runs `steps` one after another, each once it is let go (`go`), and
    /// shows in `pg_stat_activity` as `name`.
    final class Session: Sendable {
        let name: String
        let process: ChildProcess
        let directory: String

        init(_ name: String, cluster: PostgresCluster, database: String, in directory: String, steps: [String]) throws {
            self.name = name
            self.directory = directory
            var script = "("
            for (index, step) in steps.enumerated() {
                script += " while [ ! -f \"\(directory)/\(name)-go\(index)\" ]; do sleep 0.05; done; echo \"\(step)\";"
            }
            script += " ) | \"$1\" -X -q -A -t -v ON_ERROR_STOP=1 -h \"$2\" -p \"$3\" -U tokend -d \"$4\""
            process = try ChildProcess(
                "/bin/sh",
                [
                    "-c", script, name, "\(try PostgresCluster.binaryDirectory())/psql", cluster.socketDirectory,
                    "\(cluster.tcpPort ?? 5432)", database,
                ],
                environment: minimalEnvironment(["PGAPPNAME": name]),
                stdout: "\(directory)/\(name).out",
                stderr: "\(directory)/\(name).out",
                name: name
            )
        }

        /// Lets step `index` run.
        func go(_ index: Int) {
            _ = FileManager.default.createFile(atPath: "\(directory)/\(name)-go\(index)", contents: nil)
        }

        var output: String { (try? String(contentsOfFile: "\(directory)/\(name).out", encoding: .utf8)) ?? "" }
    }

    static func insert(_ jti: String) -> String {
        "INSERT INTO tokend.events (at, kind, subject, detail) VALUES (1, 'revoke_access', NULL, 'jti=\(jti) exp=2 reason=test');"
    }

    /// Waits until session `name` holds a transaction id and sits idle inside its transaction:
    /// its statements so far have run, and it has not committed.
    static func waitHoldingTransaction(_ session: Session, _ cluster: PostgresCluster, database: String) async throws {
        _ = try await eventually("\(session.name) to hold its transaction open", timeout: .seconds(20)) {
            let result = try await cluster.psql(
                """
                SELECT count(*) FROM pg_stat_activity WHERE application_name = '\(session.name)'
                AND backend_xid IS NOT NULL AND state = 'idle in transaction'
                """,
                database: database
            )
            if !session.process.isRunning { throw HarnessError("\(session.name) ended: \(session.output)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1" ? true : nil
        }
    }

    static func jtis(_ read: FollowedEvents) -> [String] {
        read.events.map { String($0.event.detail.split(separator: " ")[0].dropFirst("jti=".count)) }
    }

    /// A fresh database, a store on it, a directory for the sessions, and the position to
    /// follow from; closes and removes them after `body`.
    static func withStore(
        _ body: (PostgresCluster, String, PostgresTokenStore, String, FollowPosition) async throws -> Void
    ) async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let database = "follow_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let url = try await cluster.createDatabase(database)
        let store = try await PostgresStoreTests.open(url)
        let directory = try TemporaryDirectory(prefix: "tokend-follow")
        defer { directory.remove() }
        do {
            let (_, start) = try await store.loadRevocationsToFollow(now: 0)
            try await body(cluster, database, store, directory.path, start)
            try await store.close()
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// The transaction id session `name` holds.
    static func transactionID(of session: Session, _ cluster: PostgresCluster, database: String) async throws -> Int64 {
        let result = try await cluster.psql(
            "SELECT backend_xid::text FROM pg_stat_activity WHERE application_name = '\(session.name)'",
            database: database
        )
        return try #require(Int64(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(result)")
    }

    static func finish(_ session: Session) async {
        _ = await session.process.waitForExit(timeout: .seconds(20))
        #expect(session.process.exitStatus == .exited(0), "\(session.name): \(session.output)")
    }

    @Test(
        "an event committed while an older transaction runs is read at once; the older one is held back, then read once when it commits"
    )
    func eventBehindAnOpenTransaction() async throws {
        try await Self.withStore { cluster, database, store, directory, start in
            let open = try Session(
                "held",
                cluster: cluster,
                database: database,
                in: directory,
                steps: ["BEGIN; " + Self.insert("held"), "COMMIT;"]
            )
            open.go(0)
            try await Self.waitHoldingTransaction(open, cluster, database: database)
            let held = try await Self.transactionID(of: open, cluster, database: database)
            // A later transaction, through the store: a higher sequence, committed first.
            try await store.revokeAccessToken(jti: "committed", subject: nil, expiresAt: 2, at: 1, reason: "test")
            let first = try await store.followedEvents(after: start, limit: 100)
            #expect(Self.jtis(first) == ["committed"], "\(first)")
            #expect(first.complete)
            #expect(first.inProgress.contains(held), "the snapshot lists the open transaction: \(first)")
            let position = start.advanced(by: first)
            #expect(position.high == first.events.last?.position)
            #expect(position.pending.contains(held), "it may still commit below the position: \(position)")
            #expect(position.covers(try #require(first.events.last?.position)))
            // Nothing new to read meanwhile: the committed event is not read again.
            #expect(try await store.followedEvents(after: position, limit: 100).events.isEmpty)

            open.go(1)
            await Self.finish(open)
            let second = try await store.followedEvents(after: position, limit: 100)
            #expect(Self.jtis(second) == ["held"], "\(second)")
            let caughtUp = position.advanced(by: second)
            #expect(!caughtUp.pending.contains(held), "\(caughtUp)")
            #expect(caughtUp.covers(try #require(second.events.first?.position)))
            #expect(caughtUp.high == position.high)

            // A page of one goes on from where the last one stopped.
            let page = try await store.followedEvents(after: start, limit: 1)
            #expect(Self.jtis(page) == ["held"] && !page.complete, "\(page)")
            let rest = try await store.followedEvents(after: start.advanced(by: page), limit: 1)
            #expect(Self.jtis(rest) == ["committed"], "\(rest)")
        }
    }

    @Test(
        "a transaction that took its id first but commits its event after a later one: the position never passes it, it is read once it commits"
    )
    func earlierTransactionCommitsLater() async throws {
        try await Self.withStore { cluster, database, store, directory, start in
            // `late` takes its transaction id first and holds it; `early` then inserts an event
            // (a higher id, a lower sequence) and holds; `late` inserts its event (a higher
            // sequence) and commits.
            let late = try Session(
                "late",
                cluster: cluster,
                database: database,
                in: directory,
                steps: ["BEGIN; SELECT pg_current_xact_id();", Self.insert("late") + " COMMIT;"]
            )
            let early = try Session(
                "early",
                cluster: cluster,
                database: database,
                in: directory,
                steps: ["BEGIN; " + Self.insert("early"), "COMMIT;"]
            )
            late.go(0)
            try await Self.waitHoldingTransaction(late, cluster, database: database)
            early.go(0)
            try await Self.waitHoldingTransaction(early, cluster, database: database)
            let earlyID = try await Self.transactionID(of: early, cluster, database: database)
            late.go(1)
            await Self.finish(late)

            let first = try await store.followedEvents(after: start, limit: 100)
            #expect(Self.jtis(first) == ["late"], "\(first)")
            let position = start.advanced(by: first)
            // `early` took its id after `late`, so the position stands below it. (The snapshot
            // need not list it as running: it lists only ids below its xmax, one past the latest
            // ended id, which may be `early`'s own.)
            #expect(position.high.transaction < earlyID, "\(position)")

            early.go(1)
            await Self.finish(early)
            let all = try await store.followedEvents(after: start, limit: 100)
            let sequences = Dictionary(uniqueKeysWithValues: zip(Self.jtis(all), all.events.map(\.event.sequence)))
            // The commits crossed: a cursor over sequences would stand above early's now, and lose it.
            #expect(try #require(sequences["early"]) < (try #require(sequences["late"])), "\(all)")
            let second = try await store.followedEvents(after: position, limit: 100)
            #expect(
                Self.jtis(second) == ["early"],
                "an event that committed later is lost behind the position: \(second)"
            )
            #expect(second.complete, "\(second)")
        }
    }

    @Test("only the followed kinds are read, through the partial index")
    func followedKindsOnly() async throws {
        try await Self.withStore { cluster, database, store, _, start in
            try await store.appendEvent(kind: TokenEvent.Kind.refreshRotated, subject: "s", detail: "family f", at: 1)
            try await store.setSubjectCutoff(subject: "s", notBefore: 5, reason: "logout")
            let read = try await store.followedEvents(after: start, limit: 100)
            #expect(read.events.map(\.event.kind) == [TokenEvent.Kind.subjectCutoff], "\(read)")
            let plan = try await cluster.psql(
                "SET enable_seqscan = off; EXPLAIN SELECT sequence FROM tokend.events WHERE "
                    + "kind IN ('revoke_access', 'subject_cutoff', 'revoke_key', 'family_revoked', 'refresh_reuse', "
                    + "'keyring_changed') AND (transaction_id, sequence) > ('1'::xid8, 0) "
                    + "ORDER BY transaction_id, sequence LIMIT 500",
                database: database
            )
            #expect(plan.stdout.contains("events_followed"), "\(plan)")
        }
    }
}
