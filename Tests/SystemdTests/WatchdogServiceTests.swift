import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TokenTestSupport

@testable import Systemd

@Suite("WatchdogService pings until graceful shutdown")
struct WatchdogServiceTests {
    @Test("sends WATCHDOG=1 every interval, and nothing after graceful shutdown")
    func pingsUntilShutdown() async throws {
        let listener = try NotifyListener(.abstract, reading: .onRequest)
        let notifier = SystemdNotifier(socketAddress: listener.address, logger: LogCapture().logger())
        let watchdog = WatchdogService(notifier: notifier, interval: .milliseconds(20))
        let group = ServiceGroup(services: [watchdog], logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var pings = 0
            let start = ContinuousClock.now
            while pings < 4, let received = listener.receive(timeout: .seconds(2)) {
                #expect(received.raw == "WATCHDOG=1")
                pings += 1
            }
            let elapsed = ContinuousClock.now - start
            #expect(pings == 4)
            #expect(elapsed >= .milliseconds(55), "paced by the interval, not a busy loop")
            await group.triggerGracefulShutdown()
            try await tasks.next()
        }
        // Stopped: at most one ping that was already in flight, then silence.
        #expect(listener.drain(window: .milliseconds(150)).count <= 1)
        #expect(listener.drain(window: .milliseconds(150)).isEmpty)
    }

    @Test("takes the interval from the notifier (half of WATCHDOG_USEC)")
    func intervalFromNotifier() {
        let notifier = SystemdNotifier.fromEnvironment(
            ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"],
            processID: 1
        )
        #expect(WatchdogService(notifier: notifier).interval == .seconds(15))
        #expect(WatchdogService(notifier: notifier, interval: .seconds(1)).interval == .seconds(1))
    }

    @Test("without a watchdog it sends nothing and stays until graceful shutdown")
    func idleWithoutWatchdog() async throws {
        let listener = try NotifyListener(.filesystem, reading: .onRequest)
        let notifier = SystemdNotifier(socketAddress: listener.address, logger: LogCapture().logger())
        #expect(notifier.watchdogInterval == nil)
        let group = ServiceGroup(
            services: [WatchdogService(notifier: notifier)],
            logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        )
        let finished = Flag()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await group.run()
                finished.set()
            }
            try await Task.sleep(for: .milliseconds(150))
            let finishedEarly = finished.isSet
            #expect(!finishedEarly, "returning early would stop the whole group")
            await group.triggerGracefulShutdown()
            try await tasks.next()
        }
        let finishedAtShutdown = finished.isSet
        #expect(finishedAtShutdown)
        #expect(listener.drain().isEmpty)
    }
}

/// A one-way flag shared between tasks.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { self.value.load(ordering: .sequentiallyConsistent) }
    func set() { self.value.store(true, ordering: .sequentiallyConsistent) }
}
