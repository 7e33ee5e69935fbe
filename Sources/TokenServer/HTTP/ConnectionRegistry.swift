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

    /// What to do about the log line of a connection refused at the cap.
    enum RefusalReport: Equatable {
        /// Write the line now: this many connections were refused since the last one.
        case log(refused: Int)
        /// Counted; a line is due at this deadline (schedule `takeRefusals` for it).
        case logAt(NIODeadline)
        /// Counted; a line is already scheduled.
        case counted
    }

    /// Refusals at the cap not logged yet, and when the last line was written.
    private struct RefusalLog {
        var unlogged = 0
        var lastLine: NIODeadline?
        var lineScheduled = false
    }

    private let state = Mutex(State())
    private let refusals = Mutex(RefusalLog())
    private let limit: Int
    private let gauge: Gauge
    /// At most one log line of refused connections per interval, however many are refused.
    let refusalLogInterval: TimeAmount

    init(limit: Int, metricsFactory: any MetricsFactory, refusalLogInterval: TimeAmount = .seconds(10)) {
        self.limit = limit
        self.gauge = Gauge(label: HTTPMetrics.connectionsLabel, factory: metricsFactory)
        self.refusalLogInterval = refusalLogInterval
    }

    /// Counts a connection refused at the cap: the first after a quiet interval is logged at
    /// once, the ones after it together once the interval has passed (a flood of refused
    /// connections must not become a flood of log lines).
    func recordRefusal(now: NIODeadline = .now()) -> RefusalReport {
        refusals.withLock { log in
            log.unlogged += 1
            if let last = log.lastLine, now < last + refusalLogInterval {
                if log.lineScheduled { return .counted }
                log.lineScheduled = true
                return .logAt(last + refusalLogInterval)
            }
            defer { log.unlogged = 0 }
            log.lastLine = now
            return .log(refused: log.unlogged)
        }
    }

    /// The refusals counted since the last line, for the line scheduled by `recordRefusal`.
    func takeRefusals(now: NIODeadline = .now()) -> Int {
        refusals.withLock { log in
            defer { log.unlogged = 0 }
            log.lineScheduled = false
            if log.unlogged > 0 { log.lastLine = now }
            return log.unlogged
        }
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
