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

    @Test("a spray of fresh keys cannot push out a counter at its limit; refunded keys take no room")
    func sprayKeepsBlockedCounters() {
        let limiter = RateLimiter(.init(limit: 10, window: 900), maxKeysPerShard: 64)
        for n in 0..<10 { #expect(limiter.take("alice", now: 100 + Double(n)) == nil) }
        #expect(limiter.blocked("alice", now: 120) != nil)
        // 16 shards of 64 keys, sprayed four times over with keys counted once each.
        for n in 0..<4096 { _ = limiter.take("spray-\(n)", now: 130) }
        #expect(limiter.blocked("alice", now: 140) != nil, "the attacked account is still limited")
        // Keys whose attempts were all refunded (an overloaded hashing pool) leave nothing.
        for n in 0..<4096 {
            _ = limiter.take("refunded-\(n)", now: 150)
            limiter.refund("refunded-\(n)", takenAt: 150)
        }
        #expect(limiter.blocked("alice", now: 160) != nil)
    }
}
