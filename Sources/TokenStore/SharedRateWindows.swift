/// Fixed-window counters that every node of a fleet shares (DESIGN §10, issue 11 item 5):
/// the account rate limits count attempts made on any node, in the same windows the seed's
/// documents describe (a window opens at its first attempt and lasts `window` seconds; at
/// most `limit` attempts count in it). Stores that several processes share implement it;
/// on one host the limits count in memory.
public protocol SharedRateWindows: Sendable {
    /// Counts one attempt of `key` under the rule named `rule`. Returns nil when it is
    /// allowed, else the seconds until the window ends (`Retry-After`). Atomic across nodes:
    /// of concurrent attempts, at most `limit` are allowed per window.
    func take(rule: String, key: String, limit: Int, window: Double, now: Double) async throws -> Double?

    /// Takes back one attempt that `take(…, now: takenAt)` allowed (it turned out not to be a
    /// failure), unless its window has ended since.
    func refund(rule: String, key: String, limit: Int, window: Double, takenAt: Double) async throws
}
