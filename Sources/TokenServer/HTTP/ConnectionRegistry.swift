import Metrics
import NIOCore
import Synchronization

/// The open connections of one server, across its event loops: enforces each listener's
/// connection cap, feeds the `tokend_http_connections` gauge, and drives the drain at shutdown.
final class ConnectionRegistry: Sendable {
    enum Admission {
        case accepted
        case overCapacity
        case shuttingDown
    }

    private struct State {
        /// Every open connection and the index of the listener that accepted it.
        var channels: [ObjectIdentifier: (channel: any Channel, listener: Int)] = [:]
        /// Open connections per listener.
        var open: [Int]
        var waiters: [CheckedContinuation<Void, Never>] = []
        var quiescing = false
    }

    private let state: Mutex<State>
    /// The cap of each listener, by listener index.
    private let limits: [Int]
    private let gauge: Gauge

    /// `limits`: the connection cap of each listener, in listener order. Each listener has its
    /// own: connections of one never take the room of another (the admin socket stays usable
    /// while API clients hold every API slot).
    init(limits: [Int], metricsFactory: any MetricsFactory) {
        self.limits = limits
        self.state = Mutex(State(open: Array(repeating: 0, count: limits.count)))
        self.gauge = Gauge(label: HTTPMetrics.connectionsLabel, factory: metricsFactory)
    }

    /// Open connections across all listeners.
    var count: Int { state.withLock { $0.channels.count } }

    /// Admits a new connection of listener `listener` unless its cap is reached or the server
    /// is shutting down.
    func admit(_ channel: any Channel, listener: Int) -> Admission {
        let (admission, count) = state.withLock { state -> (Admission, Int) in
            if state.quiescing { return (.shuttingDown, state.channels.count) }
            if state.open[listener] >= limits[listener] { return (.overCapacity, state.channels.count) }
            state.channels[ObjectIdentifier(channel)] = (channel, listener)
            state.open[listener] += 1
            return (.accepted, state.channels.count)
        }
        if admission == .accepted { gauge.record(count) }
        return admission
    }

    func remove(_ channel: any Channel) {
        let (waiters, count) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Int) in
            if let removed = state.channels.removeValue(forKey: ObjectIdentifier(channel)) {
                state.open[removed.listener] -= 1
            }
            guard state.channels.isEmpty else { return ([], state.channels.count) }
            defer { state.waiters = [] }
            return (state.waiters, 0)
        }
        gauge.record(count)
        for waiter in waiters { waiter.resume() }
    }

    /// Stops admitting connections and asks every open one to finish its current request and
    /// close (`ChannelShouldQuiesceEvent`, honoured by `HTTPConnectionHandler`).
    func quiesce() {
        let channels = state.withLock { state in
            state.quiescing = true
            return state.channels.values.map(\.channel)
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Closes every open connection now.
    func closeAll() {
        let channels = state.withLock { $0.channels.values.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Returns once no connection is open.
    func waitUntilEmpty() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.channels.isEmpty { return true }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
