import Foundation
import Glibc
import Logging
import Testing
import TokenTestSupport

@testable import Systemd

@Suite("SystemdNotifier sends the sd_notify protocol")
struct NotifierTests {
    @Test(
        "each call arrives as exactly the datagram systemd expects",
        arguments: [NotifyListener.Namespace.filesystem, .abstract]
    )
    func exactMessages(namespace: NotifyListener.Namespace) throws {
        let listener = try NotifyListener(namespace, reading: .onRequest)
        let capture = LogCapture()
        let notifier = SystemdNotifier(socketAddress: listener.address, logger: capture.logger())

        #expect(notifier.ready(status: "serving on /run/tokend/tokend.sock"))
        let ready = try #require(listener.receive())
        #expect(ready.raw == "READY=1\nSTATUS=serving on /run/tokend/tokend.sock")
        #expect(ready.senderPID == getpid())

        #expect(notifier.ready())
        #expect(listener.receive()?.raw == "READY=1")

        #expect(notifier.status("3 keys, 120 families"))
        #expect(listener.receive()?.raw == "STATUS=3 keys, 120 families")

        let before = monotonicMicroseconds()
        #expect(notifier.reloading())
        let reloading = try #require(listener.receive()?.raw)
        let after = monotonicMicroseconds()
        let lines = reloading.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "RELOADING=1")
        let stamp = try #require(
            lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil }
        )
        #expect(stamp >= before && stamp <= after, "MONOTONIC_USEC is CLOCK_MONOTONIC in µs")

        #expect(notifier.stopping(status: "draining 2 requests"))
        #expect(listener.receive()?.raw == "STOPPING=1\nSTATUS=draining 2 requests")

        #expect(notifier.stopping())
        #expect(listener.receive()?.raw == "STOPPING=1")

        #expect(notifier.watchdog())
        #expect(listener.receive()?.raw == "WATCHDOG=1")

        #expect(notifier.extendTimeout(by: .milliseconds(1500)))
        #expect(listener.receive()?.raw == "EXTEND_TIMEOUT_USEC=1500000")

        #expect(listener.drain().isEmpty, "nothing else was sent")
        #expect(capture.warnings.isEmpty)
    }

    @Test("a status with line breaks cannot inject another assignment")
    func statusInjection() throws {
        let listener = try NotifyListener(.filesystem, reading: .onRequest)
        let notifier = SystemdNotifier(socketAddress: listener.address, logger: LogCapture().logger())
        #expect(notifier.status("loading\nREADY=1\r\nMAINPID=1\u{2028}x"))
        #expect(listener.receive()?.raw == "STATUS=loading READY=1  MAINPID=1 x")
    }

    @Test("fromEnvironment reads NOTIFY_SOCKET and sends to it")
    func fromEnvironment() throws {
        let listener = try NotifyListener(.abstract, reading: .onRequest)
        let notifier = SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": listener.address])
        #expect(notifier.isEnabled)
        #expect(notifier.socketAddress == listener.address)
        #expect(notifier.watchdogInterval == nil)
        #expect(notifier.ready(status: "ok"))
        #expect(listener.receive()?.raw == "READY=1\nSTATUS=ok")
    }

    @Test("without NOTIFY_SOCKET the notifier is inert: false, no warning")
    func inert() {
        let capture = LogCapture()
        for notifier in [
            SystemdNotifier.fromEnvironment([:], logger: capture.logger()),
            SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": ""], logger: capture.logger()),
            SystemdNotifier(socketAddress: nil, logger: capture.logger()),
        ] {
            #expect(!notifier.isEnabled)
            #expect(!notifier.ready(status: "x"))
            #expect(!notifier.watchdog())
            #expect(!notifier.stopping())
        }
        #expect(capture.all.isEmpty)
    }

    @Test(
        "a missing or refusing socket returns false with one warning, no throw, no hang",
        arguments: ["missing path", "closed listener", "stream socket", "relative path", "bad abstract", "too long"]
    )
    func refusingSocket(case name: String) throws {
        let temporary = try TemporaryDirectory(prefix: "sdn-bad")
        let directory = temporary.path
        let address: String
        var openSocket: Int32 = -1
        defer { if openSocket >= 0 { close(openSocket) } }
        switch name {
        case "missing path":
            address = directory + "/nobody-here.sock"
        case "closed listener":
            // Bound and then closed: the file stays, connecting is refused.
            address = directory + "/closed.sock"
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            #expect(bindUnixSocket(fd, to: address) == 0)
            close(fd)
        case "stream socket":
            address = directory + "/stream.sock"
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            #expect(bindUnixSocket(fd, to: address) == 0)
            listen(fd, 1)
            openSocket = fd
        case "relative path":
            address = "run/notify.sock"
        case "bad abstract":
            address = "@"
        default:
            address = "/" + String(repeating: "x", count: 200)
        }
        let capture = LogCapture()
        let notifier = SystemdNotifier(socketAddress: address, logger: capture.logger())
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            #expect(!notifier.ready(status: "up"))
            #expect(!notifier.watchdog())
        }
        #expect(elapsed < .seconds(1))
        #expect(capture.warnings.count == 2, "one warning per failed call")
        #expect(capture.warnings.allSatisfy { $0.metadata["notify.socket"] == "\(address)" })
    }

    @Test("a receiver that never reads fills up without blocking the sender")
    func fullQueueNeverBlocks() throws {
        let listener = try NotifyListener(.filesystem, reading: .onRequest)
        let capture = LogCapture()
        let notifier = SystemdNotifier(socketAddress: listener.address, logger: capture.logger())
        var delivered = 0
        var refused = 0
        let elapsed = ContinuousClock().measure {
            for _ in 0..<2_000 {
                if notifier.watchdog() { delivered += 1 } else { refused += 1 }
            }
        }
        #expect(delivered > 0)
        #expect(refused > 0, "the queue filled up (EAGAIN) instead of blocking")
        #expect(capture.warnings.count == refused)
        #expect(elapsed < .seconds(5))
        // The socket recovers once systemd reads again.
        _ = listener.drain(window: .milliseconds(10))
        #expect(notifier.watchdog())
    }

    @Test(
        "watchdogInterval is half of WATCHDOG_USEC, for this process only",
        arguments: [
            (["WATCHDOG_USEC": "30000000"], Duration.seconds(15)),
            (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"], Duration.seconds(15)),
            (["WATCHDOG_USEC": "3"], Duration.microseconds(1)),
            (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"], nil),
            (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "abc"], nil),
            (["WATCHDOG_USEC": "0"], nil),
            (["WATCHDOG_USEC": "-5"], nil),
            (["WATCHDOG_USEC": "30s"], nil),
            (["WATCHDOG_USEC": "18446744073709551615"], nil),
            (["WATCHDOG_PID": "4242"], nil),
            ([:], nil),
        ] as [([String: String], Duration?)]
    )
    func watchdogInterval(environment: [String: String], expected: Duration?) {
        var environment = environment
        environment["NOTIFY_SOCKET"] = "/run/systemd/notify"
        let notifier = SystemdNotifier.fromEnvironment(environment, processID: 4242, logger: LogCapture().logger())
        #expect(notifier.watchdogInterval == expected)
    }

    @Test("fromEnvironment() without arguments uses this process's pid for WATCHDOG_PID")
    func watchdogForThisProcess() {
        let environment = ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "\(getpid())"]
        #expect(SystemdNotifier.fromEnvironment(environment).watchdogInterval == .seconds(1))
    }

    private func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
