import Testing
import TokenService

@Suite("RateLimiter: fixed windows, refunds")
struct RateLimiterTests {
    @Test("a refund gives one event back within its window, never into the next")
    func refund() {
        let limiter = RateLimiter(.init(limit: 2, window: 10))
        #expect(limiter.take("k", now: 100) == nil)
        #expect(limiter.take("k", now: 101) == nil)
        #expect(limiter.take("k", now: 102) == 8)
        limiter.refund("k", takenAt: 101)
        #expect(limiter.take("k", now: 103) == nil, "the refunded event is free again")
        #expect(limiter.take("k", now: 104) == 6)
        // A refund of an event of a window that has ended leaves the new window alone.
        #expect(limiter.take("k", now: 110) == nil)
        #expect(limiter.take("k", now: 111) == nil)
        limiter.refund("k", takenAt: 105)
        #expect(limiter.take("k", now: 112) == 8)
        // Refunding more than was taken never goes below zero.
        for _ in 0..<5 { limiter.refund("other", takenAt: 100) }
        #expect(limiter.take("other", now: 100) == nil)
        #expect(limiter.take("other", now: 100) == nil)
        #expect(limiter.take("other", now: 100) == 10)
    }
}
