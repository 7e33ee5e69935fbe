import Glibc
import Synchronization
import TokenCrypto

/// Argon2id password hashing through libargon2 on dedicated worker threads with a bounded
/// queue, so hashing never runs on an event loop or Swift's cooperative pool.
///
/// New hashes use `configuration.parameters` (OWASP's m = 19 MiB, t = 2, p = 1 by default), a
/// 16-byte random salt and a 32-byte hash, as a PHC string:
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. When every worker is busy and the queue is
/// full, calls throw `overloaded` at once, so the caller can ask its client to retry.
public final class PasswordHasher: Sendable {
    /// Cost parameters and pool size.
    public struct Configuration: Sendable, Equatable {
        /// Parameters of new hashes; stored hashes weaker than these need a rehash.
        public var parameters: PasswordHashingParameters
        /// Worker threads, each hashing one password at a time (1…256).
        public var workers: Int
        /// Jobs that may wait for a worker before calls are refused as `overloaded` (1…65536).
        public var queueCapacity: Int
        /// How long a hash may run before it counts as starved of CPU by other processes and
        /// the pool's rescuer thread runs it too (`PasswordHashingPool`); nil: never. A hash
        /// at the default parameters takes 20-40 ms on an idle core.
        public var rescueAfter: Duration?

        public init(
            parameters: PasswordHashingParameters = .owasp,
            workers: Int = PasswordHasher.defaultWorkerCount,
            queueCapacity: Int = 64,
            rescueAfter: Duration? = .milliseconds(250)
        ) {
            self.parameters = parameters
            self.workers = workers
            self.queueCapacity = queueCapacity
            self.rescueAfter = rescueAfter
        }
    }

    /// The outcome of checking a password against a stored PHC string.
    public struct VerifyResult: Sendable, Equatable {
        /// The password is the one the hash was made from.
        public let matches: Bool
        /// The stored hash is weaker than the current parameters (lower m, t or p, shorter salt
        /// or hash) or not Argon2id v1.3: store a new hash once the password has matched.
        public let needsRehash: Bool

        public init(matches: Bool, needsRehash: Bool) {
            self.matches = matches
            self.needsRehash = needsRehash
        }
    }

    /// Longest password accepted, in UTF-8 bytes; longer ones are refused before hashing.
    public static let maximumPasswordBytes = 1024

    /// One worker per online processor.
    /// Online processors; tokend passes the CPUs of its affinity instead.
    public static var defaultWorkerCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    public let configuration: Configuration
    /// Parameters of new hashes.
    public var parameters: PasswordHashingParameters { configuration.parameters }

    let pool: PasswordHashingPool
    /// Hash of a random password at `parameters`, made once, for `verifyDummy`.
    let dummyPHC: String

    /// Starts the workers and makes the dummy hash (one hash's time on the calling thread).
    /// Throws `invalidConfiguration` for a pool size out of range, `hashingFailed` when threads
    /// or memory are not available.
    public init(_ configuration: Configuration = Configuration()) throws(PasswordHashingError) {
        guard (1...256).contains(configuration.workers) else {
            throw .invalidConfiguration("password hashing workers must be 1…256; got \(configuration.workers)")
        }
        guard (1...65536).contains(configuration.queueCapacity) else {
            throw .invalidConfiguration(
                "password hashing queue capacity must be 1…65536; got \(configuration.queueCapacity)"
            )
        }
        self.configuration = configuration
        let dummyPassword = PasswordBuffer(copying: Base64URL.encode(SecureRandom.bytes(32)))
        let salt = SecureRandom.bytes(PasswordHashingParameters.saltLength)
        dummyPHC = try dummyPassword.withBytes { (password) throws(PasswordHashingError) in
            try PasswordArgon2.hashEncoded(password: password, salt: salt, parameters: configuration.parameters)
        }
        pool = PasswordHashingPool(capacity: configuration.queueCapacity, rescueAfter: configuration.rescueAfter)
        try pool.start(workers: configuration.workers)
    }

    deinit {
        pool.beginShutdown()
    }

    /// Hashes `password` with fresh salt at the current parameters, on a worker; returns the
    /// PHC string. Throws `passwordTooLong` over 1024 bytes, `overloaded` when the queue is full.
    public func hash(_ password: String) async throws(PasswordHashingError) -> String {
        let buffer = try Self.copy(password)
        let parameters = parameters
        return try await perform { () throws(PasswordHashingError) in
            let salt = SecureRandom.bytes(PasswordHashingParameters.saltLength)
            return try buffer.withBytes { (bytes) throws(PasswordHashingError) in
                try PasswordArgon2.hashEncoded(password: bytes, salt: salt, parameters: parameters)
            }
        }
    }

    /// Checks `password` against a stored PHC string, on a worker, comparing in constant time.
    ///
    /// A PHC string tokend does not verify (not Argon2id v1.3, malformed, or beyond the
    /// parameter maxima) costs the same work as a wrong password and answers
    /// `matches: false, needsRehash: true`.
    public func verify(password: String, phc: String) async throws(PasswordHashingError) -> VerifyResult {
        let buffer = try Self.copy(password)
        let dummyPHC = dummyPHC
        let parameters = parameters
        return try await perform { () throws(PasswordHashingError) in
            try Self.verifyNow(buffer, phc: phc, dummyPHC: dummyPHC, current: parameters)
        }
    }

    /// The work of `verify` with a wrong password, for a user who does not exist: the same path
    /// against a dummy hash made at start-up with the current parameters.
    public func verifyDummy(password: String) async throws(PasswordHashingError) {
        let buffer = try Self.copy(password)
        let dummyPHC = dummyPHC
        let parameters = parameters
        _ = try await perform { () throws(PasswordHashingError) in
            try Self.verifyNow(buffer, phc: dummyPHC, dummyPHC: dummyPHC, current: parameters)
        }
    }

    /// Refuses new jobs, lets the workers finish the queued ones, and returns once they exit.
    func shutdown() async {
        pool.beginShutdown()
        await pool.waitUntilDrained()
    }

    /// Jobs waiting for a worker now.
    public var queuedJobCount: Int { pool.queuedCount }

    /// Hashes run by the rescuer since start, because the workers were starved of CPU.
    public var rescuedJobCount: Int { pool.rescuedCount }

    /// libargon2's raw Argon2id rate at `parameters`, in hashes per second: `argon2id_hash_raw`
    /// in a loop for about `seconds` on the calling thread (plus `threads - 1` more threads, for
    /// an aggregate rate to set beside a pool of that many workers). Blocks the caller.
    public static func rawHashRate(
        seconds: Double,
        parameters: PasswordHashingParameters = .owasp,
        threads: Int = 1
    ) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start.advanced(by: .seconds(max(0, seconds)))
        let total = HashCount()
        let loop: @Sendable () -> Void = {
            let password = Array("correct horse battery staple".utf8)
            let salt = SecureRandom.bytes(PasswordHashingParameters.saltLength)
            var out = [UInt8](repeating: 0, count: PasswordHashingParameters.hashLength)
            var count = 0
            password.withUnsafeBytes { password in
                salt.withUnsafeBytes { salt in
                    out.withUnsafeMutableBytes { out in
                        repeat {
                            guard
                                PasswordArgon2.hashRaw(password: password, salt: salt, parameters: parameters, out: out)
                            else { break }
                            count += 1
                        } while clock.now < deadline
                    }
                }
            }
            total.value.add(count, ordering: .relaxed)
        }
        let helpers = (1..<max(1, threads)).compactMap { _ in BackgroundThread.spawn(detached: false, loop) }
        loop()
        helpers.forEach(BackgroundThread.join)
        let elapsed = start.duration(to: clock.now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return seconds > 0 ? Double(total.value.load(ordering: .relaxed)) / seconds : 0
    }

    /// Whether a job's caller has been answered: set once, by the first run to finish.
    private final class Answered: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .acquiring) }
        /// True for the one caller that sets it.
        func set() -> Bool {
            flag.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        }
    }

    /// Hashes counted by `rawHashRate`'s threads.
    private final class HashCount: Sendable {
        let value = Atomic<Int>(0)
    }

    // MARK: - Internals

    /// Runs `work` on a worker thread, suspending the caller until it is done. A job still
    /// queued when the task is cancelled is dropped and throws `cancelled`.
    func perform<Value: Sendable>(
        _ work: @escaping @Sendable () throws(PasswordHashingError) -> Value
    ) async throws(PasswordHashingError) -> Value {
        let pool = pool
        let id = pool.makeJobID()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<Value, PasswordHashingError>, Never>) in
                if Task.isCancelled {
                    continuation.resume(returning: .failure(.cancelled()))
                    return
                }
                // The rescuer may run a starved job a second time: the first result answers.
                let answered = Answered()
                let job = PasswordHashingPool.Job(
                    id: id,
                    run: {
                        guard !answered.isSet else { return }
                        let result = Result { () throws(PasswordHashingError) in try work() }
                        if answered.set() { continuation.resume(returning: result) }
                    },
                    refuse: { if answered.set() { continuation.resume(returning: .failure($0)) } }
                )
                if let refusal = pool.submit(job) {
                    continuation.resume(returning: .failure(refusal))
                }
            }
        } onCancel: {
            pool.cancel(id: id)
        }
        return try result.get()
    }

    /// The one verification path, for real and dummy hashes alike.
    static func verifyNow(
        _ password: PasswordBuffer,
        phc: String,
        dummyPHC: String,
        current: PasswordHashingParameters
    ) throws(PasswordHashingError) -> VerifyResult {
        func check(_ phc: String) throws(PasswordHashingError) -> Bool? {
            try password.withBytes { (bytes) throws(PasswordHashingError) in
                try PasswordArgon2.verify(phc: phc, password: bytes)
            }
        }
        if let stored = PasswordPHC(phc), stored.isVerifiable, let matches = try check(phc) {
            return VerifyResult(matches: matches, needsRehash: stored.isWeaker(than: current))
        }
        // Not a hash tokend verifies: the work of a wrong password, then the same answer.
        _ = try check(dummyPHC)
        return VerifyResult(matches: false, needsRehash: true)
    }

    private static func copy(_ password: String) throws(PasswordHashingError) -> PasswordBuffer {
        let count = password.utf8.count
        guard count <= maximumPasswordBytes else { throw .passwordTooLong(count) }
        return PasswordBuffer(copying: password)
    }
}
