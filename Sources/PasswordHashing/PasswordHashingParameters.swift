/// Argon2id cost parameters: memory in KiB, passes over memory, lanes.
///
/// The public initialiser refuses anything weaker than OWASP's recommendation (m = 19 MiB,
/// t = 2, p = 1); only `unsafeTestingParameters` goes below it, for fast tests.
public struct PasswordHashingParameters: Sendable, Hashable, CustomStringConvertible {
    /// Memory cost in KiB (`m`).
    public let memoryKiB: UInt32
    /// Number of passes over memory (`t`).
    public let iterations: UInt32
    /// Number of lanes (`p`).
    public let parallelism: UInt32

    /// Salt length of new hashes, in bytes.
    public static let saltLength = 16
    /// Raw hash length of new hashes, in bytes.
    public static let hashLength = 32

    /// OWASP's recommendation for Argon2id: m = 19456 KiB (19 MiB), t = 2, p = 1.
    public static let owasp = PasswordHashingParameters(uncheckedMemoryKiB: 19456, iterations: 2, parallelism: 1)

    /// Upper bounds, for configuration and for hashes read back from the store (a stored PHC
    /// string cannot make a worker allocate more than this).
    public static let maximumMemoryKiB: UInt32 = 4 * 1024 * 1024
    public static let maximumIterations: UInt32 = 100
    public static let maximumParallelism: UInt32 = 64

    /// Parameters at least as strong as `owasp` in each of m, t and p; throws
    /// `invalidConfiguration` naming the accepted range otherwise.
    public init(
        memoryKiB: Int = 19456,
        iterations: Int = 2,
        parallelism: Int = 1
    ) throws(PasswordHashingError) {
        let owasp = Self.owasp
        guard memoryKiB >= Int(owasp.memoryKiB), memoryKiB <= Int(Self.maximumMemoryKiB) else {
            throw .invalidConfiguration(
                "argon2 memory must be \(owasp.memoryKiB)…\(Self.maximumMemoryKiB) KiB (OWASP minimum 19 MiB); "
                    + "got \(memoryKiB)"
            )
        }
        guard iterations >= Int(owasp.iterations), iterations <= Int(Self.maximumIterations) else {
            throw .invalidConfiguration(
                "argon2 iterations must be \(owasp.iterations)…\(Self.maximumIterations) (OWASP minimum 2); "
                    + "got \(iterations)"
            )
        }
        guard parallelism >= Int(owasp.parallelism), parallelism <= Int(Self.maximumParallelism) else {
            throw .invalidConfiguration(
                "argon2 parallelism must be \(owasp.parallelism)…\(Self.maximumParallelism); got \(parallelism)"
            )
        }
        self.init(
            uncheckedMemoryKiB: UInt32(memoryKiB),
            iterations: UInt32(iterations),
            parallelism: UInt32(parallelism)
        )
    }

    init(uncheckedMemoryKiB memoryKiB: UInt32, iterations: UInt32, parallelism: UInt32) {
        self.memoryKiB = memoryKiB
        self.iterations = iterations
        self.parallelism = parallelism
    }

    /// Parameters below the OWASP floor, for tests that need fast hashes or a weak stored hash.
    /// Never use them in production: the daemon's configuration goes through the throwing
    /// initialiser. Traps below libargon2's own minimums (m ≥ 8·p, t ≥ 1, p ≥ 1).
    public static func unsafeTestingParameters(memoryKiB: Int, iterations: Int, parallelism: Int = 1) -> Self {
        precondition(parallelism >= 1 && parallelism <= Int(maximumParallelism), "parallelism out of range")
        precondition(iterations >= 1 && iterations <= Int(maximumIterations), "iterations out of range")
        precondition(memoryKiB >= 8 * parallelism && memoryKiB <= Int(maximumMemoryKiB), "memory out of range")
        return Self(
            uncheckedMemoryKiB: UInt32(memoryKiB),
            iterations: UInt32(iterations),
            parallelism: UInt32(parallelism)
        )
    }

    /// True when m, t and p are each at least OWASP's.
    public var meetsOWASPMinimum: Bool { !isWeaker(than: .owasp) }

    /// `m=19456,t=2,p=1`, as in a PHC string.
    public var description: String { "m=\(memoryKiB),t=\(iterations),p=\(parallelism)" }

    /// True when any of m, t, p is lower than `other`'s.
    func isWeaker(than other: Self) -> Bool {
        memoryKiB < other.memoryKiB || iterations < other.iterations || parallelism < other.parallelism
    }
}
