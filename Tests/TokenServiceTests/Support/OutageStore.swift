import Synchronization
import TokenStore
import TokenTestSupport

/// A store that answers from an `InMemoryTokenStore` until `failing` is set, and from then on
/// as a `FailingTokenStore` (every call throws `.unavailable`) until it is cleared: a disk
/// that goes away under a running service and comes back.
final class OutageStore: ForwardingTokenStore {
    let healthy: InMemoryTokenStore
    let broken = FailingTokenStore()
    private let down = Mutex(false)

    init(_ healthy: InMemoryTokenStore = InMemoryTokenStore()) { self.healthy = healthy }

    var failing: Bool {
        get { down.withLock { $0 } }
        set { down.withLock { $0 = newValue } }
    }

    var forwarded: any TokenStore { failing ? broken : healthy }
}
