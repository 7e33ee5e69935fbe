import CodedErrors
import Testing
import TokenStore
import TokenTestSupport

/// Issue 10, finding 6: usernames and emails are one namespace, compared after NFKC and case
/// folding, enforced by the store itself (so two racing sign-ups cannot both win) and kept by
/// databases written before it.
@Suite("Users: one namespace for usernames and emails")
struct IdentifierNamespaceTests {
    let logger = StoreFixtures.quietLogger

    @Test(
        "a username may not be another user's email, nor an email another user's username",
        arguments: StoreKind.allCases
    )
    func acrossFields(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let alice = try await store.createUser(
                StoreFixtures.newUser(1, username: "alice", email: "alice@example.com")
            )
            let asUsername = await #expect(throws: TokenStoreError.self) {
                _ = try await store.createUser(
                    StoreFixtures.newUser(2, username: "ALICE@example.com", email: "evil@example.com")
                )
            }
            #expect(asUsername?.field == "username")
            let asEmail = await #expect(throws: TokenStoreError.self) {
                _ = try await store.createUser(StoreFixtures.newUser(3, username: "zed", email: "Ａlice"))
            }
            #expect(asEmail?.field == "email")
            // One's own email as username is one identifier, found through either field.
            let carol = try await store.createUser(
                StoreFixtures.newUser(4, username: "Carol@Example.com", email: "carol@example.com")
            )
            #expect(try await store.user(username: "carol@example.com") == carol)
            #expect(try await store.user(email: "CAROL@example.com") == carol)
            // Lookups stay per field: an email is not a username.
            #expect(try await store.user(username: "alice@example.com") == nil)
            #expect(try await store.user(email: "alice") == nil)
            #expect(try await store.user(username: "ＡＬＩＣＥ") == alice)
            #expect(try await store.users(matching: UserQuery()).count == 2)
        }
    }

    @Test("invisible and bidi characters are refused by the store too", arguments: StoreKind.allCases)
    func invisible(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            for (n, username) in ["ali\u{200B}ce", "\u{202E}ecila", "alice\u{FEFF}"].enumerated() {
                let error = await #expect(throws: TokenStoreError.self) {
                    _ = try await store.createUser(StoreFixtures.newUser(1 + n, username: username))
                }
                #expect(error?.code == .conflict)
                #expect(error?.field == nil)
            }
            let users = try await store.users(matching: UserQuery())
            #expect(users.isEmpty)
        }
    }

    @Test("of 12 concurrent creates claiming one identifier in either field, exactly one wins")
    func concurrentClaims() async throws {
        try await withStore(.sqlite) { store in
            let outcomes = try await withThrowingTaskGroup(of: String?.self) { group in
                for n in 1...12 {
                    let user =
                        n % 2 == 0
                        ? StoreFixtures.newUser(n, username: "dana@example.com", email: "DANA@example.com")
                        : StoreFixtures.newUser(n, username: "dana-\(n)", email: "dana@ｅxample.com")
                    group.addTask {
                        do {
                            _ = try await store.createUser(user)
                            return nil
                        } catch let error as TokenStoreError {
                            return error.field
                        }
                    }
                }
                var outcomes: [String?] = []
                for try await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            #expect(outcomes.filter { $0 == nil }.count == 1, "\(outcomes)")
            #expect(outcomes.allSatisfy { $0 == nil || $0 == "email" }, "\(outcomes)")
            #expect(try await store.users(matching: UserQuery()).count == 1)
        }
    }

    @Test("a v2 database whose users collide keeps every row; emails and older users keep the name")
    func migrateCollisions() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.file("tokend.db")
            let old = try await SQLiteTokenStore.openForTesting(path: path, logger: logger, upTo: "v2")
            func insert(_ id: Int, _ username: String, _ email: String) -> String {
                """
                INSERT INTO users (public_id, numeric_id, username, email, password_hash, status, plan, role,
                    created_at)
                VALUES ('\(StoreFixtures.publicID(id))', \(id), '\(username)', '\(email)', '$argon2id$x', 'active',
                    'free', 'user', \(id))
                """
            }
            // Mallory took Alice's address as a username; "ärger" is "Ärger" case-folded.
            try await old.executeForTesting(insert(1, "alice", "alice@example.com"))
            try await old.executeForTesting(insert(2, "alice@example.com", "evil@example.com"))
            try await old.executeForTesting(insert(3, "Ärger", "a1@example.com"))
            try await old.executeForTesting(insert(4, "ärger", "a2@example.com"))
            try await old.close()

            for round in 0..<2 {
                let store = try await SQLiteTokenStore.open(path: path, logger: logger)
                #expect(try await store.users(matching: UserQuery()).count == 4)
                #expect(try await store.user(username: "alice@example.com") == nil, "the address is Alice's")
                #expect(try await store.user(email: "alice@example.com")?.publicID == StoreFixtures.publicID(1))
                #expect(try await store.user(email: "evil@example.com")?.publicID == StoreFixtures.publicID(2))
                #expect(try await store.user(username: "ärger")?.publicID == StoreFixtures.publicID(3))
                #expect(try await store.user(email: "a2@example.com")?.publicID == StoreFixtures.publicID(4))
                let shadowed = try await store.allEvents().filter { $0.kind == TokenEvent.Kind.userIdentifierShadowed }
                #expect(shadowed.map(\.subject) == [StoreFixtures.publicID(2), StoreFixtures.publicID(4)])
                #expect(shadowed.allSatisfy { $0.detail == "field=username" })
                if round == 0 {
                    let error = await #expect(throws: TokenStoreError.self) {
                        _ = try await store.createUser(StoreFixtures.newUser(5, username: "ALICE@example.com"))
                    }
                    #expect(error?.field == "username")
                }
                try await store.close()
            }
        }
    }
}
