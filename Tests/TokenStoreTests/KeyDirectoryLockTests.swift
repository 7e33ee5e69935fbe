import Foundation
import JOSE
import Synchronization
import Testing
import TokenCrypto
import TokenStore
import TokenTestSupport

/// `KeyDirectory` as a `KeyringStorage`: updates are transactions under an `flock` on
/// `keyring.lock`, however many `KeyDirectory` values (or processes) share the directory.
@Suite("Key directory transactions")
struct KeyDirectoryLockTests {
    /// A keyring document with one current key of `kid`.
    static func document(_ kid: String, key: SigningKey) throws -> KeyringDocument {
        let now = NumericDate(integer: Int64(StoreFixtures.now))
        return KeyringDocument(keys: [
            KeyringDocument.Entry(
                kid: kid,
                algorithm: .es256,
                state: .current,
                created: now,
                activated: now,
                publicJWK: try JWK.publicJSON(key.verifyingKey, kid: kid)
            )
        ])
    }

    @Test("updates over one directory run one at a time, each on the state the previous one wrote")
    func serialized() async throws {
        let temporary = try TemporaryDirectory()
        let path = temporary.file("keys")
        struct Counters {
            var active = 0
            var most = 0
            var seen: [Int] = []
        }
        let counters = Shared(Counters())
        let key = try SigningKey.generate(.es256)
        let kid = try key.thumbprint()
        let initial = try Self.document(kid, key: key)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    // A value of its own, as another process would have: its own lock file descriptor.
                    _ = try await KeyDirectory(path: path).update { stored in
                        counters.withLock {
                            $0.active += 1
                            $0.most = max($0.most, $0.active)
                            $0.seen.append(stored.document.keys.count)
                        }
                        usleep(20_000)
                        counters.withLock { $0.active -= 1 }
                        // Each update adds a key entry to what it found.
                        var document = stored.document.keys.isEmpty ? initial : stored.document
                        if !stored.document.keys.isEmpty {
                            var entry = document.keys[0]
                            entry.kid = "k\(document.keys.count)"
                            entry.state = .retired
                            entry.publicJWK = nil
                            document.keys.append(entry)
                        }
                        return KeyringChange(document: document, newKeys: stored.keys.isEmpty ? [(kid, key)] : [])
                    }
                }
            }
            try await group.waitForAll()
        }
        let counted = counters.withLock { $0 }
        #expect(counted.most == 1)
        #expect(counted.seen.sorted() == [0, 1, 2, 3, 4, 5])
        let stored = try await KeyDirectory(path: path).load()
        #expect(stored.document.keys.count == 6)
        #expect(Set(stored.keys.keys) == [kid])
    }

    @Test("an update whose change throws writes nothing and rethrows that error")
    func refusedChange() async throws {
        struct Refusal: Error, Equatable {}
        let temporary = try TemporaryDirectory()
        let directory = KeyDirectory(path: temporary.file("keys"))
        let key = try SigningKey.generate(.es256)
        let kid = try key.thumbprint()
        await #expect(throws: Refusal()) {
            _ = try await directory.update { _ in throw Refusal() }
        }
        #expect(try await directory.load().document.keys.isEmpty)

        let document = try Self.document(kid, key: key)
        let written = try await directory.update { _ in KeyringChange(document: document, newKeys: [(kid, key)]) }
        #expect(written.document.serialized() == document.serialized())
        #expect(Set(written.keys.keys) == [kid])
        // nil: nothing to write; the stored state comes back.
        let unchanged = try await directory.update { _ in nil }
        #expect(unchanged.document.serialized() == document.serialized())
        // The lock file is private like every other file there.
        var info = stat()
        #expect(stat(directory.lockPath, &info) == 0)
        #expect(info.st_mode & 0o077 == 0)
    }

    @Test("loading waits for an update in progress: it never sees half a change")
    func loadWaitsForUpdate() async throws {
        let temporary = try TemporaryDirectory()
        let path = temporary.file("keys")
        let key = try SigningKey.generate(.es256)
        let kid = try key.thumbprint()
        let document = try Self.document(kid, key: key)
        let started = Shared(false)
        async let update = KeyDirectory(path: path).update { _ in
            started.withLock { $0 = true }
            usleep(200_000)
            return KeyringChange(document: document, newKeys: [(kid, key)])
        }
        while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        let loaded = try await KeyDirectory(path: path).load()
        #expect(loaded.document.keys.map(\.kid) == [kid])
        _ = try await update
    }
}
