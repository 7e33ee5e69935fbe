import Testing
import TokenStore
import TokenTestSupport

@testable import TokenService

/// Last sign-in times are written behind, but every read through the account service sees
/// them at once, and a flush writes them all in one batch.
@Suite("Sign-in times written behind")
struct SignInTimesTests {
    @Test("a recorded time is read back at once and reaches the store on flush, keeping the latest")
    func recordReadFlush() async throws {
        let store = InMemoryTokenStore()
        let user = try await store.createUser(StoreFixtures.newUser(1))
        let times = SignInTimes(store: store, interval: .seconds(3600)) { error in Issue.record("\(error)") }
        times.record(publicID: user.publicID, at: 1_900_000_010)
        times.record(publicID: user.publicID, at: 1_900_000_005)  // an older time never wins
        #expect(try await times.user(publicID: user.publicID)?.lastLoginAt == 1_900_000_010)
        #expect(try await times.users(matching: UserQuery()).first?.lastLoginAt == 1_900_000_010)
        #expect(try await store.user(publicID: user.publicID)?.lastLoginAt == nil)
        await times.flush()
        #expect(try await store.user(publicID: user.publicID)?.lastLoginAt == 1_900_000_010)
        // Nothing pending: a second flush writes nothing.
        let events = await store.allEvents.count
        await times.flush()
        #expect(await store.allEvents.count == events)
    }

    @Test("without an explicit flush the time is written within the interval")
    func writtenBehind() async throws {
        let store = InMemoryTokenStore()
        let user = try await store.createUser(StoreFixtures.newUser(2))
        let times = SignInTimes(store: store, interval: .milliseconds(50)) { error in Issue.record("\(error)") }
        times.record(publicID: user.publicID, at: 1_900_000_020)
        var written: Double?
        for _ in 0..<100 where written == nil {
            try await Task.sleep(for: .milliseconds(20))
            written = try await store.user(publicID: user.publicID)?.lastLoginAt
        }
        #expect(written == 1_900_000_020)
    }
}
