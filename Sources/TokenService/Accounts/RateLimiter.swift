/// Fixed-window counters per key (an email, an IP, an identifier), as the seed's
/// sign-up limits describe: at most `limit` events per `window` seconds. Sharded; old
/// windows are dropped as they are met.
public final class RateLimiter: Sendable {
    public struct Rule: Sendable, Equatable {
        public var limit: Int
        public var window: Double

        public init(limit: Int, window: Double) {
            self.limit = limit
            self.window = window
        }
    }

    private struct Window: Sendable {
        var start: Double
        var count: Int
    }

    private static let shardCount = 16
    private let maxKeysPerShard: Int
    private let rule: Rule
    private let shards: [LockedBox<[String: Window]>]

    /// `maxKeysPerShard` (of 16 shards) bounds the memory of a spray of distinct keys.
    public init(_ rule: Rule, maxKeysPerShard: Int = 65_536) {
        self.rule = rule
        self.maxKeysPerShard = max(2, maxKeysPerShard)
        shards = (0..<RateLimiter.shardCount).map { _ in LockedBox([:]) }
    }

    private func shard(_ key: String) -> LockedBox<[String: Window]> {
        var hasher = Hasher()
        hasher.combine(key)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(RateLimiter.shardCount))]
    }

    /// Counts one event for `key`. Returns nil when allowed, else the seconds until the
    /// window ends (for `Retry-After`). A limit of 0 disables the rule.
    public func take(_ key: String, now: Double) -> Double? {
        guard rule.limit > 0 else { return nil }
        let rule = self.rule
        let maxKeys = maxKeysPerShard
        return shard(key).withLock { windows -> Double? in
            if windows.count >= maxKeys {
                windows = windows.filter { now < $0.value.start + rule.window }
                // Still full of live windows (someone spraying keys): keep memory and the cost
                // of this pass bounded by dropping half, the lowest counts first (the oldest of
                // equal counts). A window at or near its limit is the last to go: spraying fresh
                // keys cannot push out the counter of an account under attack.
                if windows.count >= maxKeys {
                    let kept = windows.sorted {
                        $0.value.count != $1.value.count
                            ? $0.value.count > $1.value.count : $0.value.start > $1.value.start
                    }
                    .prefix(maxKeys / 2)
                    windows = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
                }
            }
            var window = windows[key] ?? Window(start: now, count: 0)
            if now >= window.start + rule.window { window = Window(start: now, count: 0) }
            guard window.count < rule.limit else { return window.start + rule.window - now }
            window.count += 1
            windows[key] = window
            return nil
        }
    }

    /// Whether `key` is over the limit now, without counting.
    public func blocked(_ key: String, now: Double) -> Double? {
        guard rule.limit > 0 else { return nil }
        let rule = self.rule
        return shard(key).withLock { windows -> Double? in
            guard let window = windows[key], now < window.start + rule.window, window.count >= rule.limit else {
                return nil
            }
            return window.start + rule.window - now
        }
    }

    /// Takes back one event counted by `take(key, now: takenAt)` (an attempt that turned out
    /// not to be a failure), unless its window has ended since.
    public func refund(_ key: String, takenAt: Double) {
        guard rule.limit > 0 else { return }
        let rule = self.rule
        shard(key).withLock { windows in
            guard var window = windows[key], window.start <= takenAt, takenAt < window.start + rule.window,
                window.count > 0
            else { return }
            window.count -= 1
            // A window refunded to nothing takes no room (keys whose every attempt was refunded,
            // an overloaded hashing pool's, would otherwise pile up and crowd out real ones).
            windows[key] = window.count == 0 ? nil : window
        }
    }
}
