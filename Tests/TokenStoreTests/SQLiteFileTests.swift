import CodedErrors
import Foundation
import Testing
import TokenStore
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("SQLiteTokenStore on disk: durability, permissions, migrations, health")
struct SQLiteFileTests {
    let now = StoreFixtures.now
    let logger = StoreFixtures.quietLogger

    // MARK: Durability

    @Test("what one store wrote, a second store on the same file reads, and so does a reopen")
    func durableAcrossInstances() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let first = try await SQLiteTokenStore.open(path: path, logger: logger)
            let family = StoreFixtures.family()
            let token = StoreFixtures.activeToken("rt-0")
            try await first.createRefreshFamily(family, firstToken: token)
            try await first.revokeAccessToken(
                jti: "jti-a",
                subject: "user-1",
                expiresAt: now + 600,
                at: now,
                reason: "r"
            )
            try await first.setSubjectCutoff(subject: "user-1", notBefore: now, reason: "logout")
            try await first.revokeKey(kid: "kid-1", at: now, reason: "compromise")
            try await first.updateRefreshToken(hash: token.hash, now: now + 1) { token, _ in
                RefreshDecision(change: rotation(of: token!, to: "rt-1", at: now + 1, accessJTI: "jti-1"), outcome: ())
            }
            let expected = try await first.loadRevocations(now: now)
            let expectedEvents = try await first.allEvents()

            // A second instance, as a second process would, while the first is still open.
            let second = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(try await second.loadRevocations(now: now) == expected)
            #expect(try await second.allEvents() == expectedEvents)
            #expect(try await second.peek(StoreFixtures.hash("rt-1")).token?.state == .active)
            try await second.appendEvent(kind: "from_second", subject: nil, detail: "d", at: now)
            #expect(try await first.allEvents().last?.kind == "from_second")
            try await second.close()
            try await first.close()

            let reopened = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(try await reopened.loadRevocations(now: now).revokedAccessTokens == expected.revokedAccessTokens)
            #expect(try await reopened.refreshFamily(id: family.id)?.lastAccessJTI == "jti-1")
            #expect(try await reopened.allEvents().count == expectedEvents.count + 1)
            try await reopened.close()
        }
    }

    @Test("the connection syncs every commit, in WAL mode, with foreign keys on")
    func pragmas() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteTokenStore.open(path: directory.file("tokend.db"), logger: logger)
            #expect(try await store.integerForTesting("PRAGMA synchronous") == 2)  // FULL
            #expect(
                try await store.integerForTesting("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'")
                    == 1
            )
            #expect(try await store.integerForTesting("PRAGMA foreign_keys") == 1)
            #expect(try await store.integerForTesting("PRAGMA application_id") == 0x746B_6E64)
            try await store.close()
        }
    }

    @Test("under a steady write load the WAL stays bounded and its pages reach the database file")
    func checkpointsBesideTheWriter() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            try await store.createRefreshFamily(StoreFixtures.family(), firstToken: StoreFixtures.activeToken("rt-0"))
            let sizeBefore = try #require(try fileSize(path))
            // About 11 WAL frames a rotation: 1,000 rotations write some 11,000 frames, past
            // where the writer checkpoints itself (8,000); the WAL must start over to stay
            // below that many frames.
            let sealed = [UInt8](repeating: 7, count: 900)
            for step in 1...1000 {
                let rotated = try await store.rotateIfCurrent(
                    ConditionalRotation(
                        hash: StoreFixtures.hash("rt-\(step - 1)"),
                        familyID: "fam-1",
                        subject: "user-1",
                        subjectCutoff: nil,
                        successor: StoreFixtures.activeToken("rt-\(step)", createdAt: now + Double(step)),
                        successorSealed: sealed,
                        accessJTI: "jti-\(step)",
                        accessExpiresAt: now + 3600,
                        now: now + Double(step)
                    )
                )
                #expect(rotated, "rotation \(step)")
            }
            let frameBytes = 4096 + 24
            let walSize = try #require(try fileSize(path + "-wal"))
            #expect(walSize <= 32 + 9000 * frameBytes, "the WAL started over: \(walSize) bytes")
            // Checkpoints (on their own connection) copied pages into the database file.
            #expect(try #require(try fileSize(path)) > sizeBefore + 1000 * 900)
            #expect(try await store.peek(StoreFixtures.hash("rt-1000")).token?.state == .active)
            try await store.close()
            let reopened = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(try await reopened.refreshFamily(id: "fam-1")?.lastAccessJTI == "jti-1000")
            try await reopened.close()
        }
    }

    private func fileSize(_ path: String) throws -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    // MARK: Permissions

    @Test("the database and its WAL files are 0600, a created directory 0700")
    func fileModes() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("var/lib/tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            try await store.revokeKey(kid: "k", at: now, reason: "r")  // makes sure -wal has content
            for file in [path, path + "-wal", path + "-shm"] {
                #expect(try mode(of: file) == 0o600, "\(file)")
            }
            #expect(try mode(of: directory.file("var/lib")) == 0o700)
            #expect(try mode(of: directory.file("var")) == 0o700)
            try await store.close()
        }
    }

    @Test("an existing database that group or others can read is refused, naming the file and the fix")
    func looseDatabaseRefused() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            try await store.close()
            #expect(chmod(path, 0o640) == 0)
            let error = await #expect(throws: TokenStoreError.self) {
                _ = try await SQLiteTokenStore.open(path: path, logger: logger)
            }
            #expect(error?.code == .permissions)
            #expect(error?.description.contains(path) == true)
            #expect(error?.description.contains("0640") == true)
            #expect(error?.description.contains("chmod 600 \(path)") == true)
            #expect(try mode(of: path) == 0o640, "the daemon refuses rather than silently fixing")
        }
    }

    @Test("a world-readable WAL file is refused too")
    func looseWALRefused() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            try await store.revokeKey(kid: "k", at: now, reason: "r")
            #expect(chmod(path + "-wal", 0o644) == 0)
            let error = await #expect(throws: TokenStoreError.self) {
                _ = try await SQLiteTokenStore.open(path: path, logger: logger)
            }
            #expect(error?.code == .permissions)
            #expect(error?.description.contains("\(path)-wal has mode 0644") == true)
            try await store.close()
        }
    }

    // MARK: Migrations

    @Test("an empty file is migrated, and reopening migrates nothing twice")
    func migrationIdempotent() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let fd = open(path, O_CREAT | O_WRONLY, 0o600)
            #expect(fd >= 0)
            close(fd)
            let announced = Shared<[String]?>(nil)
            let store = try await SQLiteTokenStore.open(path: path, logger: logger) { pending in
                announced.withLock { $0 = pending }
            }
            #expect(announced.value == nil, "a new database is not announced as migrating")
            let tables = """
                SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
                ('refresh_families', 'refresh_tokens', 'revoked_access_tokens', 'subject_cutoffs',
                 'revoked_keys', 'events', 'users', 'user_numbers', 'user_identifiers')
                """
            #expect(try await store.integerForTesting(tables) == 9)
            try await store.revokeKey(kid: "k", at: now, reason: "r")
            try await store.close()

            for _ in 0..<2 {
                let again = try await SQLiteTokenStore.open(path: path, logger: logger) { pending in
                    announced.withLock { $0 = pending }
                }
                #expect(announced.value == nil, "nothing to migrate, nothing announced")
                #expect(try await again.integerForTesting("SELECT count(*) FROM grdb_migrations") == 5)
                #expect(try await again.loadRevocations(now: now).revokedKeys == ["k"])
                try await again.close()
            }
        }
    }

    @Test("a v3 database's refresh tokens move to the v4 rowid table as they were, and rotate on")
    func refreshTokensMoveToV4() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let withoutRowID = """
                SELECT count(*) FROM sqlite_master
                WHERE type = 'table' AND name = 'refresh_tokens' AND sql LIKE '%WITHOUT ROWID%'
                """
            let old = try await SQLiteTokenStore.openForTesting(path: path, logger: logger, upTo: "v3-user-identifiers")
            #expect(try await old.integerForTesting(withoutRowID) == 1)
            let family = StoreFixtures.family()
            let first = StoreFixtures.activeToken("rt-0")
            try await old.createRefreshFamily(family, firstToken: first)
            #expect(
                try await old.rotateIfCurrent(ConditionalRotationTests.rotation(to: "rt-1", at: now + 5, jti: "jti-1"))
            )
            let spent = try #require(try await old.refreshToken(hash: first.hash).token)
            let active = try #require(try await old.refreshToken(hash: StoreFixtures.hash("rt-1")).token)
            #expect(spent.state == .spent && spent.successorSealed != nil)
            try await old.close()

            let announced = Shared<[String]?>(nil)
            let store = try await SQLiteTokenStore.open(path: path, logger: logger) { pending in
                announced.withLock { $0 = pending }
            }
            #expect(
                announced.value == ["v4-refresh-tokens-in-order", "v5-refresh-keys-in-issue-order"],
                "the migrations are announced before they run"
            )
            #expect(try await store.integerForTesting(withoutRowID) == 0)
            // In issue order, and the family's index is back (cascades and compaction use it).
            #expect(
                try await store.integerForTesting("SELECT rowid FROM refresh_tokens WHERE created_at = \(now)") == 1
            )
            let familyIndex =
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'refresh_tokens_by_family'"
            #expect(try await store.integerForTesting(familyIndex) == 1)
            #expect(try await store.refreshToken(hash: first.hash).token == spent)
            #expect(try await store.refreshToken(hash: active.hash).token == active)
            let next = ConditionalRotationTests.rotation(of: "rt-1", to: "rt-2", at: now + 10, jti: "jti-2")
            #expect(try await store.rotateIfCurrent(next))
            #expect(try await store.refreshToken(hash: active.hash).token?.state == .spent)
            #expect(try await store.refreshToken(hash: StoreFixtures.hash("rt-2")).token?.state == .active)
            // Still one token per hash, and still gone with its family.
            await #expect(throws: (any Error).self) {
                try await store.executeForTesting(
                    """
                    INSERT INTO refresh_tokens (hash, family_id, state, created_at)
                    SELECT hash, family_id, 'active', 0 FROM refresh_tokens LIMIT 1
                    """
                )
            }
            try await store.executeForTesting("DELETE FROM refresh_families WHERE id = '\(family.id)'")
            #expect(try await store.integerForTesting("SELECT count(*) FROM refresh_tokens") == 0)
            try await store.close()
        }
    }

    @Test("a v4 database takes v5 alone, which changes no table, and says it keys refresh tokens in issue order")
    func issueOrderedKeysMarkV5() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let old = try await SQLiteTokenStore.openForTesting(
                path: path,
                logger: logger,
                upTo: "v4-refresh-tokens-in-order"
            )
            let family = StoreFixtures.family()
            let first = StoreFixtures.activeToken("rt-0")
            try await old.createRefreshFamily(family, firstToken: first)
            let schema = "SELECT count(*) FROM sqlite_master"
            let objects = try await old.integerForTesting(schema)
            #expect(!old.keysRefreshTokensInIssueOrder, "a v4 database is read by binaries that do not know such keys")
            try await old.close()

            let announced = Shared<[String]?>(nil)
            let store = try await SQLiteTokenStore.open(path: path, logger: logger) { pending in
                announced.withLock { $0 = pending }
            }
            #expect(announced.value == ["v5-refresh-keys-in-issue-order"])
            #expect(try await store.integerForTesting(schema) == objects)
            #expect(try await store.refreshToken(hash: first.hash).token == first)
            #expect(store.keysRefreshTokensInIssueOrder)
            try await store.close()
        }
    }

    @Test("a database written by a newer tokend is refused with a schema error")
    func newerSchemaRefused() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            try await store.executeForTesting(
                "INSERT INTO grdb_migrations (identifier) VALUES ('v999-from-the-future')"
            )
            try await store.close()
            let error = await #expect(throws: TokenStoreError.self) {
                _ = try await SQLiteTokenStore.open(path: path, logger: logger)
            }
            #expect(error?.code == .schema)
            #expect(error?.description.contains("v999-from-the-future") == true)
            #expect(error?.description.contains("newer tokend") == true)
        }
    }

    @Test("another program's SQLite database is refused, not migrated")
    func foreignDatabaseRefused() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("other.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            try await store.executeForTesting("PRAGMA application_id = 42")
            try await store.close()
            let error = await #expect(throws: TokenStoreError.self) {
                _ = try await SQLiteTokenStore.open(path: path, logger: logger)
            }
            #expect(error?.code == .schema)
            #expect(error?.description.contains("another program") == true)
        }
    }

    @Test("a file that is not a SQLite database is refused with a schema error")
    func notADatabase() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let fd = open(path, O_CREAT | O_WRONLY, 0o600)
            let text = Array(String(repeating: "this is not a database. ", count: 100).utf8)
            #expect(write(fd, text, text.count) == text.count)
            close(fd)
            let error = await #expect(throws: TokenStoreError.self) {
                _ = try await SQLiteTokenStore.open(path: path, logger: logger)
            }
            #expect(error?.code == .schema)
            #expect(error?.description.contains(path) == true)
        }
    }

    @Test("a path whose directory cannot be created is reported with the directory")
    func uncreatableDirectory() async throws {
        try await withTemporaryDirectory { directory in
            let blocker = directory.file("file")
            let fd = open(blocker, O_CREAT | O_WRONLY, 0o600)
            close(fd)
            let error = await #expect(throws: TokenStoreError.self) {
                _ = try await SQLiteTokenStore.open(path: blocker + "/sub/tokend.db", logger: logger)
            }
            #expect(error?.code == .permissions)
            #expect(error?.description.contains(blocker) == true)
        }
    }

    // MARK: Health

    @Test(
        "deleted database files: writes are refused, health says why, and only acknowledged writes are there after reopening",
        arguments: [[""], ["-wal"], ["", "-wal", "-shm"]]
    )
    func deletedFilesRefuseWrites(suffixes: [String]) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(await store.health() == StoreHealth())
            try await store.revokeKey(kid: "before", at: 1, reason: "r")
            _ = try await store.integerForTesting("PRAGMA wal_checkpoint(TRUNCATE)")
            // A backup of the database, as an operator would restore it.
            for suffix in ["", "-wal"] where access(path + suffix, F_OK) == 0 {
                try copyFile(path + suffix, to: directory.file("backup.db" + suffix))
            }
            for suffix in suffixes { #expect(unlink(path + suffix) == 0) }

            let error = await #expect(throws: TokenStoreError.self) {
                try await store.revokeKey(kid: "after", at: 2, reason: "r")
            }
            #expect(error?.code == .unavailable)
            #expect(error?.description.contains("deleted") == true, "\(String(describing: error))")
            let health = await store.health()
            #expect(health.writes?.contains("deleted") == true, "\(health)")
            try await store.close()

            // The next start opens what is at the path: the refused write is nowhere, so it
            // was right not to acknowledge it.
            for suffix in ["", "-wal"] where access(directory.file("backup.db" + suffix), F_OK) == 0 {
                _ = unlink(path + suffix)
                try copyFile(directory.file("backup.db" + suffix), to: path + suffix)
            }
            let reopened = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(try await reopened.loadRevocations(now: 0).revokedKeys == ["before"])
            try await reopened.close()
        }
    }

    @Test("a database file replaced under the store: writes are refused and health says to restart")
    func replacedFileRefusesWrites() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(rename(path, path + ".moved") == 0)
            close(open(path, O_CREAT | O_WRONLY, 0o600))
            let error = await #expect(throws: TokenStoreError.self) {
                try await store.appendEvent(kind: "k", subject: nil, detail: "d", at: 1)
            }
            #expect(error?.code == .unavailable)
            #expect(error?.description.contains("replaced") == true)
            let health = await store.health()
            #expect(health.writes?.contains("restart tokend") == true, "\(health)")
            #expect(health.reads == nil, "reads still answer from the open file: \(health)")
            try await store.close()
        }
    }

    @Test("a failed write is reported until a write works again, which health tries itself")
    func writeFailureUntilRecovery() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            // SQLITE_FULL without filling a disk: cap the database at its current size.
            let pages = try #require(try await store.integerForTesting("PRAGMA page_count"))
            _ = try await store.integerForTesting("PRAGMA max_page_count = \(pages)")
            // Fill what is left in the pages, down to the smallest event.
            var failure: TokenStoreError?
            for size in [4096, 1024, 256, 64, 16, 1] {
                do {
                    while true {
                        try await store.appendEvent(
                            kind: "k",
                            subject: nil,
                            detail: String(repeating: "x", count: size),
                            at: 1
                        )
                    }
                } catch let error as TokenStoreError {
                    failure = error
                }
            }
            #expect(failure?.code == .unavailable)
            #expect(await store.health().writes?.contains("the disk is full") == true)
            #expect(await store.health().reads == nil)

            _ = try await store.integerForTesting("PRAGMA max_page_count = 1000000")
            // Health's own write (at most one a second) finds writes working again.
            _ = try await eventually("health to find writes working again", timeout: .seconds(5)) {
                await store.health() == StoreHealth() ? true : nil
            }
            let events = try await store.events(after: 0, limit: 100)
            #expect(events.last?.kind == TokenEvent.Kind.writesResumed)
            #expect(events.last?.detail.contains("the disk is full") == true)
            try await store.close()
        }
    }

    // MARK: Errors

    @Test("a constraint failure is a conflict whose message holds no bound value")
    func constraintMessage() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteTokenStore.open(path: directory.file("tokend.db"), logger: logger)
            let error = await #expect(throws: TokenStoreError.self) {
                try await store.executeForTesting(
                    "INSERT INTO revoked_keys (kid, revoked_at, reason) VALUES ('secret-value', 1, NULL)"
                )
            }
            #expect(error?.code == .conflict)
            #expect(error?.description.contains("secret-value") == false)
            #expect(error?.description.contains("revoked_keys.reason") == true)
            try await store.close()
        }
    }

    private func mode(of path: String) throws -> mode_t {
        var info = stat()
        try #require(stat(path, &info) == 0, "stat \(path)")
        return info.st_mode & 0o7777
    }

    private func copyFile(_ source: String, to destination: String) throws {
        let bytes = try #require(FileManager.default.contents(atPath: source), "read \(source)")
        #expect(FileManager.default.createFile(atPath: destination, contents: bytes))
        #expect(chmod(destination, 0o600) == 0)
    }
}
