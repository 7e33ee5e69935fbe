import CArgon2Load
import TokenCrypto

#if canImport(Glibc)
import Glibc
#endif

/// libargon2's raw Argon2id rate: `argon2id_hash_raw` back to back on `threads` threads for
/// about `seconds` — what tokend's hashing pool would do with no HTTP, store or JSON around it.
/// The same call, salt and hash lengths (16, 32) as `PasswordArgon2.hashRaw` and the same
/// libargon2 shared library tokend links.
enum Argon2Rate {
    struct Settings: Sendable {
        var seconds = 10.0
        var threads = 1
        var memoryKiB: UInt32 = 19456
        var iterations: UInt32 = 2
        var parallelism: UInt32 = 1
    }

    struct Outcome {
        var hashes: Int
        var seconds: Double
        var rate: Double { hashes > 0 ? Double(hashes) / seconds : 0 }
    }

    static func measure(_ settings: Settings) throws -> Outcome {
        let threads = max(1, settings.threads)
        let counts = (0..<threads).map { _ in Slot(0) }
        let failures = (0..<threads).map { _ in Slot<Int32>(0) }
        let barrier = Barrier(threads)
        let start = Slot<UInt64>(0)
        let deadline = Slot<UInt64>(0)
        let startLock = Barrier(threads)
        try Threads.runAll(threads) { t in
            let password = Array("correct horse battery staple".utf8)
            let salt = SecureRandom.bytes(16)
            var out = [UInt8](repeating: 0, count: 32)
            barrier.wait()
            if t == 0 {
                start.value = monotonicNanos()
                deadline.value = start.value + UInt64(settings.seconds * 1e9)
            }
            startLock.wait()  // every thread sees `deadline` after this
            let end = deadline.value
            var count = 0
            repeat {
                let status = password.withUnsafeBytes { p in
                    salt.withUnsafeBytes { s in
                        out.withUnsafeMutableBytes { o in
                            argon2id_hash_raw(
                                settings.iterations,
                                settings.memoryKiB,
                                settings.parallelism,
                                p.baseAddress,
                                p.count,
                                s.baseAddress,
                                s.count,
                                o.baseAddress,
                                o.count
                            )
                        }
                    }
                }
                if status != ARGON2_OK.rawValue {
                    failures[t].value = status
                    break
                }
                count += 1
            } while monotonicNanos() < end
            counts[t].value = count
        }
        let elapsed = Double(monotonicNanos() - start.value) / 1e9
        if let failed = failures.first(where: { $0.value != 0 }) {
            throw LoadError("argon2id_hash_raw failed: \(String(cString: argon2_error_message(failed.value)))")
        }
        return Outcome(hashes: counts.reduce(0) { $0 + $1.value }, seconds: elapsed)
    }
}
