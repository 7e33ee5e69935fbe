import CodedErrors
import Testing
import TokenStore
import TokenTestSupport

@Suite("Users: create, look up, conflicts, search, update, events")
struct UserStoreTests {
    let now = StoreFixtures.now

    // MARK: Create and read

    @Test("a created user reads back whole by every key", arguments: StoreKind.allCases)
    func createAndRead(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            var new = StoreFixtures.newUser(1, username: "Alice", email: "  Alice@Example.COM ")
            new.plan = "pro"
            new.vendor = "acme"
            new.scope = ["user", "admin"]
            new.firstName = "Alice"
            new.lastName = "Liddell"
            new.role = "admin"
            new.avatar = "https://example.com/a.png"
            new.permissions = ["read", "write"]
            let created = try await store.createUser(new)
            let expected = UserRecord(
                publicID: StoreFixtures.publicID(1),
                numericID: 1,
                username: "Alice",
                email: "alice@example.com",
                passwordHash: new.passwordHash,
                status: .active,
                plan: "pro",
                vendor: "acme",
                scope: ["user", "admin"],
                firstName: "Alice",
                lastName: "Liddell",
                role: "admin",
                avatar: "https://example.com/a.png",
                permissions: ["read", "write"],
                statsJSON: "{}",
                createdAt: new.createdAt
            )
            #expect(created == expected)
            #expect(try await store.user(publicID: expected.publicID) == expected)
            #expect(try await store.user(numericID: 1) == expected)
            for email in ["alice@example.com", "ALICE@example.com", " Alice@Example.Com\n"] {
                #expect(try await store.user(email: email) == expected, "\(email)")
            }
            for username in ["Alice", "alice", "ALICE", "aLiCe", " alice "] {
                #expect(try await store.user(username: username) == expected, "\(username)")
            }
            #expect(try await store.user(publicID: StoreFixtures.publicID(2)) == nil)
            #expect(try await store.user(numericID: 2) == nil)
            #expect(try await store.user(email: "bob@example.com") == nil)
            #expect(try await store.user(username: "alic") == nil)
        }
    }

    @Test("a new user gets the defaults: active, free plan, user scope, empty stats", arguments: StoreKind.allCases)
    func defaults(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let user = try await store.createUser(StoreFixtures.newUser(1))
            let read = try #require(try await store.user(numericID: user.numericID))
            #expect(read.status == .active)
            #expect(read.plan == "free")
            #expect(read.vendor == nil)
            #expect(read.scope == ["user"])
            #expect(read.permissions == [])
            #expect(read.statsJSON == "{}")
            #expect(read.lastLoginAt == nil)
            #expect(read.tokensNotBefore == nil)
        }
    }

    // MARK: Conflicts

    @Test("an email taken in any case or spacing is a conflict naming the email", arguments: StoreKind.allCases)
    func duplicateEmail(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(StoreFixtures.newUser(1, email: "alice@example.com"))
            let eventsBefore = try await store.allEvents().count
            for (index, email) in ["alice@example.com", "Alice@Example.com", " ALICE@EXAMPLE.COM "].enumerated() {
                let error = await #expect(throws: TokenStoreError.self) {
                    _ = try await store.createUser(StoreFixtures.newUser(10 + index, email: email))
                }
                #expect(error?.code == .conflict)
                #expect(error?.field == "email")
                #expect(error?.reason.contains("email") == true)
                #expect(error?.reason.contains("username") == false)
                #expect(error?.description.contains("alice") == false, "the address stays out of logs")
            }
            #expect(try await store.allEvents().count == eventsBefore, "a refused user writes no event")
            #expect(try await store.createUser(StoreFixtures.newUser(2)).numericID == 2, "no number was used up")
        }
    }

    @Test("a username taken in any ASCII case is a conflict naming the username", arguments: StoreKind.allCases)
    func duplicateUsername(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(StoreFixtures.newUser(1, username: "Alice"))
            for (index, username) in ["Alice", "alice", "ALICE", " aLiCe "].enumerated() {
                let error = await #expect(throws: TokenStoreError.self) {
                    _ = try await store.createUser(StoreFixtures.newUser(10 + index, username: username))
                }
                #expect(error?.code == .conflict)
                #expect(error?.field == "username")
                #expect(error?.reason.contains("username") == true)
                #expect(error?.reason.contains("email") == false)
            }
            #expect(try await store.users(matching: UserQuery()).count == 1)
        }
    }

    @Test(
        "the email is checked before the username, and a taken public id is its own conflict",
        arguments: StoreKind.allCases
    )
    func conflictOrder(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(StoreFixtures.newUser(1))
            let both = await #expect(throws: TokenStoreError.self) {
                _ = try await store.createUser(
                    StoreFixtures.newUser(2, username: "user1", email: "user1@example.com")
                )
            }
            #expect(both?.field == "email")
            let sameID = await #expect(throws: TokenStoreError.self) {
                _ = try await store.createUser(
                    NewUser(
                        publicID: StoreFixtures.publicID(1),
                        username: "other",
                        email: "other@example.com",
                        passwordHash: StoreFixtures.passwordHash(),
                        createdAt: now
                    )
                )
            }
            #expect(sameID?.field == "public_id")
        }
    }

    @Test(
        "usernames compare after NFKC and case folding: every letter, compatibility and canonical forms alike",
        arguments: StoreKind.allCases
    )
    func usernameComparison(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(StoreFixtures.newUser(1, username: "Ärger"))
            for (n, username) in ["ärger", "ÄRGER", "Ａ\u{308}rger"].enumerated() {
                let folded = await #expect(throws: TokenStoreError.self, "\(username)") {
                    _ = try await store.createUser(StoreFixtures.newUser(2 + n, username: username))
                }
                #expect(folded?.field == "username")
            }
            #expect(try await store.user(username: "äRGER")?.publicID == StoreFixtures.publicID(1))
            #expect(try await store.user(username: "ＡＲＧＥＲ") == nil, "A is not Ä")
            // "é" typed as e + combining accent is the same username as the precomposed "é".
            _ = try await store.createUser(StoreFixtures.newUser(4, username: "\u{e9}mile"))
            let decomposed = await #expect(throws: TokenStoreError.self) {
                _ = try await store.createUser(StoreFixtures.newUser(5, username: "e\u{301}MILE"))
            }
            #expect(decomposed?.field == "username")
            #expect(try await store.user(username: "e\u{301}mile")?.publicID == StoreFixtures.publicID(4))
        }
    }

    @Test("invalid values are refused before anything is written", arguments: StoreKind.allCases)
    func invalidUsers(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            var badID = StoreFixtures.newUser(1)
            badID.publicID = "00000000000000000000000G"
            var shortID = StoreFixtures.newUser(1)
            shortID.publicID = "abc"
            var upperID = StoreFixtures.newUser(1)
            upperID.publicID = "0000000000000000000000AB"
            var bcrypt = StoreFixtures.newUser(1)
            bcrypt.passwordHash = "$2b$12$secretsecretsecret"
            var noName = StoreFixtures.newUser(1)
            noName.username = "   "
            var noEmail = StoreFixtures.newUser(1)
            noEmail.email = ""
            let cases: [(name: String, user: NewUser)] = [
                ("public id", badID), ("public id", shortID), ("public id", upperID), ("password hash", bcrypt),
                ("username", noName), ("email", noEmail),
            ]
            for (name, user) in cases {
                let error = await #expect(throws: TokenStoreError.self, "\(name)") {
                    _ = try await store.createUser(user)
                }
                #expect(error?.code == .conflict)
                #expect(error?.field == nil, "not a taken value: \(name)")
                #expect(error?.reason.contains(name) == true, "\(error?.reason ?? "")")
                #expect(error?.description.contains("secret") == false)
            }
            let stored = try await store.users(matching: UserQuery())
            let events = try await store.allEvents()
            #expect(stored.isEmpty)
            #expect(events.isEmpty)
        }
    }

    // MARK: Numeric ids

    @Test("numeric ids rise one by one, also under 20 concurrent creates", arguments: StoreKind.allCases)
    func numericIDs(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.createUser(StoreFixtures.newUser(1)).numericID == 1)
            #expect(try await store.createUser(StoreFixtures.newUser(2)).numericID == 2)
            let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
                for number in 3...22 {
                    group.addTask { try await store.createUser(StoreFixtures.newUser(number)).numericID }
                }
                return try await group.reduce(into: [Int64]()) { $0.append($1) }
            }
            #expect(ids.sorted() == Array(3...22))
            let users = try await store.users(matching: UserQuery(limit: 100))
            #expect(Set(users.map(\.numericID)).count == 22)
            for user in users {
                #expect(try await store.user(numericID: user.numericID)?.publicID == user.publicID)
            }
        }
    }

    // MARK: Search

    @Test("search finds substrings of email and username in any case", arguments: StoreKind.allCases)
    func search(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(StoreFixtures.newUser(1, username: "AliceCooper", email: "alice@rock.org"))
            _ = try await store.createUser(StoreFixtures.newUser(2, username: "bob", email: "bob@example.com"))
            _ = try await store.createUser(StoreFixtures.newUser(3, username: "MALICE", email: "m@example.org"))
            func names(_ query: UserQuery) async throws -> [String] {
                try await store.users(matching: query).map(\.username)
            }
            #expect(try await names(UserQuery(usernameContains: "alice")) == ["AliceCooper", "MALICE"])
            #expect(try await names(UserQuery(usernameContains: "COOP")) == ["AliceCooper"])
            #expect(try await names(UserQuery(emailContains: "EXAMPLE")) == ["bob", "MALICE"])
            #expect(try await names(UserQuery(emailContains: " .ORG ")) == ["AliceCooper", "MALICE"])
            #expect(try await names(UserQuery(emailContains: "org", usernameContains: "coop")) == ["AliceCooper"])
            #expect(try await names(UserQuery(usernameContains: "")) == ["AliceCooper", "bob", "MALICE"])
            #expect(try await names(UserQuery(usernameContains: "nobody")) == [])
        }
    }

    @Test("% _ and \\ in a search are plain characters, not wildcards", arguments: StoreKind.allCases)
    func searchIsLiteral(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(StoreFixtures.newUser(1, username: "a_b", email: "a_b@example.com"))
            _ = try await store.createUser(StoreFixtures.newUser(2, username: "axb", email: "axb@example.com"))
            _ = try await store.createUser(StoreFixtures.newUser(3, username: "100%", email: "p100@example.com"))
            _ = try await store.createUser(StoreFixtures.newUser(4, username: "1000", email: "p1000@example.com"))
            _ = try await store.createUser(StoreFixtures.newUser(5, username: "back\\slash", email: "bs@example.com"))
            func names(_ query: UserQuery) async throws -> [String] {
                try await store.users(matching: query).map(\.username)
            }
            #expect(try await names(UserQuery(usernameContains: "_")) == ["a_b"])
            #expect(try await names(UserQuery(usernameContains: "a_b")) == ["a_b"])
            #expect(try await names(UserQuery(usernameContains: "%")) == ["100%"])
            #expect(try await names(UserQuery(usernameContains: "10%")) == [])
            #expect(try await names(UserQuery(usernameContains: "\\")) == ["back\\slash"])
            #expect(try await names(UserQuery(usernameContains: "\\s")) == ["back\\slash"])
            #expect(try await names(UserQuery(emailContains: "_b@")) == ["a_b"])
            #expect(try await names(UserQuery(emailContains: "%")) == [])
        }
    }

    @Test("search filters on status and pages oldest first", arguments: StoreKind.allCases)
    func searchStatusAndPaging(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            // Created out of order: the oldest user gets the highest number.
            for (number, age) in [(1, 30.0), (2, 10.0), (3, 20.0), (4, 0.0), (5, 10.0)] {
                _ = try await store.createUser(StoreFixtures.newUser(number, createdAt: now - age))
            }
            _ = try await store.updateUser(publicID: StoreFixtures.publicID(3), UserChange(status: .inactive))
            func numbers(_ query: UserQuery) async throws -> [Int64] {
                try await store.users(matching: query).map(\.numericID)
            }
            #expect(try await numbers(UserQuery()) == [1, 3, 2, 5, 4])
            #expect(try await numbers(UserQuery(status: .active)) == [1, 2, 5, 4])
            #expect(try await numbers(UserQuery(status: .inactive)) == [3])
            #expect(try await numbers(UserQuery(limit: 2)) == [1, 3])
            #expect(try await numbers(UserQuery(limit: 2, offset: 2)) == [2, 5])
            #expect(try await numbers(UserQuery(limit: 2, offset: 4)) == [4])
            #expect(try await numbers(UserQuery(limit: 2, offset: 5)) == [])
            #expect(try await numbers(UserQuery(limit: 2, offset: -3)) == [1, 3])
            #expect(try await numbers(UserQuery(limit: 0)) == [])
            #expect(try await numbers(UserQuery(status: .active, limit: 1, offset: 1)) == [2])
        }
    }

    // MARK: Update

    @Test(
        "an update changes the given fields only, durably, and names them in its event",
        arguments: StoreKind.allCases
    )
    func update(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            var new = StoreFixtures.newUser(1)
            new.vendor = "acme"
            let user = try await store.createUser(new)
            let newHash = StoreFixtures.passwordHash("rehashed")
            let updated = try await store.updateUser(
                publicID: user.publicID,
                UserChange(
                    status: .inactive,
                    passwordHash: newHash,
                    lastLoginAt: now + 100,
                    tokensNotBefore: now + 101,
                    plan: "pro",
                    vendor: .some(nil),
                    scope: ["user", "admin"],
                    firstName: "Al",
                    lastName: "Ice",
                    role: "admin",
                    avatar: "a.png",
                    permissions: ["p"],
                    statsJSON: #"{"logins":3}"#,
                    changedAt: now + 102
                )
            )
            var expected = user
            expected.status = .inactive
            expected.passwordHash = newHash
            expected.lastLoginAt = now + 100
            expected.tokensNotBefore = now + 101
            expected.plan = "pro"
            expected.vendor = nil
            expected.scope = ["user", "admin"]
            expected.firstName = "Al"
            expected.lastName = "Ice"
            expected.role = "admin"
            expected.avatar = "a.png"
            expected.permissions = ["p"]
            expected.statsJSON = #"{"logins":3}"#
            #expect(updated == expected)
            #expect(try await store.user(publicID: user.publicID) == expected)
            #expect(try await store.user(email: user.email) == expected)
            let event = try #require(try await store.allEvents().last)
            #expect(event.kind == TokenEvent.Kind.userUpdated)
            #expect(event.subject == user.publicID)
            #expect(event.at == now + 102)
            #expect(
                event.detail
                    == "fields=password_hash,status,plan,vendor,scope,first_name,last_name,role,avatar,permissions,"
                    + "stats,last_login_at,tokens_not_before status=inactive"
            )

            // A sign-in: only the login time moves, the rest stays.
            let signedIn = try await store.updateUser(publicID: user.publicID, UserChange(lastLoginAt: now + 200))
            expected.lastLoginAt = now + 200
            #expect(signedIn == expected)
            #expect(try await store.allEvents().last?.detail == "fields=last_login_at")
        }
    }

    @Test("an update that changes nothing writes no event; an unknown user is nil", arguments: StoreKind.allCases)
    func updateNothing(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let user = try await store.createUser(StoreFixtures.newUser(1))
            let events = try await store.allEvents().count
            #expect(try await store.updateUser(publicID: user.publicID, UserChange()) == user)
            #expect(
                try await store.updateUser(publicID: user.publicID, UserChange(status: .active, plan: "free")) == user
            )
            #expect(try await store.allEvents().count == events)
            #expect(
                try await store.updateUser(publicID: StoreFixtures.publicID(9), UserChange(status: .inactive)) == nil
            )
            #expect(try await store.allEvents().count == events)
        }
    }

    @Test("a batch of updates applies each with its event and skips unknown users", arguments: StoreKind.allCases)
    func batchUpdate(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let first = try await store.createUser(StoreFixtures.newUser(1))
            let second = try await store.createUser(StoreFixtures.newUser(2))
            let events = try await store.allEvents().count
            try await store.updateUsers([
                (first.publicID, UserChange(lastLoginAt: 1_900_000_001, changedAt: 1_900_000_001)),
                (StoreFixtures.publicID(9), UserChange(lastLoginAt: 1_900_000_002)),
                (second.publicID, UserChange(lastLoginAt: 1_900_000_003, changedAt: 1_900_000_003)),
            ])
            #expect(try await store.user(publicID: first.publicID)?.lastLoginAt == 1_900_000_001)
            #expect(try await store.user(publicID: second.publicID)?.lastLoginAt == 1_900_000_003)
            #expect(try await store.allEvents().count == events + 2)
            try await store.updateUsers([])
            #expect(try await store.allEvents().count == events + 2)
        }
    }

    @Test("an update with an invalid hash or stats changes nothing", arguments: StoreKind.allCases)
    func invalidUpdate(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let user = try await store.createUser(StoreFixtures.newUser(1))
            for change in [
                UserChange(status: .inactive, passwordHash: "plaintext-password"),
                UserChange(status: .inactive, statsJSON: "[1, 2]"),
                UserChange(status: .inactive, statsJSON: "{not json"),
            ] {
                let error = await #expect(throws: TokenStoreError.self) {
                    _ = try await store.updateUser(publicID: user.publicID, change)
                }
                #expect(error?.code == .conflict)
                #expect(error?.description.contains("plaintext-password") == false)
            }
            #expect(try await store.user(publicID: user.publicID) == user)
        }
    }

    // MARK: Events

    @Test(
        "creating and updating users logs events that never hold a password hash or an email",
        arguments: StoreKind.allCases
    )
    func eventsHoldNoSecrets(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let user = try await store.createUser(StoreFixtures.newUser(7))
            let rehash = StoreFixtures.passwordHash("second")
            _ = try await store.updateUser(publicID: user.publicID, UserChange(passwordHash: rehash, changedAt: now))
            let events = try await store.allEvents()
            #expect(events.map(\.kind) == [TokenEvent.Kind.userCreated, TokenEvent.Kind.userUpdated])
            #expect(events[0].subject == user.publicID)
            #expect(events[0].at == user.createdAt)
            #expect(events[0].detail == "numeric_id=1 status=active")
            #expect(events[1].detail == "fields=password_hash")
            for event in events {
                for secret in [user.passwordHash, rehash, "$argon2", "c2FsdHNhbHRzYWx0", user.email] {
                    #expect(!event.detail.contains(secret), "\(event.kind) holds \(secret)")
                    #expect(!(event.subject ?? "").contains(secret))
                }
            }
        }
    }
}

@Suite("Users in the SQLite file: durability, numbers, migration from v1, constraints")
struct SQLiteUserTests {
    let now = StoreFixtures.now
    let logger = StoreFixtures.quietLogger

    @Test("users read back after a reopen, and numbering goes on where it stopped")
    func reopen() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let store = try await SQLiteTokenStore.open(path: path, logger: logger)
            var created: [UserRecord] = []
            for number in 1...3 { created.append(try await store.createUser(StoreFixtures.newUser(number))) }
            let updated = try await store.updateUser(
                publicID: created[1].publicID,
                UserChange(status: .inactive, tokensNotBefore: now + 5, statsJSON: #"{"a":[1,2]}"#)
            )
            created[1] = try #require(updated)
            try await store.close()

            let reopened = try await SQLiteTokenStore.open(path: path, logger: logger)
            #expect(try await reopened.users(matching: UserQuery()) == created)
            #expect(try await reopened.user(username: "USER2") == created[1])
            #expect(try await reopened.createUser(StoreFixtures.newUser(4)).numericID == 4)
            try await reopened.close()
        }
    }

    @Test("the number of a user whose row is gone is never given again")
    func numbersNeverReused() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteTokenStore.open(path: directory.file("tokend.db"), logger: logger)
            for number in 1...3 { _ = try await store.createUser(StoreFixtures.newUser(number)) }
            try await store.executeForTesting("DELETE FROM users WHERE numeric_id = 3")
            #expect(try await store.createUser(StoreFixtures.newUser(4)).numericID == 4)
            try await store.close()
        }
    }

    @Test("a v1 database gains the users table on open, keeping its data; reopening changes nothing")
    func migrateFromV1() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let old = try await SQLiteTokenStore.openForTesting(path: path, logger: logger, upTo: "v1")
            #expect(try await old.integerForTesting("SELECT count(*) FROM sqlite_master WHERE name = 'users'") == 0)
            try await old.revokeKey(kid: "kid-v1", at: now, reason: "compromise")
            let family = StoreFixtures.family()
            try await old.createRefreshFamily(family, firstToken: StoreFixtures.activeToken("rt-v1"))
            let oldEvents = try await old.allEvents()
            try await old.close()

            for round in 0..<2 {
                let store = try await SQLiteTokenStore.open(path: path, logger: logger)
                #expect(try await store.integerForTesting("SELECT count(*) FROM grdb_migrations") == 5)
                #expect(try await store.loadRevocations(now: now).revokedKeys == ["kid-v1"])
                #expect(try await store.refreshFamily(id: family.id) == family)
                if round == 0 {
                    #expect(try await store.allEvents() == oldEvents)
                    #expect(try await store.createUser(StoreFixtures.newUser(1)).numericID == 1)
                }
                #expect(try await store.user(numericID: 1)?.username == "user1")
                #expect(try await store.allEvents().count == oldEvents.count + 1)
                try await store.close()
            }
        }
    }

    @Test("the table's own constraints refuse what slipped past the store, naming the field")
    func tableConstraints() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteTokenStore.open(path: directory.file("tokend.db"), logger: logger)
            _ = try await store.createUser(StoreFixtures.newUser(1, username: "Alice", email: "alice@example.com"))
            // Always numeric id 2, so that only the value under test can collide.
            func insert(_ id: Int, _ username: String, _ email: String, _ hash: String = "$argon2id$x") -> String {
                """
                INSERT INTO users (public_id, numeric_id, username, email, password_hash, status, plan, role,
                    created_at)
                VALUES ('\(StoreFixtures.publicID(id))', 2, '\(username)', '\(email)', '\(hash)', 'active',
                    'free', 'user', 0)
                """
            }
            let cases: [(sql: String, field: String?, constraint: String)] = [
                (insert(2, "ALICE", "b@example.com"), "username", "users_by_username"),
                (insert(2, "bob", "alice@example.com"), "email", "users.email"),
                (insert(1, "bob", "b@example.com"), "public_id", "users.public_id"),
                (insert(2, "bob", "B@example.com"), nil, "email_is_normalised"),
                (insert(2, "bob", "b@example.com", "$2b$secret"), nil, "password_hash_is_argon2_phc"),
                ("UPDATE users SET numeric_id = 7", nil, "user ids never change"),
            ]
            for (sql, field, constraint) in cases {
                let error = await #expect(throws: TokenStoreError.self, "\(constraint)") {
                    try await store.executeForTesting(sql)
                }
                #expect(error?.code == .conflict)
                #expect(error?.field == field, "\(constraint)")
                #expect(error?.description.contains(constraint) == true, "\(error?.description ?? "")")
                #expect(error?.description.contains("secret") == false)
            }
            try await store.close()
        }
    }
}
