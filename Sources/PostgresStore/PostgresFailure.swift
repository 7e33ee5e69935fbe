import CodedErrors
import Glibc
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import TokenStore

/// What a PostgreSQL error means to the store: retry it, report the database unusable, or
/// pass it on; and its translation into a `TokenStoreError` whose reason is safe to log (no
/// query, no bound value, no password: postgres-nio's own descriptions are never used).
enum PostgresFailure {
    /// How an error bears on `health()`.
    enum Kind {
        /// The database cannot be reached or used at all.
        case unreachable
        /// Reads work, writes do not (a read-only server, a full disk).
        case writesOnly
    }

    /// SQLSTATEs of a transaction the database rolled back and asks to run again.
    static let retryableStates: Set<String> = ["40001", "40P01"]

    /// Whether running the transaction again is safe and may succeed: the database asked for
    /// it, or the connection broke before the `COMMIT` was sent (so nothing was committed).
    static func isRetryable(_ error: any Error, commitSent: Bool) -> Bool {
        if let state = sqlState(error), retryableStates.contains(state) { return true }
        return !commitSent && isConnectionLoss(error)
    }

    /// Whether `error` says the database is unusable (as opposed to a conflict or a caller's
    /// error).
    static func storeFailure(_ error: any Error) -> Kind? {
        if error is PassThrough { return nil }
        if let error = error as? TokenStoreError {
            return error.code == .unavailable || error.code == .schema ? .unreachable : nil
        }
        if let state = sqlState(error) {
            switch state.prefix(2) {
            case "25" where state == "25006": return .writesOnly
            case "53": return state == "53100" ? .writesOnly : .unreachable
            case "08", "57", "58", "XX", "3D", "28": return .unreachable
            default: return nil
            }
        }
        // The pool's own errors (shut down, lease failures) count as unreachable too.
        return error is PSQLError && !isConnectionLoss(error) ? nil : .unreachable
    }

    static func sqlState(_ error: any Error) -> String? {
        guard let error = error as? PSQLError, error.code == .server else { return nil }
        return error.serverInfo?[.sqlState]
    }

    /// A connection that failed or closed under the operation (not an answer of the server's).
    static func isConnectionLoss(_ error: any Error) -> Bool {
        if error is ClosedBeforeUse { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
            return true
        case .server:
            // The server ending the session: a fast shutdown, a restart, a terminated backend.
            guard let state = error.serverInfo?[.sqlState] else { return false }
            return state.hasPrefix("57P") || state.hasPrefix("08")
        default:
            return false
        }
    }

    /// A leased connection was already closed: nothing was sent on it.
    struct ClosedBeforeUse: Error, CustomStringConvertible {
        var description: String { "the connection was closed before it was used" }
    }

    /// An error of the caller's own (thrown by `decide`), marked so that it comes back
    /// unchanged rather than as a database failure.
    struct PassThrough: Error {
        let error: any Error
    }

    /// `error` marked to pass through when it is not the database's.
    static func passingThrough(_ error: any Error) -> any Error {
        switch error {
        case is PSQLError, is TokenStoreError, is PostgresDecodingError, is CancellationError: error
        default: PassThrough(error: error)
        }
    }

    /// `error` as a `TokenStoreError` for `operation`; a `TokenStoreError` passes unchanged,
    /// and so does an error the caller's closure threw (a `decide` error, `PassThrough`).
    /// Anything else (the pool's own errors) is the database being unavailable.
    static func mapped(_ error: any Error, operation: String, location: PostgresLocation) -> any Error {
        // An empty operation: the reason alone (health's wording).
        let operation = operation.isEmpty ? "" : operation + " failed: "
        switch error {
        case let error as PassThrough:
            return error.error
        case let error as TokenStoreError:
            return error
        case let error as DeadlineExceeded:
            return TokenStoreError.unavailable(
                "\(operation)PostgreSQL (\(location)) did not answer within \(error.limit)"
            )
        case let error as PSQLError:
            return mapped(error, operation: operation, location: location)
        case is PostgresDecodingError:
            return TokenStoreError.schema(
                "\(operation)a column of the database does not hold what this tokend expects"
            )
        case is CancellationError:
            return TokenStoreError.unavailable("\(operation)cancelled")
        default:
            return TokenStoreError.unavailable(
                "\(operation)PostgreSQL at \(location): \(describe(error))"
            )
        }
    }

    /// `operation` is empty or ends in "failed: ".
    private static func mapped(_ error: PSQLError, operation: String, location: PostgresLocation) -> TokenStoreError {
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? "?"
            let constraint = error.serverInfo?[.constraintName]
            switch state.prefix(2) {
            case "23":
                return .conflict(
                    "\(operation)the database refused it (SQLSTATE \(state)"
                        + (constraint.map { ", constraint \($0)" } ?? "") + ")"
                )
            case "42" where state == "42P01" || state == "42883" || state == "3F000":
                return .schema(
                    "\(operation)the tokend schema is missing or damaged in \(location) "
                        + "(SQLSTATE \(state)): \(serverMessage(error))"
                )
            default:
                return .unavailable(
                    "\(operation)PostgreSQL answered SQLSTATE \(state): \(serverMessage(error))"
                )
            }
        case .connectionError, .uncleanShutdown:
            return .unavailable(
                "\(operation)cannot reach PostgreSQL at \(location)"
                    + (error.underlying.map { ": \(describe($0))" } ?? "")
            )
        case .serverClosedConnection, .clientClosedConnection:
            return .unavailable("\(operation)the connection to PostgreSQL at \(location) closed")
        case .poolClosed:
            return .unavailable("\(operation)the store is closed")
        case .sslUnsupported:
            return .unavailable(
                "\(operation)PostgreSQL at \(location) does not offer TLS, which sslmode=\(location.tlsMode.rawValue) requires"
            )
        case .failedToAddSSLHandler:
            return .unavailable("\(operation)TLS could not be set up for \(location)")
        case .authMechanismRequiresPassword:
            return .unavailable(
                "\(operation)PostgreSQL at \(location) asks for a password: put it in the file "
                    + "TOKEND_STORE_PASSWORD_FILE names, or in the systemd credential store-password"
            )
        case .unsupportedAuthMechanism, .saslError:
            return .unavailable(
                "\(operation)PostgreSQL at \(location) asks for an authentication tokend cannot do"
            )
        default:
            return .unavailable("\(operation)PostgreSQL at \(location): \(error.code)")
        }
    }

    /// The server's message, for the SQLSTATE classes whose messages name no row value
    /// (connection, authentication, resources, operator intervention, system errors); for
    /// others only the class.
    private static func serverMessage(_ error: PSQLError) -> String {
        let state = error.serverInfo?[.sqlState] ?? ""
        let safeClasses: Set<Substring> = ["08", "28", "3D", "3F", "40", "42", "53", "55", "57", "58", "25", "XX"]
        guard safeClasses.contains(state.prefix(2)), let message = error.serverInfo?[.message] else {
            return "see the PostgreSQL server log"
        }
        return String(message.prefix(300))
    }

    /// An underlying I/O or TLS error: the system's words for an errno, else NIO's description
    /// (which names the call and the failure, never data).
    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        return String("\(error)".prefix(300))
    }
}

/// An operation outran its deadline.
struct DeadlineExceeded: Error {
    let limit: Duration
}

/// The connection an operation holds, so that its deadline can close it: a query on a
/// connection whose peer went silent would otherwise wait for TCP to give up (many minutes).
final class Lease: Sendable {
    private let connection = Mutex<PostgresConnection?>(nil)

    func hold(_ connection: PostgresConnection) {
        self.connection.withLock { $0 = connection }
    }

    /// Forgets `connection` once the operation has given it back to the pool, where another
    /// operation may lease it: a deadline must never close a connection it no longer holds.
    func letGo(_ connection: PostgresConnection) {
        self.connection.withLock { held in
            if held === connection { held = nil }
        }
    }

    func closeHeld() async {
        guard let held = connection.withLock({ $0 }) else { return }
        try? await held.close()
    }
}

/// Runs `body` with a deadline: past `limit`, the connection it holds is closed and its task
/// cancelled (a wait for a connection ends at once), and `DeadlineExceeded` is thrown.
///
/// The deadline holds even when `body` never ends. postgres-nio loses a query written to a
/// connection the server has just closed (the write reaches a pipeline whose handlers are
/// gone, and the query's promise is never completed), so a query sent while PostgreSQL
/// restarts can wait forever, deaf to cancellation and to closing its connection. `body`
/// therefore runs in a task of its own: past the deadline it is cancelled, its connection
/// closed, and it gets `abandonAfter` to end; one that has not is left behind (it can no
/// longer commit: its connection is closed and, cancelled, it cannot lease another), and
/// the caller gets its answer.
func withDeadline<T: Sendable>(
    _ operation: String,
    limit: Duration,
    abandonAfter grace: Duration = .seconds(1),
    _ body: @escaping @Sendable (Lease) async throws -> T
) async throws -> T {
    let lease = Lease()
    // The work delivers its result twice: to the wait for the deadline, and to the wait for
    // its end after the deadline passed.
    let outcome = Outcome<Result<T, any Error>?>()
    let ended = Outcome<Result<T, any Error>?>()
    let work = Task(executorPreference: StoreTaskExecutor.preferred) {
        let result: Result<T, any Error>
        do { result = .success(try await body(lease)) } catch { result = .failure(error) }
        outcome.resume(result)
        ended.resume(result)
    }
    if let result = await outcome.value(within: limit) {
        return try result.get()
    }
    // The deadline passed, or the caller was cancelled.
    work.cancel()
    await lease.closeHeld()
    _ = await ended.value(within: grace)
    try Task.checkCancellation()
    throw DeadlineExceeded(limit: limit)
}

/// A value delivered once, by whichever of several racers comes first, to one waiter that
/// may start waiting before or after it arrives.
private final class Outcome<Value: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Value, Never>)
        case delivered(Value)
        case done
    }
    private let state = Mutex(State.empty)

    func wait(_ continuation: CheckedContinuation<Value, Never>) {
        let value = state.withLock { state -> Value? in
            switch state {
            case .empty:
                state = .waiting(continuation)
                return nil
            case .delivered(let value):
                state = .done
                return value
            case .waiting, .done:
                preconditionFailure("an outcome has one waiter")
            }
        }
        if let value { continuation.resume(returning: value) }
    }

    /// The value once delivered, or nil when `limit` passes first or the calling task is
    /// cancelled. The timer runs on the calling thread's event loop when there is one (a task
    /// that prefers a loop), so that it wakes no other thread; else in a task of its own.
    func value<Wrapped: Sendable>(within limit: Duration) async -> Value where Value == Wrapped? {
        let cancelTimer: @Sendable () -> Void
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop {
            let timer = loop.scheduleTask(in: TimeAmount(limit)) { self.resume(nil) }
            cancelTimer = { timer.cancel() }
        } else {
            let timer = Task(executorPreference: StoreTaskExecutor.preferred) {
                try? await Task.sleep(for: limit)
                self.resume(nil)
            }
            cancelTimer = { timer.cancel() }
        }
        let value = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in wait(continuation) }
        } onCancel: {
            resume(nil)
        }
        cancelTimer()
        return value
    }

    /// Delivers `value` unless another value came first.
    func resume(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, Never>? in
            switch state {
            case .empty:
                state = .delivered(value)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .delivered, .done:
                return nil
            }
        }
        waiter?.resume(returning: value)
    }
}
