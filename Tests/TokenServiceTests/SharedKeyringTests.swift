import CodedErrors
import Foundation
import JOSE
import PostgresStore
import Synchronization
import Testing
import TokenCrypto
import TokenService
import TokenStore
import TokenTestSupport

/// Several keyrings over one stored keyring, as several tokend processes (or tokend and an
/// offline tool) sharing a key directory, or nodes sharing a database: every change is
/// decided from the stored keyring under the storage's lock, so none is lost and none is
/// made twice (issue 11, item 4).
@Suite("One stored keyring, several keyrings")
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

    /// The storages every test here runs on.
    enum Kind: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case directory
        case memory
        /// The keyring row and sealed keys of a database of its own in the test process's
        /// shared throwaway cluster.
        case postgres

        var testDescription: String { rawValue }
    }

    /// One stored keyring that several keyrings share, each through a handle of its own (for
    /// a key directory, its own `KeyDirectory` value and so its own lock descriptor; for
    /// PostgreSQL, its own store and connections, as another node has).
    final class Shared: Sendable {
        let temporary: TemporaryDirectory
        let kind: Kind
        let memory = MemoryKeyringStorage()
        /// The database of `.postgres`.
        private let database: String?
        private let stores = Mutex<[PostgresTokenStore]>([])
        private static let kek = try! KeyEncryptionKey(
            bytes: (0..<32).map { _ in UInt8.random(in: 0...255) },
            source: "the test KEK"
        )

        init(_ kind: Kind) async throws {
            self.kind = kind
            temporary = try TemporaryDirectory()
            database = kind == .postgres ? try await SharedPostgresCluster.freshDatabase() : nil
        }

        var path: String { temporary.file("keys") }

        /// A new handle on the one storage.
        func handle() async throws -> any KeyringStorage {
            switch kind {
            case .directory: return KeyDirectory(path: path)
            case .memory: return memory
            case .postgres:
                let store = try await PostgresTokenStore.open(
                    location: try PostgresLocation(parsing: database!),
                    password: nil,
                    logger: StoreFixtures.quietLogger,
                    operationTimeout: .seconds(30),
                    maximumConnections: 2
                )
                stores.withLock { $0.append(store) }
                return PostgresKeyringStorage(store: store, kek: Self.kek)
            }
        }

        /// The private key files in the directory; nil for memory and PostgreSQL.
        func keyFiles() throws -> Set<String>? {
            guard kind == .directory else { return nil }
            return Set(try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".pem") })
        }

        /// Closes the PostgreSQL handles.
        func close() async {
            for store in stores.withLock({ $0 }) { try? await store.close() }
        }
    }

    /// Runs `body` with a fresh shared storage of `kind`, closed afterwards.
    static func withShared(_ kind: Kind, _ body: (Shared) async throws -> Void) async throws {
        let shared = try await Shared(kind)
        do {
            try await body(shared)
        } catch {
            await shared.close()
            throw error
        }
        await shared.close()
    }

    /// A storage whose `load` returns only once every opener has loaded, as processes
    /// starting at the same instant: each finds the storage as it was before the others
    /// wrote anything.
    struct SimultaneousStart: KeyringStorage {
        let storage: any KeyringStorage
        let rendezvous: Rendezvous

        func load() async throws -> StoredKeyring {
            let stored = try await storage.load()
            await rendezvous.arrive()
            return stored
        }

        func update(
            _ change: @escaping @Sendable (StoredKeyring) throws -> KeyringChange?
        ) async throws -> StoredKeyring {
            try await storage.update(change)
        }
    }

    static func open(
        _ storage: any KeyringStorage,
        clock: TestClock,
        configuration: ServiceConfiguration = .test()
    ) async throws -> Keyring {
        try await Keyring(
            storage: storage,
            configuration: configuration,
            clock: clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
    }

    /// A call's result, so concurrent calls can be compared.
    static func attempt(_ body: () async throws -> KeyLifecycle.Change) async -> Result<KeyLifecycle.Change, any Error>
    {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    @Test("two keyrings opening one empty storage at once create one keyring", arguments: Kind.allCases)
    func simultaneousBootstrap(kind: Kind) async throws {
        try await Self.withShared(kind) { shared in
            let clock = TestClock()
            let (one, two) = (try await shared.handle(), try await shared.handle())
            let rendezvous = Rendezvous(2)
            async let first = Self.open(
                SimultaneousStart(storage: one, rendezvous: rendezvous),
                clock: clock
            )
            async let second = Self.open(
                SimultaneousStart(storage: two, rendezvous: rendezvous),
                clock: clock
            )
            let (a, b) = try await (first, second)

            let stored = try await shared.handle().load()
            #expect(stored.document.keys.count == 2)
            #expect(a.snapshot.document.serialized() == stored.document.serialized())
            #expect(b.snapshot.document.serialized() == stored.document.serialized())
            #expect(a.snapshot.signer.kid == b.snapshot.signer.kid)
            #expect(a.snapshot.etag == b.snapshot.etag)
            // No key was generated for nothing: exactly the two listed keys have files.
            if let files = try shared.keyFiles() { #expect(files == Set(stored.document.keys.map { "\($0.kid).pem" })) }
        }
    }

    @Test(
        "two keyrings rotating one storage at once rotate once; the refused one serves that rotation",
        arguments: Kind.allCases
    )
    func simultaneousRotation(kind: Kind) async throws {
        try await Self.withShared(kind) { shared in
            let clock = TestClock()
            let a = try await Self.open(try await shared.handle(), clock: clock)
            let b = try await Self.open(try await shared.handle(), clock: clock)
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

            // Both serve the one rotation.
            try await Self.expectOneRotation(from: before, in: shared, servedBy: [a, b])
        }
    }

    /// The storage holds exactly one rotation from `before` (previous, current, next, and a
    /// key file each), and every keyring serves it.
    static func expectOneRotation(
        from before: String,
        in shared: Shared,
        servedBy keyrings: [Keyring],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let stored = try await shared.handle().load()
        let states = KeyringState.of(stored.document)
        #expect(states.count == 3, "one new next key, not one per keyring: \(states)", sourceLocation: sourceLocation)
        #expect(states[before] == .previous, sourceLocation: sourceLocation)
        #expect(states.values.filter { $0 == .current }.count == 1, sourceLocation: sourceLocation)
        #expect(states.values.filter { $0 == .next }.count == 1, sourceLocation: sourceLocation)
        #expect(stored.keys.count == 3, sourceLocation: sourceLocation)
        if let files = try shared.keyFiles() { #expect(files.count == 3, sourceLocation: sourceLocation) }
        let current = try #require(KeyringState.kid(.current, in: stored.document), sourceLocation: sourceLocation)
        for keyring in keyrings {
            #expect(keyring.snapshot.signer.kid == current, sourceLocation: sourceLocation)
            #expect(keyring.snapshot.etag == keyrings[0].snapshot.etag, sourceLocation: sourceLocation)
        }
    }

    @Test(
        "three keyrings whose schedule falls due at the same moment rotate once, and all serve that rotation",
        arguments: Kind.allCases
    )
    func scheduledRotationOnce(kind: Kind) async throws {
        try await Self.withShared(kind) { shared in
            let clock = TestClock()
            var configuration = ServiceConfiguration.test()
            configuration.keyRotation = 86_400
            let nodes = [
                try await Self.open(try await shared.handle(), clock: clock, configuration: configuration),
                try await Self.open(try await shared.handle(), clock: clock, configuration: configuration),
                try await Self.open(try await shared.handle(), clock: clock, configuration: configuration),
            ]
            let before = try #require(KeyringState.kid(.current, in: nodes[0].snapshot.document))
            clock.advance(by: 86_400)

            // Every node's maintenance runs at once, as each one's minute timer fires.
            let results = await withTaskGroup(of: Result<KeyLifecycle.Change, any Error>.self) { group in
                for node in nodes { group.addTask { await Self.attempt { try await node.maintain() } } }
                var all: [Result<KeyLifecycle.Change, any Error>] = []
                for await result in group { all.append(result) }
                return all
            }
            let changes = try results.map { try $0.get() }
            #expect(changes.filter { $0.demoted == before }.count == 1, "\(changes)")
            #expect(changes.filter { $0 == KeyLifecycle.Change.none }.count == 2, "\(changes)")

            try await Self.expectOneRotation(from: before, in: shared, servedBy: nodes)
            // The schedule starts again from that rotation: nothing is due on any node.
            for node in nodes { #expect(try await node.maintain() == KeyLifecycle.Change.none) }
        }
    }

    @Test("a forced rotation on one keyring keeps the revocation another one made", arguments: Kind.allCases)
    func rotationKeepsOthersRevocation(kind: Kind) async throws {
        try await Self.withShared(kind) { shared in
            let clock = TestClock()
            let a = try await Self.open(try await shared.handle(), clock: clock)
            let b = try await Self.open(try await shared.handle(), clock: clock)
            let compromised = try #require(KeyringState.kid(.current, in: a.snapshot.document))

            let revocation = try await a.revoke(kid: compromised)
            #expect(revocation.revoked == compromised)
            // b has not reloaded: its memory still signs with the compromised key.
            #expect(b.snapshot.signer.kid == compromised)
            let rotation = try await b.rotate(force: true)
            #expect(rotation.demoted != compromised)

            let stored = try await shared.handle().load()
            #expect(KeyringState.of(stored.document)[compromised] == .revoked)
            #expect(b.snapshot.revokedKids.contains(compromised))
            #expect(b.snapshot.signer.kid != compromised)
            #expect(b.snapshot.document.serialized() == stored.document.serialized())
            #expect(stored.keys[compromised] == nil)
            if let files = try shared.keyFiles() { #expect(!files.contains("\(compromised).pem")) }
        }
    }

    @Test("a revocation on one keyring reaches another by reload (SIGHUP) and by maintenance", arguments: Kind.allCases)
    func revocationReachesOthers(kind: Kind) async throws {
        try await Self.withShared(kind) { shared in
            let clock = TestClock()
            let a = try await Self.open(try await shared.handle(), clock: clock)
            let b = try await Self.open(try await shared.handle(), clock: clock)
            let c = try await Self.open(try await shared.handle(), clock: clock)
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
}
