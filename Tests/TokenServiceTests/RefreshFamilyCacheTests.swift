import Testing
import TokenStore
import TokenTestSupport

@testable import TokenService

/// The node's memory of which family each refresh token it handed out belongs to: bounded,
/// and a rotation replaces the spent token by its successor.
@Suite("RefreshFamilyCache")
struct RefreshFamilyCacheTests {
    @Test("a rotation forgets the spent token and remembers its successor")
    func rotationReplaces() {
        let cache = RefreshFamilyCache(capacity: 16)
        let family = StoreFixtures.family()
        cache.remember(StoreFixtures.hash("rt-0"), family: family)
        #expect(cache.family(of: StoreFixtures.hash("rt-0")) == family)
        cache.remember(StoreFixtures.hash("rt-1"), family: family, replacing: StoreFixtures.hash("rt-0"))
        #expect(cache.family(of: StoreFixtures.hash("rt-0")) == nil)
        #expect(cache.family(of: StoreFixtures.hash("rt-1")) == family)
        cache.forget(StoreFixtures.hash("rt-1"))
        #expect(cache.count == 0)
    }

    @Test("never holds more than its capacity, and keeps the newest tokens")
    func bounded() {
        let cache = RefreshFamilyCache(capacity: 100)
        for index in 0..<1_000 {
            cache.remember(StoreFixtures.hash("rt-\(index)"), family: StoreFixtures.family(id: "fam-\(index)"))
            #expect(cache.count <= 100)
        }
        for index in 950..<1_000 {
            #expect(cache.family(of: StoreFixtures.hash("rt-\(index)"))?.id == "fam-\(index)")
        }
        #expect(cache.family(of: StoreFixtures.hash("rt-0")) == nil)
    }

    @Test("anything but a 32-byte hash is neither kept nor found")
    func onlyHashes() {
        let cache = RefreshFamilyCache(capacity: 16)
        cache.remember(Array("short".utf8), family: StoreFixtures.family())
        #expect(cache.count == 0)
        #expect(cache.family(of: []) == nil)
    }
}
