import Testing
import TokenStore
import TokenTestSupport

@testable import TokenService

/// Last sign-in times are written behind, but every read through the account service sees
/// them at once, and a flush writes them all in one batch.
@Suite("Sign-in times written behind")
struct SignInTimesTests {
    /// A store with one user, and the write-behind layer over it flushing every `interval`.
    private static func make(
        user index: Int,
        interval: Duration
    ) async throws
        -> (store: InMemoryTokenStore, publicID: String, times: SignInTimes)
    {
        let store = InMemoryTokenStore()
        let user = try await store.createUser(StoreFixtures.newUser(index))
        let times = SignInTimes(store: store, interval: interval) { error in Issue.record("\(error)") }
        return (store, user.publicID, times)
    }

    @Test("a recorded time is read back at once and reaches the store on flush, keeping the latest")
    func recordReadFlush() async throws {
        let (store, publicID, times) = try await Self.make(user: 1, interval: .seconds(3600))
        times.record(publicID: publicID, at: 1_900_000_010)
        times.record(publicID: publicID, at: 1_900_000_005)  // an older time never wins
        #expect(try await times.user(publicID: publicID)?.lastLoginAt == 1_900_000_010)
        #expect(try await times.users(matching: UserQuery()).first?.lastLoginAt == 1_900_000_010)
        #expect(try await store.user(publicID: publicID)?.lastLoginAt == nil)
        await times.flush()
        #expect(try await store.user(publicID: publicID)?.lastLoginAt == 1_900_000_010)
        // Nothing pending: a second flush writes nothing.
        let events = await store.allEvents.count
        await times.flush()
        #expect(await store.allEvents.count == events)
    }

    @Test("without an explicit flush the time is written within the interval")
    func writtenBehind() async throws {
        let (store, publicID, times) = try await Self.make(user: 2, interval: .milliseconds(50))
        times.record(publicID: publicID, at: 1_900_000_020)
        var written: Double?
        for _ in 0..<100 where written == nil {
            try await Task.sleep(for: .milliseconds(20))
            written = try await store.user(publicID: publicID)?.lastLoginAt
        }
        #expect(written == 1_900_000_020)
    }
}
