import Logging
import TokenStore

/// One of the account rate limits (sign-ups per email and per address, sign-in failures per
/// account and per address): counted in memory on one host (`RateLimiter`), in the store when
/// a fleet shares it (`SharedRateWindows`), so that attempts alternating between nodes count
/// in one window.
struct AccountLimit: Sendable {
    /// The rule's name in the shared store.
    let name: String
    let rule: RateLimiter.Rule
    let local: RateLimiter
    let shared: (any SharedRateWindows)?
    let logger: Logger

    init(_ name: String, _ rule: RateLimiter.Rule, shared: (any SharedRateWindows)?, logger: Logger) {
        self.name = name
        self.rule = rule
        self.local = RateLimiter(rule)
        self.shared = shared
        self.logger = logger
    }

    /// Counts one attempt: nil when allowed, else the seconds until the window ends. A store
    /// that cannot count answers `.unavailable` (503): the limit is never skipped.
    func take(_ key: String, now: Double) async throws(AccountError) -> Double? {
        guard let shared else { return local.take(key, now: now) }
        do {
            return try await shared.take(rule: name, key: key, limit: rule.limit, window: rule.window, now: now)
        } catch {
            logger.error("cannot count a rate-limited attempt", metadata: ["limit": "\(name)", "error": "\(error)"])
            throw .unavailable()
        }
    }

    /// Takes back an attempt that was not a failure. A refund the store cannot make leaves
    /// one attempt too many counted, which errs on the safe side.
    func refund(_ key: String, takenAt: Double) async {
        guard let shared else { return local.refund(key, takenAt: takenAt) }
        do {
            try await shared.refund(rule: name, key: key, limit: rule.limit, window: rule.window, takenAt: takenAt)
        } catch {
            logger.warning("cannot refund a rate-limited attempt", metadata: ["limit": "\(name)", "error": "\(error)"])
        }
    }
}
