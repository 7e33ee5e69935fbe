import NIOCore
import Synchronization

/// Counts events that each deserve a log line (a connection refused at the cap, one closed at
/// a request deadline) and says when to write one: the first after a quiet interval at once,
/// the ones after it together once the interval has passed. A flood of such events must not
/// become a flood of log lines.
final class IntervalLog: Sendable {
    /// What to do about the log line of one event.
    enum Report: Equatable {
        /// Write the line now: this many events happened since the last one.
        case log(count: Int)
        /// Counted; a line is due at this deadline (schedule ``take(now:)`` for it).
        case logAt(NIODeadline)
        /// Counted; a line is already scheduled.
        case counted
    }

    /// Events since the last line; while that is more than zero within an interval, a line is
    /// scheduled for them (so no flag says so).
    private struct State {
        var unlogged = 0
        var lastLine: NIODeadline?
    }

    private let state = Mutex(State())
    /// At most one line per interval, however many events.
    let interval: TimeAmount

    init(interval: TimeAmount = .seconds(10)) {
        self.interval = interval
    }

    /// Counts one event.
    func record(now: NIODeadline = .now()) -> Report {
        state.withLock { log in
            log.unlogged += 1
            if let last = log.lastLine, now < last + interval {
                return log.unlogged > 1 ? .counted : .logAt(last + interval)
            }
            defer { log.unlogged = 0 }
            log.lastLine = now
            return .log(count: log.unlogged)
        }
    }

    /// The events counted since the last line, for the line scheduled by ``record(now:)``.
    func take(now: NIODeadline = .now()) -> Int {
        state.withLock { log in
            defer { log.unlogged = 0 }
            if log.unlogged > 0 { log.lastLine = now }
            return log.unlogged
        }
    }

    /// Counts one event and writes `line` (with the count) now or when it is due, scheduled on
    /// `eventLoop`.
    func record(on eventLoop: any EventLoop, _ line: @escaping @Sendable (_ count: Int) -> Void) {
        switch record() {
        case .log(let count):
            line(count)
        case .logAt(let deadline):
            eventLoop.scheduleTask(deadline: deadline) {
                let count = self.take()
                if count > 0 { line(count) }
            }
        case .counted:
            break
        }
    }

    /// The interval in whole seconds, for log lines.
    var intervalSeconds: Int64 { interval.nanoseconds / 1_000_000_000 }
}
