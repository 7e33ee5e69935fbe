import CodedErrors
import JOSE
import Testing
import TokenCrypto
import TokenService
import TokenTestSupport

/// The keyring actor over an in-memory key directory: creation, persistence, the JWKS and its
/// ETag, and what a failing save leaves behind.
@Suite("Keyring")
struct KeyringTests {
    static func open(
        _ storage: MemoryKeyringStorage,
        clock: TestClock = TestClock(),
        configuration: ServiceConfiguration = .test()
    ) async throws -> Keyring {
        try await Keyring(
            storage: storage,
            configuration: configuration,
            clock: clock.serviceClock,
            logger: StoreFixtures.quietLogger
        )
    }

    /// The `keys` of a snapshot's JWKS body.
    static func jwks(_ snapshot: KeyringSnapshot) throws -> [JSONObject] {
        let root = try #require(try JSONParser().parse(snapshot.jwks).objectValue)
        let keys = try #require(root["keys"]?.arrayValue)
        return try keys.map { try #require($0.objectValue) }
    }

    static let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"]

    @Test("first open of an empty directory generates and saves a current and a next key")
    func firstOpen() async throws {
        let storage = MemoryKeyringStorage()
        let keyring = try await Self.open(storage)
        #expect(storage.saves == 1)
        let states = storage.states
        #expect(states.count == 2)
        #expect(Set(states.values) == [.current, .next])
        #expect(storage.storedKids == Set(states.keys))
        #expect(KeyringState.of(keyring.snapshot.document) == states)
        // The current key signs, and its kid is in the header.
        let kid = try #require(KeyringState.kid(.current, in: storage.document))
        #expect(keyring.snapshot.signer.kid == kid)
    }

    @Test("reopening loads the same kids and generates nothing")
    func reopen() async throws {
        let storage = MemoryKeyringStorage()
        let first = try await Self.open(storage)
        let second = try await Self.open(storage)
        #expect(storage.saves == 1)
        #expect(KeyringState.of(second.snapshot.document) == KeyringState.of(first.snapshot.document))
        #expect(second.snapshot.etag == first.snapshot.etag)
        #expect(second.snapshot.jwks == first.snapshot.jwks)
    }

    @Test("the JWKS publishes next, current and previous public keys, never private members or retired/revoked keys")
    func jwksContents() async throws {
        let storage = MemoryKeyringStorage()
        let keyring = try await Self.open(storage)
        _ = try await keyring.rotate(force: true)
        let document = keyring.snapshot.document
        var published = try Self.jwks(keyring.snapshot)
        #expect(Set(published.compactMap { $0["kid"]?.stringValue }) == Set(KeyringState.of(document).keys))
        #expect(published.count == 3)
        for key in published {
            #expect(key["kty"]?.stringValue == "EC")
            #expect(key["alg"]?.stringValue == "ES256")
            for member in Self.privateMembers { #expect(key[member] == nil, "JWKS leaks \(member)") }
            // Each published key is usable by a verifier.
            _ = try JWK.verifyingKey(from: key)
        }
        // No private scalar of any key appears anywhere in the body.
        let body = String(decoding: keyring.snapshot.jwks, as: UTF8.self)
        for kid in storage.storedKids {
            let key = try #require(storage.key(kid))
            let d = try #require(try JWK.privateJSON(key, kid: kid)["d"]?.stringValue)
            #expect(!body.contains(d))
        }

        // A revoked key leaves the JWKS at once.
        let previous = try #require(KeyringState.kid(.previous, in: document))
        _ = try await keyring.revoke(kid: previous)
        published = try Self.jwks(keyring.snapshot)
        #expect(!published.contains { $0["kid"]?.stringValue == previous })
        #expect(published.count == 2)
    }

    @Test("an HS256 keyring publishes no key at all: its secrets have no public form")
    func jwksWithoutSecrets() async throws {
        let storage = MemoryKeyringStorage()
        let keyring = try await Self.open(storage, configuration: .test(signingAlgorithm: .hs256))
        #expect(try Self.jwks(keyring.snapshot).isEmpty)
        let body = String(decoding: keyring.snapshot.jwks, as: UTF8.self)
        for kid in storage.storedKids {
            let secret = try #require(storage.key(kid)?.secretBytes)
            #expect(!body.contains(Base64URL.encode(secret)))
        }
        // The keys still sign and verify.
        #expect(keyring.snapshot.verifyingKids.count == 2)
    }

    @Test("the ETag changes when the keyring changes, and only then")
    func etag() async throws {
        let storage = MemoryKeyringStorage()
        let clock = TestClock()
        let keyring = try await Self.open(storage, clock: clock)
        let initial = keyring.snapshot.etag
        #expect(initial.hasPrefix("\"") && initial.hasSuffix("\"") && initial.count > 2)

        // Unchanged: a reload, a refused rotation, a maintenance pass with nothing due.
        try await keyring.reload()
        #expect(keyring.snapshot.etag == initial)
        await #expect(throws: ServiceError.self) { try await keyring.rotate(force: false) }
        #expect(keyring.snapshot.etag == initial)
        #expect(try await keyring.maintain() == KeyLifecycle.Change.none)
        #expect(keyring.snapshot.etag == initial)

        clock.advance(by: 300)
        _ = try await keyring.rotate(force: false)
        let rotated = keyring.snapshot.etag
        #expect(rotated != initial)

        let previous = try #require(KeyringState.kid(.previous, in: keyring.snapshot.document))
        _ = try await keyring.revoke(kid: previous)
        #expect(keyring.snapshot.etag != rotated)
    }

    @Test("rotation and revocation are saved: a reopened keyring shows them")
    func persistence() async throws {
        let storage = MemoryKeyringStorage()
        let clock = TestClock()
        let keyring = try await Self.open(storage, clock: clock)
        let first = try #require(KeyringState.kid(.current, in: storage.document))
        let second = try #require(KeyringState.kid(.next, in: storage.document))

        clock.advance(by: 300)
        let change = try await keyring.rotate(force: false)
        #expect(change.promoted == second)
        #expect(change.demoted == first)
        let third = try #require(change.added.first)
        var reopened = try await Self.open(storage, clock: clock)
        #expect(KeyringState.of(reopened.snapshot.document) == [first: .previous, second: .current, third: .next])
        #expect(reopened.snapshot.signer.kid == second)

        _ = try await keyring.revoke(kid: second)
        reopened = try await Self.open(storage, clock: clock)
        let states = KeyringState.of(reopened.snapshot.document)
        #expect(states[second] == .revoked)
        #expect(states[third] == .current)
        #expect(states[first] == .previous)
        #expect(states.values.filter { $0 == .next }.count == 1)
        #expect(reopened.snapshot.revokedKids == [second])
        // A revoked key's private key is gone from the directory.
        #expect(storage.key(second) == nil)
    }

    @Test("rotation through the keyring is refused before the next key is safe, with the time it becomes safe")
    func rotateTooEarly() async throws {
        let storage = MemoryKeyringStorage()
        let clock = TestClock()
        let keyring = try await Self.open(storage, clock: clock)
        clock.advance(by: 120)
        let error = await #expect(throws: ServiceError.self) { try await keyring.rotate(force: false) }
        #expect(error?.code == .rotationTooEarly)
        let safeAt = NumericDate(integer: Int64(StoreFixtures.now) + 300).iso8601
        #expect(error?.reason.contains(safeAt) == true, "\(error?.reason ?? "")")
        #expect(error?.reason.contains("3m") == true, "\(error?.reason ?? "")")
        #expect(storage.saves == 1)
        _ = try await keyring.rotate(force: true)
        #expect(storage.saves == 2)
    }

    @Test("a next key made in the middle of a second is not promoted before a whole max-age in the JWKS")
    func promotionCountsFromPublication() async throws {
        let storage = MemoryKeyringStorage()
        let clock = TestClock(StoreFixtures.now + 0.75)
        let keyring = try await Self.open(storage, clock: clock)
        let next = try #require(keyring.snapshot.document.keys.first { $0.state == .next })
        // The keyring keeps whole seconds: the next key was published at now + 0.75, so its
        // time is the second after.
        #expect(next.created.seconds == StoreFixtures.now + 1)
        clock.set(StoreFixtures.now + 300.5)
        let error = await #expect(throws: ServiceError.self) { try await keyring.rotate(force: false) }
        #expect(error?.code == .rotationTooEarly)
        clock.set(StoreFixtures.now + 301)
        let change = try await keyring.rotate(force: false)
        #expect(change.promoted == next.kid)
    }

    @Test("a key directory that cannot be written leaves the old keyring in place")
    func failedSave() async throws {
        let storage = MemoryKeyringStorage()
        let keyring = try await Self.open(storage)
        let before = keyring.snapshot
        let storedBefore = storage.states
        storage.failSaves = true

        let rotation = await #expect(throws: ServiceError.self) { try await keyring.rotate(force: true) }
        #expect(rotation?.code == .unavailable)
        let current = try #require(KeyringState.kid(.current, in: before.document))
        let revocation = await #expect(throws: ServiceError.self) { try await keyring.revoke(kid: current) }
        #expect(revocation?.code == .unavailable)

        #expect(keyring.snapshot === before)
        #expect(keyring.snapshot.signer.kid == current)
        #expect(keyring.snapshot.revokedKids.isEmpty)
        #expect(storage.states == storedBefore)

        // Once the disk is back, the next rotation starts from the old state, not a half-made one.
        storage.failSaves = false
        let change = try await keyring.rotate(force: true)
        #expect(change.demoted == current)
        #expect(keyring.snapshot.document.keys.count == 3)
        #expect(storage.states == KeyringState.of(keyring.snapshot.document))
    }

    @Test("a reload (SIGHUP) of an inconsistent directory is refused and the old keyring keeps serving")
    func reloadRefusesBrokenDirectory() async throws {
        let storage = MemoryKeyringStorage()
        let keyring = try await Self.open(storage)
        let before = keyring.snapshot
        var broken = storage.document
        for index in broken.keys.indices { broken.keys[index].state = .current }
        storage.save(document: broken)

        let error = await #expect(throws: ServiceError.self) { try await keyring.reload() }
        #expect(error?.code == .keyring)
        #expect(keyring.snapshot === before)

        // A consistent directory written by someone else is picked up.
        let other = try await Self.open(MemoryKeyringStorage())
        storage.save(document: other.snapshot.document)
        await #expect(throws: ServiceError.self) { try await keyring.reload() }  // its key files are missing
        #expect(keyring.snapshot === before)
    }

    @Test("maintenance retires a previous key after the longest token lifetime plus leeway, and rotates on schedule")
    func maintenance() async throws {
        let storage = MemoryKeyringStorage()
        let clock = TestClock()
        var configuration = ServiceConfiguration.test(maxTokenLifetime: 3600)
        configuration.keyRotation = 86_400
        let keyring = try await Self.open(storage, clock: clock, configuration: configuration)
        let first = try #require(KeyringState.kid(.current, in: storage.document))

        clock.advance(by: 86_399)
        #expect(try await keyring.maintain() == KeyLifecycle.Change.none)
        clock.advance(by: 1)
        let rotation = try await keyring.maintain()
        #expect(rotation.demoted == first)
        #expect(storage.states[first] == .previous)

        clock.advance(by: 3600 + 30 - 1)
        #expect(try await keyring.maintain().retired.isEmpty)
        clock.advance(by: 1)
        #expect(try await keyring.maintain().retired == [first])
        #expect(storage.states[first] == .retired)
        #expect(!keyring.snapshot.verifyingKids.contains(first))
        #expect(storage.key(first) == nil)
    }
}
