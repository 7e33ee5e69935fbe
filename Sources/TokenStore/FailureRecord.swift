import Synchronization

/// Why a store cannot do something (write, reach its database), from the first failure until
/// an operation succeeds again; each change is for its caller to log once. Also paces the
/// store's own retries (`health()` tries a write at most once a second while writes fail).
/// Shared by the SQLite and PostgreSQL stores.
package final class FailureRecord: Sendable {
    private let reason = Mutex<String?>(nil)
    private let lastProbe = Mutex<ContinuousClock.Instant?>(nil)
    private let lastSuccess = Mutex<ContinuousClock.Instant?>(nil)

    package init() {}

    /// The current failure's reason, or nil while things work.
    package var current: String? { reason.withLock { $0 } }

    /// Records `newReason`; returns the reason it replaces (nil: this is a new failure).
    @discardableResult
    package func fail(_ newReason: String) -> String? {
        reason.withLock { reason in
            defer { reason = newReason }
            return reason
        }
    }

    /// Clears the failure; returns the reason it had (nil: nothing was failing).
    @discardableResult
    package func succeed() -> String? {
        let now = ContinuousClock.now
        lastSuccess.withLock { $0 = now }
        return reason.withLock { reason in
            defer { reason = nil }
            return reason
        }
    }

    /// Whether an operation that began at `instant` and then failed is older news than a
    /// success since: an operation stuck through an outage that fails after the recovery
    /// was noted must not reopen it (and log the outage and the recovery a second time).
    package func succeeded(since instant: ContinuousClock.Instant) -> Bool {
        lastSuccess.withLock { last in last.map { $0 > instant } ?? false }
    }

    /// Whether a second has passed since the last probe (and records this one).
    package func probeIsDue() -> Bool {
        let now = ContinuousClock.now
        return lastProbe.withLock { last -> Bool in
            if let last, now - last < .seconds(1) { return false }
            last = now
            return true
        }
    }
}
