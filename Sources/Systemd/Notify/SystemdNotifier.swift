import Glibc
public import Logging

/// Tells systemd about the daemon's state through `NOTIFY_SOCKET` (sd_notify(3) protocol).
///
/// Every call returns whether the message was delivered. A notification socket that is missing,
/// refuses the message or is full never stops the daemon: the call returns `false`, logs one
/// warning, and never throws, traps or blocks (the datagram is sent with `MSG_DONTWAIT`).
/// Without `NOTIFY_SOCKET` the notifier is inert: calls return `false` and log nothing.
///
/// Free text (`STATUS=`) is folded onto one line, so it cannot inject other assignments.
public struct SystemdNotifier: Sendable {
    /// The `NOTIFY_SOCKET` value this notifier sends to (a path or `@abstract` name), or nil when inert.
    public let socketAddress: String?

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, or nil when no watchdog is armed for
    /// this process.
    public let watchdogInterval: Duration?

    /// Where failed deliveries are reported, one warning each.
    public var logger: Logger

    private let address: NotifySocketAddress?

    /// A notifier for an explicit socket address (a path or `@abstract` name), as tests use it.
    ///
    /// - Parameters:
    ///   - socketAddress: the `NOTIFY_SOCKET` value; nil for an inert notifier.
    ///   - watchdogInterval: how often ``WatchdogService`` should send `WATCHDOG=1`; nil for none.
    ///   - logger: receives one warning per failed delivery.
    public init(socketAddress: String?, watchdogInterval: Duration? = nil, logger: Logger) {
        self.socketAddress = socketAddress
        self.address = socketAddress.flatMap(NotifySocketAddress.init)
        self.watchdogInterval = watchdogInterval
        self.logger = logger
    }

    /// The notifier systemd set up for this process: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`.
    ///
    /// Inert when `NOTIFY_SOCKET` is unset.
    public static func fromEnvironment(
        logger: Logger = Logger(label: "tokend.systemd")
    ) -> SystemdNotifier {
        var environment: [String: String] = [:]
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            environment[name] = SystemCall.environment(name)
        }
        return Self.fromEnvironment(environment, processID: getpid(), logger: logger)
    }

    /// The notifier described by `environment` for the process `processID` (the current one if nil).
    public static func fromEnvironment(
        _ environment: [String: String],
        processID: Int32? = nil,
        logger: Logger = Logger(label: "tokend.systemd")
    ) -> SystemdNotifier {
        let socket = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if let socket, NotifySocketAddress(socket) == nil {
            logger.warning(
                "NOTIFY_SOCKET is not an absolute path or an @abstract name that fits a Unix socket address; notifications will not be delivered",
                metadata: ["notify.socket": "\(socket)"]
            )
        }
        let interval = Self.watchdogInterval(
            watchdogUSec: environment["WATCHDOG_USEC"],
            watchdogPID: environment["WATCHDOG_PID"],
            processID: processID ?? getpid()
        )
        return SystemdNotifier(socketAddress: socket, watchdogInterval: interval, logger: logger)
    }

    /// Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends, when the watchdog is meant for
    /// `processID`: `WATCHDOG_PID` unset or equal to it. Nil when unset, zero, infinite or malformed.
    public static func watchdogInterval(watchdogUSec: String?, watchdogPID: String?, processID: Int32) -> Duration? {
        guard let text = watchdogUSec, let usec = UInt64(text), usec > 0, usec <= UInt64(Int64.max) else {
            return nil
        }
        if let pidText = watchdogPID {
            guard let pid = Int32(pidText), pid == processID else { return nil }
        }
        return .microseconds(Int64(max(usec / 2, 1)))
    }

    /// Whether this notifier has a socket to talk to.
    public var isEnabled: Bool { self.socketAddress != nil }

    /// `READY=1` (and `STATUS=` when given): start-up finished, the daemon serves.
    @discardableResult
    public func ready(status: String? = nil) -> Bool {
        self.send(["READY=1"], status: status)
    }

    /// `STATUS=`: a one-line summary shown by `systemctl status`.
    @discardableResult
    public func status(_ text: String) -> Bool {
        self.send([], status: text)
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC): a reload began; send ``ready(status:)`` when done.
    @discardableResult
    public func reloading(status: String? = nil) -> Bool {
        self.send(["RELOADING=1", "MONOTONIC_USEC=\(SystemCall.monotonicMicroseconds())"], status: status)
    }

    /// `STOPPING=1` (and `STATUS=` when given): shutdown began.
    @discardableResult
    public func stopping(status: String? = nil) -> Bool {
        self.send(["STOPPING=1"], status: status)
    }

    /// `WATCHDOG=1`: the keep-alive ping.
    @discardableResult
    public func watchdog() -> Bool {
        self.send(["WATCHDOG=1"], status: nil)
    }

    /// `EXTEND_TIMEOUT_USEC=`: asks for more time for the current start, reload or stop step.
    @discardableResult
    public func extendTimeout(by duration: Duration) -> Bool {
        let (seconds, attoseconds) = duration.components
        let usec = max(0, seconds) * 1_000_000 + max(0, attoseconds) / 1_000_000_000_000
        return self.send(["EXTEND_TIMEOUT_USEC=\(usec)"], status: nil)
    }

    /// The exact datagram a call sends: the assignments, then `STATUS=` folded onto one line.
    static func message(_ assignments: [String], status: String?) -> String {
        var lines = assignments
        if let status {
            lines.append("STATUS=" + Self.singleLine(status))
        }
        return lines.joined(separator: "\n")
    }

    /// Replaces line breaks and NUL with spaces so free text stays one assignment.
    static func singleLine(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x00, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029: result.append(" ")
            default: result.append(scalar)
            }
        }
        return String(result)
    }

    private func send(_ assignments: [String], status: String?) -> Bool {
        guard let socketAddress = self.socketAddress else { return false }
        let message = Self.message(assignments, status: status)
        let failure: String
        if let address = self.address {
            guard let error = NotifySocket.send(message, to: address) else { return true }
            failure = error
        } else {
            failure = "NOTIFY_SOCKET is not an absolute path or an @abstract name that fits a Unix socket address"
        }
        let state = message.prefix(while: { $0 != "=" })
        self.logger.warning(
            "systemd notification not delivered",
            metadata: [
                "notify.socket": "\(socketAddress)",
                "notify.state": "\(state)",
                "error": "\(failure)",
            ]
        )
        return false
    }
}
