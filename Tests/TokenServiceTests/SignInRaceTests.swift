import CodedErrors
import PasswordHashing
import Synchronization
import Testing
import TokenService
import TokenStore
import TokenTestSupport

/// Issue 10, finding 1: a deactivation, password change or sign-out that lands while a
/// sign-in is hashing its password wins. The sign-in is paused deterministically where it
/// reads the user again after hashing, once before and once after that read.
@Suite("Sign-in racing a sign-out")
struct SignInRaceTests {
    enum Action: String, CaseIterable, Sendable {
        case deactivate, changePassword, logout
    }

    enum PausePoint: String, CaseIterable, Sendable {
        /// The re-read sees the change.
        case beforeReread
        /// The re-read returns the user as it was; only the issuance ticket can refuse.
        case afterReread
    }

    @Test(
        "a sign-in whose password check straddles a sign-out issues no token",
        arguments: Action.allCases,
        PausePoint.allCases
    )
    func straddlingSignInFails(action: Action, pause: PausePoint) async throws {
        let fixture = try await Fixture.make()
        let store = fixture.pausing
        store.arm(pause)
        async let attempt = fixture.signIn()
        await store.waitUntilPaused()
        switch action {
        case .deactivate: _ = try await fixture.accounts.setActive(fixture.user.publicID, false)
        case .changePassword: _ = try await fixture.accounts.setPassword(fixture.user.publicID, "a-new-password")
        case .logout: try await fixture.accounts.logout(fixture.user.publicID)
        }
        store.release()
        let outcome = await attempt
        switch outcome {
        case .success(let tokens):
            Issue.record("sign-in after \(action) succeeded")
            #expect(fixture.harness.service.introspect(tokens.accessToken).activeToken == nil)
        case .failure(let error):
            // The password was right: after a plain sign-out the client is told to try again.
            let expected: AccountError.Code =
                switch action {
                case .deactivate: .inactive
                case .changePassword: .invalidCredentials
                case .logout: .unavailable
                }
            #expect(error.code == expected)
        }
    }

    @Test("a sign-in that starts after a sign-out ends gets an active token")
    func signInAfterSignOut() async throws {
        let fixture = try await Fixture.make()
        try await fixture.accounts.logout(fixture.user.publicID)
        let tokens = try await fixture.signIn().get()
        #expect(fixture.harness.service.introspect(tokens.accessToken).activeToken != nil)
        // The paused path with nothing happening meanwhile succeeds too.
        fixture.pausing.arm(.afterReread)
        async let again = fixture.signIn()
        await fixture.pausing.waitUntilPaused()
        fixture.pausing.release()
        let second = try await again.get()
        #expect(fixture.harness.service.introspect(second.accessToken).activeToken != nil)
    }

    @Test("a token minted before a cutoff begins is covered even when the clock stepped back")
    func cutoffCoversEarlierTokensWhateverTheClock() async throws {
        let harness = try await Harness.make()
        harness.clock.set(StoreFixtures.now + 0.9)
        let tokens = try await harness.issue("alice")
        harness.clock.set(StoreFixtures.now - 5)
        try await harness.service.logout(subject: "alice")
        #expect(harness.service.introspect(tokens.accessToken).activeToken == nil)
        let after = try await harness.issue("alice")
        #expect(harness.service.introspect(after.accessToken).activeToken != nil)
    }

    @Test("a refresh whose cutoff moved before minting is refused")
    func refreshTicketRefused() async throws {
        let harness = try await Harness.make()
        let first = try await harness.issue("alice", refresh: true)
        let ticket = harness.service.revocations.ticket(subject: "alice")
        try await harness.service.logout(subject: "alice")
        #expect(
            harness.service.revocations.reserveIssuance(subject: "alice", ticket: ticket, now: harness.clock.now) == nil
        )
        let refreshed = await harness.service.refresh(token: try #require(first.refreshToken))
        #expect((try? refreshed.get()) == nil)
    }
}

/// An AccountService over memory whose user store can pause the sign-in's re-read.
private struct Fixture {
    let harness: Harness
    let pausing: PausingUserStore
    let accounts: AccountService
    let user: UserRecord
    static let password = "the-right-password"

    static func make() async throws -> Fixture {
        let store = InMemoryTokenStore()
        let harness = try await Harness.make(store: store)
        let hasher = try PasswordHasher(
            .init(parameters: .unsafeTestingParameters(memoryKiB: 64, iterations: 1), workers: 2)
        )
        let user = try await store.createUser(
            NewUser(
                publicID: StoreFixtures.publicID(1),
                username: "alice",
                email: "alice@example.com",
                passwordHash: try await hasher.hash(password),
                createdAt: StoreFixtures.now
            )
        )
        let pausing = PausingUserStore(store)
        let accounts = AccountService(
            users: pausing,
            tokens: harness.service,
            hasher: hasher,
            clock: harness.clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
        return Fixture(harness: harness, pausing: pausing, accounts: accounts, user: user)
    }

    func signIn() async -> Result<IssuedTokens, AccountError> {
        do throws(AccountError) {
            return .success(
                try await accounts.signIn(
                    .username("alice"),
                    password: Fixture.password,
                    clientAddress: "t",
                    dialect: .v1
                )
                .tokens
            )
        } catch {
            return .failure(error)
        }
    }
}

/// Forwards to a store; once armed, the next read by public id (the sign-in's re-read after
/// hashing) stops before or after reading until released.
private final class PausingUserStore: UserStore {
    let inner: any UserStore
    private let armed = Mutex<SignInRaceTests.PausePoint?>(nil)
    private let paused: AsyncStream<Void>
    private let pausedSignal: AsyncStream<Void>.Continuation
    private let released: AsyncStream<Void>
    private let releaseSignal: AsyncStream<Void>.Continuation

    init(_ inner: any UserStore) {
        self.inner = inner
        (paused, pausedSignal) = AsyncStream.makeStream()
        (released, releaseSignal) = AsyncStream.makeStream()
    }

    func arm(_ point: SignInRaceTests.PausePoint) { armed.withLock { $0 = point } }

    func waitUntilPaused() async {
        var iterator = paused.makeAsyncIterator()
        _ = await iterator.next()
    }

    func release() { releaseSignal.yield() }

    private func stop() async {
        pausedSignal.yield()
        var iterator = released.makeAsyncIterator()
        _ = await iterator.next()
    }

    func user(publicID: String) async throws -> UserRecord? {
        let point = armed.withLock { point in
            defer { point = nil }
            return point
        }
        if point == .beforeReread { await stop() }
        let found = try await inner.user(publicID: publicID)
        if point == .afterReread { await stop() }
        return found
    }

    func createUser(_ user: NewUser) async throws -> UserRecord { try await inner.createUser(user) }
    func user(numericID: Int64) async throws -> UserRecord? { try await inner.user(numericID: numericID) }
    func user(email: String) async throws -> UserRecord? { try await inner.user(email: email) }
    func user(username: String) async throws -> UserRecord? { try await inner.user(username: username) }
    func users(matching query: UserQuery) async throws -> [UserRecord] { try await inner.users(matching: query) }
    func updateUser(publicID: String, _ change: UserChange) async throws -> UserRecord? {
        try await inner.updateUser(publicID: publicID, change)
    }
}
