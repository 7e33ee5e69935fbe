import CodedErrors
import Testing

@testable import PasswordHashing

extension PasswordHashingSuite {
    @Suite("Bounded pool", .timeLimit(.minutes(1)))
    struct Pool {
        @Test("with the worker busy and the queue full, calls are refused at once; queued ones then finish")
        func overloadedWhileFull() async throws {
            let hasher = try PasswordHasher(
                .init(parameters: fastParameters, workers: 1, queueCapacity: 2, rescueAfter: nil)
            )
            let gate = Gate()
            let busy = try await hasher.occupyWorker(with: gate)
            let first = Task { try await hasher.hash("first") }
            let second = Task { try await hasher.hash("second") }
            try await hasher.waitUntilQueued(2)

            let clock = ContinuousClock()
            for attempt in 0..<8 {
                let started = clock.now
                await #expect(throws: PasswordHashingError.self) {
                    try await hasher.verifyDummy(password: "x\(attempt)")
                }
                do {
                    _ = try await hasher.hash("third")
                    Issue.record("a full queue accepted a job")
                } catch {
                    #expect(error.code == .overloaded)
                    #expect(error.reason.contains("2 jobs are waiting"))
                }
                // Refused while the only worker is still held: the caller never waited for it.
                #expect(milliseconds(started.duration(to: clock.now)) < 1000)
            }
            #expect(hasher.queuedJobCount == 2)

            gate.open()
            try await busy.value
            let phcs = [try await first.value, try await second.value]
            #expect(try await hasher.verify(password: "first", phc: phcs[0]).matches)
            #expect(try await hasher.verify(password: "second", phc: phcs[1]).matches)
            #expect(hasher.queuedJobCount == 0)
        }

        @Test("a burst of concurrent hashes on 1 worker and 2 slots: some refused, the rest succeed, none hang")
        func burst() async throws {
            let hasher = try PasswordHasher(.init(workers: 1, queueCapacity: 2))
            let outcomes = await withTaskGroup(of: Result<String, PasswordHashingError>.self) { group in
                for index in 0..<24 {
                    group.addTask {
                        do throws(PasswordHashingError) { return .success(try await hasher.hash("pw\(index)")) } catch {
                            return .failure(error)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let hashed = outcomes.compactMap { try? $0.get() }
            let refused = outcomes.filter { if case .failure(let e) = $0 { e.code == .overloaded } else { false } }
            #expect(hashed.count + refused.count == 24, "every call either hashed or was refused as overloaded")
            #expect(hashed.count >= 1)
            #expect(refused.count >= 1, "24 hashes at once cannot all fit in 1 worker + 2 slots")
            for phc in hashed { #expect(phc.hasPrefix("$argon2id$v=19$m=19456,t=2,p=1$")) }
        }

        @Test("shutdown finishes the queued jobs, then refuses new ones")
        func shutdownDrains() async throws {
            let hasher = try PasswordHasher(
                .init(parameters: fastParameters, workers: 1, queueCapacity: 8, rescueAfter: nil)
            )
            let gate = Gate()
            let busy = try await hasher.occupyWorker(with: gate)
            let queued = (0..<4).map { index in Task { try await hasher.hash("pw\(index)") } }
            try await hasher.waitUntilQueued(4)

            let stopped = Task { await hasher.shutdown() }
            while !hasher.pool.isShuttingDown { try await Task.sleep(for: .milliseconds(1)) }
            await #expect(throws: PasswordHashingError.self) { try await hasher.hash("late") }
            gate.open()
            await stopped.value
            try await busy.value
            for task in queued { #expect(try await task.value.hasPrefix("$argon2id$")) }
            do {
                _ = try await hasher.verifyDummy(password: "late")
                Issue.record("a shut-down hasher accepted a job")
            } catch {
                #expect(error.code == .shutDown)
            }
        }

        @Test("a job still queued when its task is cancelled is dropped and throws cancelled")
        func cancellation() async throws {
            let hasher = try PasswordHasher(
                .init(parameters: fastParameters, workers: 1, queueCapacity: 4, rescueAfter: nil)
            )
            let gate = Gate()
            let busy = try await hasher.occupyWorker(with: gate)
            let doomed = Task { try await hasher.hash("never hashed") }
            try await hasher.waitUntilQueued(1)
            doomed.cancel()
            do {
                _ = try await doomed.value
                Issue.record("a cancelled job ran")
            } catch {
                #expect((error as? PasswordHashingError)?.code == .cancelled)
            }
            #expect(hasher.queuedJobCount == 0)
            gate.open()
            try await busy.value
            #expect(try await hasher.hash("after").hasPrefix("$argon2id$"))
        }

        @Test("a hash starved of CPU by busy threads elsewhere is run by the rescuer and answers")
        func starvedHashIsRescued() async throws {
            // Idle-class workers get next to no CPU while ordinary threads keep every CPU busy;
            // one more busy thread than CPUs leaves them none. Without the rescuer the hash
            // below would wait for the busy threads (seconds at the default parameters).
            let hasher = try PasswordHasher(.init(workers: 1, queueCapacity: 4, rescueAfter: .milliseconds(100)))
            let busy = BusyThreads(count: PasswordHasher.defaultWorkerCount + 1)
            defer { busy.stop() }
            let phcs = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<3 { group.addTask { try await hasher.hash("starved-\(index)") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            busy.stop()
            #expect(hasher.rescuedJobCount >= 1, "the rescuer ran the starved hashes")
            for phc in phcs { #expect(phc.hasPrefix("$argon2id$v=19$m=19456,t=2,p=1$")) }
            let matched = try await phcs.asyncMap { try await hasher.verify(password: "starved-0", phc: $0).matches }
            #expect(matched.filter { $0 }.count == 1, "each answer is the hash of its own password")
        }

        @Test("shutdown does not wait for a starved worker whose job the rescuer answered")
        func shutdownWithStarvedWorker() async throws {
            // A costly hash (64 MiB, 4 passes: ~0.1 s of CPU), which a starved worker takes many
            // seconds to finish.
            let costly = try PasswordHashingParameters(memoryKiB: 65536, iterations: 4)
            let hasher = try PasswordHasher(
                .init(parameters: costly, workers: 1, queueCapacity: 4, rescueAfter: .milliseconds(100))
            )
            let busy = BusyThreads(count: PasswordHasher.defaultWorkerCount + 1)
            defer { busy.stop() }
            #expect(try await hasher.hash("starved").hasPrefix("$argon2id$v=19$m=65536,t=4,p=1$"))
            #expect(hasher.rescuedJobCount >= 1)
            // The worker is still computing the same hash at SCHED_IDLE while the busy threads
            // spin; nobody waits for its result, so neither does shutdown.
            await hasher.shutdown()
            #expect(hasher.pool.liveThreadCount > 0, "shutdown returned while the starved worker still ran")
            busy.stop()
        }
    }
}
