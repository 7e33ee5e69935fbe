import CodedErrors
import Foundation
import JOSE
import Testing
import TokenService
import TokenStore
import TokenTestSupport

/// Several keyrings over one key directory, as several tokend processes (or tokend and an
/// offline tool) sharing it: every change is decided from the stored keyring under the
/// directory's lock, so none is lost and none is made twice (issue 11, item 4).
@Suite("One key directory, several keyrings")
struct SharedKeyringTests {
    /// Waits until `count` callers have arrived, then lets them all go on.
    actor Rendezvous {
        let count: Int
        private var arrived = 0
        private var waiting: [CheckedContinuation<Void, Never>] = []

        init(_ count: Int) { self.count = count }

        func arrive() async {
            arrived += 1
            if arrived >= count {
                for continuation in waiting { continuation.resume() }
                waiting = []
                return
            }
            await withCheckedContinuation { waiting.append($0) }
        }
    }

    /// A key directory whose `load` returns only once every opener has loaded, as processes
    /// starting at the same instant: each finds the directory as it was before the others
    /// wrote anything.
    struct SimultaneousStart: KeyringStorage {
        let directory: KeyDirectory
        let rendezvous: Rendezvous

        func load() async throws -> StoredKeyring {
            let stored = try await directory.load()
            await rendezvous.arrive()
            return stored
        }

        func update(
            _ change: @escaping @Sendable (StoredKeyring) throws -> KeyringChange?
        ) async throws -> StoredKeyring {
            try await directory.update(change)
        }
    }

    static func open(_ storage: any KeyringStorage, clock: TestClock) async throws -> Keyring {
        try await Keyring(
            storage: storage,
            configuration: .test(),
            clock: clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
    }

    /// The `<kid>.pem` files in `path`.
    static func keyFiles(_ path: String) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".pem") })
    }

    /// A call's result, so concurrent calls can be compared.
    static func attempt(_ body: () async throws -> KeyLifecycle.Change) async -> Result<KeyLifecycle.Change, any Error>
    {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    @Test("two keyrings opening one empty key directory at once create one keyring")
    func simultaneousBootstrap() async throws {
        let temporary = try TemporaryDirectory()
        let path = temporary.file("keys")
        let clock = TestClock()
        let rendezvous = Rendezvous(2)
        async let first = Self.open(
            SimultaneousStart(directory: KeyDirectory(path: path), rendezvous: rendezvous),
            clock: clock
        )
        async let second = Self.open(
            SimultaneousStart(directory: KeyDirectory(path: path), rendezvous: rendezvous),
            clock: clock
        )
        let (a, b) = try await (first, second)

        let stored = try await KeyDirectory(path: path).load()
        #expect(stored.document.keys.count == 2)
        #expect(a.snapshot.document.serialized() == stored.document.serialized())
        #expect(b.snapshot.document.serialized() == stored.document.serialized())
        #expect(a.snapshot.signer.kid == b.snapshot.signer.kid)
        #expect(a.snapshot.etag == b.snapshot.etag)
        // No key was generated for nothing: exactly the two listed keys have files.
        #expect(try Self.keyFiles(path) == Set(stored.document.keys.map { "\($0.kid).pem" }))
    }

    @Test("two keyrings rotating one key directory at once rotate once; the refused one serves that rotation")
    func simultaneousRotation() async throws {
        let temporary = try TemporaryDirectory()
        let path = temporary.file("keys")
        let clock = TestClock()
        let a = try await Self.open(KeyDirectory(path: path), clock: clock)
        let b = try await Self.open(KeyDirectory(path: path), clock: clock)
        let before = try #require(KeyringState.kid(.current, in: a.snapshot.document))
        clock.advance(by: 300)

        async let first = Self.attempt { try await a.rotate(force: false) }
        async let second = Self.attempt { try await b.rotate(force: false) }
        let results = await [first, second]

        let rotations = results.compactMap { try? $0.get() }
        #expect(rotations.count == 1, "\(results)")
        let refusals = results.compactMap { result -> ServiceError? in
            guard case .failure(let error) = result else { return nil }
            return error as? ServiceError
        }
        #expect(refusals.map(\.code) == [.rotationTooEarly], "\(results)")

        let stored = try await KeyDirectory(path: path).load()
        let states = KeyringState.of(stored.document)
        #expect(states.count == 3)
        #expect(states[before] == .previous)
        #expect(states.values.filter { $0 == .current }.count == 1)
        #expect(states.values.filter { $0 == .next }.count == 1)
        #expect(try Self.keyFiles(path).count == 3)
        // Both serve the one rotation.
        let current = try #require(KeyringState.kid(.current, in: stored.document))
        #expect(a.snapshot.signer.kid == current)
        #expect(b.snapshot.signer.kid == current)
        #expect(a.snapshot.etag == b.snapshot.etag)
    }

    @Test("a forced rotation on one keyring keeps the revocation another one made")
    func rotationKeepsOthersRevocation() async throws {
        let temporary = try TemporaryDirectory()
        let path = temporary.file("keys")
        let clock = TestClock()
        let a = try await Self.open(KeyDirectory(path: path), clock: clock)
        let b = try await Self.open(KeyDirectory(path: path), clock: clock)
        let compromised = try #require(KeyringState.kid(.current, in: a.snapshot.document))

        let revocation = try await a.revoke(kid: compromised)
        #expect(revocation.revoked == compromised)
        // b has not reloaded: its memory still signs with the compromised key.
        #expect(b.snapshot.signer.kid == compromised)
        let rotation = try await b.rotate(force: true)
        #expect(rotation.demoted != compromised)

        let stored = try await KeyDirectory(path: path).load()
        #expect(KeyringState.of(stored.document)[compromised] == .revoked)
        #expect(b.snapshot.revokedKids.contains(compromised))
        #expect(b.snapshot.signer.kid != compromised)
        #expect(b.snapshot.document.serialized() == stored.document.serialized())
        #expect(!FileManager.default.fileExists(atPath: KeyDirectory(path: path).keyPath(compromised)))
    }

    @Test("a revocation on one keyring reaches another by reload (SIGHUP) and by maintenance")
    func revocationReachesOthers() async throws {
        let temporary = try TemporaryDirectory()
        let path = temporary.file("keys")
        let clock = TestClock()
        let a = try await Self.open(KeyDirectory(path: path), clock: clock)
        let b = try await Self.open(KeyDirectory(path: path), clock: clock)
        let c = try await Self.open(KeyDirectory(path: path), clock: clock)
        let compromised = try #require(KeyringState.kid(.current, in: a.snapshot.document))
        _ = try await a.revoke(kid: compromised)

        try await b.reload()
        #expect(b.snapshot.revokedKids == [compromised])
        #expect(!b.snapshot.verifyingKids.contains(compromised))
        #expect(b.snapshot.signer.kid == a.snapshot.signer.kid)

        // Maintenance with nothing due changes nothing, and adopts what another keyring did.
        let before = c.snapshot
        #expect(try await c.maintain() == KeyLifecycle.Change.none)
        #expect(c.snapshot !== before)
        #expect(c.snapshot.revokedKids == [compromised])
        #expect(c.snapshot.etag == a.snapshot.etag)
        // A second pass finds nothing new and keeps the snapshot (and the verified-token cache).
        let adopted = c.snapshot
        _ = try await c.maintain()
        #expect(c.snapshot === adopted)
    }
}
