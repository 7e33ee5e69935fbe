import Synchronization
import TokenService
import TokenTestSupport

/// A clock the test moves by hand: seconds since the epoch, starting at `StoreFixtures.now`.
final class TestClock: Sendable {
    private let value: Mutex<Double>

    init(_ start: Double = StoreFixtures.now) { value = Mutex(start) }

    var now: Double { value.withLock { $0 } }

    func advance(by seconds: Double) { value.withLock { $0 += seconds } }

    func set(_ seconds: Double) { value.withLock { $0 = seconds } }

    /// The `ServiceClock` that reads this clock.
    var serviceClock: ServiceClock { ServiceClock(now: { [self] in now }, uptime: { [self] in now }) }
}
