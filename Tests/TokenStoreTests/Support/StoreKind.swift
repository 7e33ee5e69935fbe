import PostgresStore
import Testing
import TokenStore
import TokenTestSupport

/// The implementations every shared test runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case memory
    /// A database of its own in the test process's shared throwaway cluster.
    case postgres

    var testDescription: String { rawValue }
}

/// Runs `body` with a fresh store of `kind` (SQLite in a temporary directory, PostgreSQL in a
/// new database), then closes it and removes the directory.
func withStore<T>(
    _ kind: StoreKind,
    eventRetention: Double? = nil,
    _ body: (any TokenStore & UserStore) async throws -> T
) async throws -> T {
    try await withTemporaryDirectory(prefix: "tokend-store-test") { directory in
        let store: any TokenStore & UserStore
        switch kind {
        case .sqlite:
            store = try await SQLiteTokenStore.open(
                path: directory.file("tokend.db"),
                logger: StoreFixtures.quietLogger,
                eventRetention: eventRetention
            )
        case .memory:
            store = InMemoryTokenStore(eventRetention: eventRetention)
        case .postgres:
            store = try await PostgresTokenStore.open(
                location: try PostgresLocation(parsing: try await SharedPostgresCluster.freshDatabase()),
                password: nil,
                logger: StoreFixtures.quietLogger,
                eventRetention: eventRetention,
                // Generous: these tests are about contracts, not deadlines, and a loaded
                // machine must not turn a slow answer into a failure.
                operationTimeout: .seconds(30),
                maximumConnections: 4
            )
        }
        do {
            let result = try await body(store)
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
        }
    }
}

/// `withStore`, with family fam-1 (`StoreFixtures.family()`) started with its active token
/// "rt-0", which `body` gets.
func withFamily<T>(
    _ kind: StoreKind,
    _ body: (any TokenStore & UserStore, RefreshTokenRecord) async throws -> T
) async throws -> T {
    try await withStore(kind) { store in
        let first = StoreFixtures.activeToken("rt-0")
        try await store.createRefreshFamily(StoreFixtures.family(), firstToken: first)
        return try await body(store, first)
    }
}

/// What `decide` saw, returned as the outcome of a read-only `updateRefreshToken`.
struct Seen: Sendable, Equatable {
    var token: RefreshTokenRecord?
    var family: RefreshFamily?
}

extension TokenStore {
    /// The stored token with `hash` and its family, through `updateRefreshToken` with no change.
    func peek(_ hash: [UInt8], now: Double = StoreFixtures.now) async throws -> Seen {
        try await updateRefreshToken(hash: hash, now: now) { token, family in
            RefreshDecision(change: .none, outcome: Seen(token: token, family: family))
        }
    }

    /// Every event, oldest first.
    func allEvents() async throws -> [TokenEvent] {
        try await events(after: 0, limit: 10_000)
    }
}

/// A rotation of `token` to the successor `next` (plaintext), as TokenService would decide it.
func rotation<Outcome: Sendable>(
    of token: RefreshTokenRecord,
    to next: String,
    at now: Double,
    accessJTI: String,
    accessLifetime: Double = 3600
) -> RefreshDecision<Outcome>.Change {
    let successor = RefreshTokenRecord(
        hash: StoreFixtures.hash(next),
        familyID: token.familyID,
        state: .active,
        createdAt: now
    )
    var spent = token
    spent.state = .spent
    spent.spentAt = now
    spent.successorHash = successor.hash
    spent.successorSealed = Array("sealed successor of \(next)".utf8)
    return .rotate(spent: spent, successor: successor, accessJTI: accessJTI, accessExpiresAt: now + accessLifetime)
}
