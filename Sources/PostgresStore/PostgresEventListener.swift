import CodedErrors
import Logging
import NIOPosix
import PostgresNIO
import TokenStore

/// The one connection a node LISTENs on for the fleet's changes (DESIGN §10, issue 12), and
/// keeps listening on: postgres-nio does not reconnect a listener, this does.
///
/// A notification only wakes the follower, which then reads from its own cursor; so does every
/// (re)connection, once its `LISTEN` is in place (what was committed while nobody listened is
/// read then). The connection is pinged every few seconds, with a deadline, so that one whose
/// peer went silent (a cut network, where no reset ever arrives) is closed and replaced rather
/// than waited on for TCP's minutes. The follower reads at least once a second whatever this
/// connection does: a notification lost here delays a change, never loses it.
public final class PostgresEventListener: Sendable {
    /// Why the follower is woken.
    public enum Wake: Sendable, Equatable {
        /// `LISTEN` is in place on a new connection: catch up now.
        case listening
        /// A followed event was committed somewhere.
        case notified
    }

    let location: PostgresLocation
    let password: String?
    let logger: Logger
    let pingInterval: Duration
    /// postgres-nio's own logging stays off: its messages may quote queries and bound values.
    private let quiet = Logger(label: "tokend.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The `application_name` the listening connection shows in `pg_stat_activity`.
    public var applicationName: String { location.applicationName + " listener" }

    public init(store: PostgresTokenStore, pingInterval: Duration = .seconds(5)) {
        self.location = store.location
        self.password = store.password
        self.logger = store.logger
        self.pingInterval = pingInterval
    }

    /// Listens until cancelled, reconnecting after every failure (after 0.1 s, doubling up to
    /// 2 s while it keeps failing); calls `wake` once `LISTEN` is in place on each connection
    /// and once per notification. Logs the first failure and the recovery, once each.
    public func run(_ wake: @escaping @Sendable (Wake) -> Void) async {
        var delay = Duration.milliseconds(100)
        var failing: String?
        while !Task.isCancelled {
            do {
                try await listenOnce {
                    if let previous = failing {
                        self.logger.notice(
                            "listening for the fleet's changes again",
                            metadata: ["store": "\(self.location)", "failed_with": "\(previous)"]
                        )
                        failing = nil
                    }
                    delay = .milliseconds(100)
                    wake(.listening)
                } notified: {
                    wake(.notified)
                }
            } catch {
                if Task.isCancelled { return }
                let reason = Self.reason(error, location: location)
                if failing == nil {
                    logger.warning(
                        "lost the connection that listens for the fleet's changes; reconnecting, and reading the event log every second meanwhile",
                        metadata: ["store": "\(location)", "reason": "\(reason)"]
                    )
                    failing = reason
                }
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }

    /// The connection ended its listening (closed by the server, or a ping failed).
    struct Ended: Error, CustomStringConvertible {
        let description: String
    }

    /// One connection: connect, LISTEN, then wait for notifications and ping until something
    /// fails (always throws, or returns when cancelled).
    private func listenOnce(
        listening: () -> Void,
        notified: @escaping @Sendable () -> Void
    ) async throws {
        var configuration = try PostgresConnector.connectionConfiguration(location, password: password)
        configuration.options.additionalStartupParameters =
            configuration.options.additionalStartupParameters.filter { $0.0 != "application_name" }
            + [("application_name", applicationName)]
        let quiet = quiet
        let connectConfiguration = configuration
        let connectLimit = Duration.seconds(location.connectTimeout.components.seconds) + .seconds(1)
        let connection = try await withDeadline("connecting to listen", limit: connectLimit) { _ in
            try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(),
                configuration: connectConfiguration,
                id: 1,
                logger: quiet
            )
        }
        do {
            try await connection.listen(on: PostgresSchema.channel) { notifications in
                listening()
                let pingInterval = self.pingInterval
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await _ in notifications { notified() }
                        throw Ended(description: "the server ended the notifications")
                    }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: pingInterval)
                            do {
                                try await withDeadline("pinging the listening connection", limit: .seconds(3)) {
                                    lease in
                                    lease.hold(connection)
                                    try await connection.perform("SELECT 1", logger: quiet)
                                }
                            } catch is CancellationError {
                                throw CancellationError()
                            } catch {
                                throw Ended(description: "the listening connection did not answer a ping in 3s")
                            }
                        }
                    }
                    defer { group.cancelAll() }
                    _ = try await group.next()
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    private static func reason(_ error: any Error, location: PostgresLocation) -> String {
        if let ended = error as? Ended { return ended.description }
        if error is DeadlineExceeded { return "connecting took longer than the connect timeout" }
        let mapped = PostgresFailure.mapped(error, operation: "listening", location: location)
        return (mapped as? TokenStoreError)?.reason ?? "\(mapped)"
    }
}
