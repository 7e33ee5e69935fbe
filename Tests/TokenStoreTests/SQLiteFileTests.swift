import CodedErrors
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
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            let tables = """
                SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
                ('refresh_families', 'refresh_tokens', 'revoked_access_tokens', 'subject_cutoffs',
                 'revoked_keys', 'events', 'users', 'user_numbers', 'user_identifiers')
                """
            #expect(try await store.integerForTesting(tables) == 9)
            try await store.revokeKey(kid: "k", at: now, reason: "r")
            try await store.close()

            for _ in 0..<2 {
                let again = try await SQLiteTokenStore.open(path: path, logger: logger)
                #expect(try await again.integerForTesting("SELECT count(*) FROM grdb_migrations") == 3)
                #expect(try await again.loadRevocations(now: now).revokedKeys == ["k"])
                try await again.close()
            }
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

    @Test("a deleted database file makes the store unavailable")
    func deletedFileUnhealthy() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            try await store.checkHealth()
            #expect(unlink(path) == 0)
            let error = await #expect(throws: TokenStoreError.self) { try await store.checkHealth() }
            #expect(error?.code == .unavailable)
            #expect(error?.description.contains("deleted") == true)
            try await store.close()
        }
    }

    @Test("a database file replaced under the store makes it unavailable")
    func replacedFileUnhealthy() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(rename(path, path + ".moved") == 0)
            close(open(path, O_CREAT | O_WRONLY, 0o600))
            let error = await #expect(throws: TokenStoreError.self) { try await store.checkHealth() }
            #expect(error?.code == .unavailable)
            #expect(error?.description.contains("replaced") == true)
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
}
