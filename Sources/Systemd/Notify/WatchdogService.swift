public import ServiceLifecycle

/// Sends `WATCHDOG=1` every ``interval`` until graceful shutdown.
///
/// Without a watchdog (no interval, or an inert notifier) it sends nothing and simply waits for
/// graceful shutdown, so that it never ends a ``ServiceGroup`` early. Put it first in the group's
/// service list: services stop in reverse order, so the watchdog keeps pinging while the others drain.
public struct WatchdogService: Service {
    /// Where the pings go.
    public let notifier: SystemdNotifier
    /// The time between pings: the explicit one, else the notifier's ``SystemdNotifier/watchdogInterval``.
    public let interval: Duration?

    /// - Parameters:
    ///   - notifier: the notifier to ping through.
    ///   - interval: overrides ``SystemdNotifier/watchdogInterval`` (tests use a short one).
    public init(notifier: SystemdNotifier, interval: Duration? = nil) {
        self.notifier = notifier
        self.interval = interval ?? notifier.watchdogInterval
    }

    public func run() async throws {
        guard let interval = self.interval, interval > .zero, self.notifier.isEnabled else {
            // Nothing to do, but returning would end the whole group: wait for shutdown instead.
            try? await gracefulShutdown()
            return
        }
        let notifier = self.notifier
        do {
            try await cancelWhenGracefulShutdown {
                let clock = ContinuousClock()
                var deadline = clock.now
                while true {
                    notifier.watchdog()
                    deadline = deadline.advanced(by: interval)
                    let now = clock.now
                    if deadline < now {
                        // Suspended for longer than an interval: ping again at once, don't catch up.
                        deadline = now
                    }
                    try await Task.sleep(until: deadline, clock: clock)
                }
            }
        } catch is CancellationError {
            // Graceful shutdown or cancellation: stop pinging.
        }
    }
}
