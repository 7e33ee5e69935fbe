import Metrics
import NIOCore
import Synchronization

/// The open connections of one server, across its event loops: enforces the connection cap,
/// feeds the `tokend_http_connections` gauge, and drives the drain at shutdown.
final class ConnectionRegistry: Sendable {
    enum Admission {
        case accepted
        case overCapacity
        case shuttingDown
    }

    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var waiters: [CheckedContinuation<Void, Never>] = []
        var quiescing = false
    }

    private let state = Mutex(State())
    private let limit: Int
    private let gauge: Gauge

    init(limit: Int, metricsFactory: any MetricsFactory) {
        self.limit = limit
        self.gauge = Gauge(label: HTTPMetrics.connectionsLabel, factory: metricsFactory)
    }

    var count: Int { state.withLock { $0.channels.count } }

    /// Admits a new connection unless the cap is reached or the server is shutting down.
    func admit(_ channel: any Channel) -> Admission {
        let (admission, count) = state.withLock { state -> (Admission, Int) in
            if state.quiescing { return (.shuttingDown, state.channels.count) }
            if state.channels.count >= limit { return (.overCapacity, state.channels.count) }
            state.channels[ObjectIdentifier(channel)] = channel
            return (.accepted, state.channels.count)
        }
        if admission == .accepted { gauge.record(count) }
        return admission
    }

    func remove(_ channel: any Channel) {
        let (waiters, count) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Int) in
            state.channels[ObjectIdentifier(channel)] = nil
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
            return Array(state.channels.values)
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Closes every open connection now.
    func closeAll() {
        let channels = state.withLock { Array($0.channels.values) }
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
