import Foundation
import Glibc
import Synchronization
import Testing

@testable import TokenCrypto

/// ECDSA nonces computed ahead (`ECDSANonces`): what a signature made with one must still be,
/// and the rules that keep a nonce from ever serving twice. The pools are filled by calling
/// `fill()` here, so that each test knows when a pool is full.
@Suite("ECDSA nonces computed ahead", .serialized)
struct ECDSANonceTests {
    private static let curves: [SignatureAlgorithm] = [.es256, .es384]

    private static func half(_ algorithm: SignatureAlgorithm) -> Int { algorithm == .es384 ? 48 : 32 }

    /// A key and a full pool for it: an empty pool gives no nonce and asks to be filled.
    private static func filledPool(_ algorithm: SignatureAlgorithm) throws -> (SigningKey, ECDSANonces) {
        let key = try SigningKey.generate(algorithm)
        guard case .asymmetric(let asymmetric) = key.material else { throw Failure("not a key pair") }
        let pool = try #require(ECDSANonces(asymmetric.key, half: half(algorithm)))
        #expect(sign(Array("first".utf8), pool, algorithm) == nil)
        pool.fill()
        #expect(pool.count == ECDSANonces.capacity)
        return (key, pool)
    }

    /// Signs `message` with a nonce from `pool`; nil when the pool gave none.
    private static func sign(_ message: [UInt8], _ pool: ECDSANonces, _ algorithm: SignatureAlgorithm) -> [UInt8]? {
        let digest = algorithm == .es384 ? SHA384.hash(message) : SHA256.hash(message)
        var out = [UInt8](repeating: 0, count: 2 * pool.half)
        let signed = digest.withUnsafeBufferPointer { digest in
            out.withUnsafeMutableBufferPointer {
                pool.sign(digest: digest.baseAddress!, length: digest.count, into: $0.baseAddress!)
            }
        }
        return signed ? out : nil
    }

    @Test(
        "an empty pool asks to be filled; each signature takes one nonce and verifies; below half it asks again",
        arguments: curves
    )
    func fillsAndSigns(algorithm: SignatureAlgorithm) throws {
        let (key, pool) = try Self.filledPool(algorithm)
        let message = Array("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJub25jZSJ9".utf8)

        var rs: Set<[UInt8]> = []
        // Down to the refill level nothing is added: exactly one nonce per signature.
        for taken in 1...(ECDSANonces.capacity - ECDSANonces.refillBelow) {
            let signed = message + [UInt8(taken)]
            let signature = try #require(Self.sign(signed, pool, algorithm))
            #expect(pool.count == ECDSANonces.capacity - taken)
            #expect(try key.verifyingKey.verify(signature: signature, message: signed))
            rs.insert(Array(signature.prefix(pool.half)))
        }
        #expect(rs.count == ECDSANonces.capacity - ECDSANonces.refillBelow, "a nonce served twice")
        // Full again only once it asked: the first signature below the level asks.
        pool.fill()
        #expect(pool.count == ECDSANonces.refillBelow)
        _ = try #require(Self.sign(message, pool, algorithm))
        pool.fill()
        #expect(pool.count == ECDSANonces.capacity)
    }

    @Test("a forked child never uses the nonces its parent holds; the parent still does", arguments: curves)
    func forkedChild(algorithm: SignatureAlgorithm) throws {
        let (key, pool) = try Self.filledPool(algorithm)
        let message = Array("a message".utf8)
        let digest = algorithm == .es384 ? SHA384.hash(message) : SHA256.hash(message)
        var out = [UInt8](repeating: 0, count: 2 * pool.half)
        let child = fork()
        if child == 0 {
            // Only what is safe after a fork in a threaded process: an atomic load and a return.
            let signed = digest.withUnsafeBufferPointer { digest in
                out.withUnsafeMutableBufferPointer {
                    pool.sign(digest: digest.baseAddress!, length: digest.count, into: $0.baseAddress!)
                }
            }
            _exit(!signed && NonceFiller.forked ? 0 : 1)
        }
        try #require(child > 0, "fork failed: errno \(errno)")
        var status: Int32 = 0
        #expect(waitpid(child, &status, 0) == child)
        #expect(status == 0, "the child used a nonce of its parent's, or saw no fork (wait status \(status))")
        #expect(!NonceFiller.forked, "the parent counted the fork")
        #expect(pool.count == ECDSANonces.capacity)
        let signature = try #require(Self.sign(message, pool, algorithm))
        #expect(try key.verifyingKey.verify(signature: signature, message: message))
    }

    @Test("signatures from many threads at once take one nonce each, never the same, and all verify", arguments: curves)
    func concurrentSignatures(algorithm: SignatureAlgorithm) async throws {
        let (key, pool) = try Self.filledPool(algorithm)
        let threads = 8
        let each = (ECDSANonces.capacity - ECDSANonces.refillBelow) / threads
        // A signature may find the lock held too long and give up (nil): then it took nothing.
        let signatures = await withTaskGroup(of: [([UInt8], [UInt8]?)].self) { group in
            for thread in 0..<threads {
                group.addTask {
                    (0..<each).map { i in
                        let message = Array("thread \(thread) signature \(i)".utf8)
                        return (message, Self.sign(message, pool, algorithm))
                    }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        let signed = signatures.compactMap { message, signature in signature.map { (message, $0) } }
        #expect(signatures.count == threads * each)
        #expect(signed.count > 0)
        #expect(pool.count == ECDSANonces.capacity - signed.count, "not one nonce per signature")
        #expect(Set(signed.map { Array($0.1.prefix(pool.half)) }).count == signed.count, "a nonce served twice")
        for (message, signature) in signed {
            #expect(try key.verifyingKey.verify(signature: signature, message: message))
        }
    }

    @Test(
        "a key's signatures verify and never repeat r, over more signatures than its pool holds",
        arguments: curves
    )
    func keySignatures(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let message = Array("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0".utf8)
        var rs: Set<[UInt8]> = []
        let count = 4 * ECDSANonces.capacity
        for _ in 0..<count {
            let signature = try key.sign(message)
            #expect(signature.count == 2 * Self.half(algorithm))
            #expect(try key.verifyingKey.verify(signature: signature, message: message))
            rs.insert(Array(signature.prefix(Self.half(algorithm))))
        }
        #expect(rs.count == count, "\(count - rs.count) signatures repeated r: a nonce served twice")
    }

    @Test("turned off, a key makes no pool")
    func turnedOff() throws {
        ECDSANoncePrecomputation.isEnabled = false
        defer { ECDSANoncePrecomputation.isEnabled = true }
        let key = try SigningKey.generate(.es256)
        guard case .asymmetric(let asymmetric) = key.material else { throw Failure("not a key pair") }
        #expect(ECDSANonces(asymmetric.key, half: 32) == nil)
    }

    @Test("the filler is one thread, named tokend-nonces")
    func fillerThread() async throws {
        _ = NonceFiller.shared
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
            let fillers = tasks.filter {
                (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) == "tokend-nonces\n"
            }
            #expect(fillers.count <= 1, "\(fillers)")
            if fillers.count == 1 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("no thread named tokend-nonces after 10 s")
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
