import CodedErrors
import JOSE
import Logging
import Testing
import TokenCrypto
import TokenService
import TokenTestSupport

/// DESIGN §4's key lifecycle as a pure state machine: no keys, no files, only entries.
@Suite("KeyLifecycle")
struct KeyLifecycleTests {
    static let t0: Int64 = 1_700_000_000
    static let maxAge: Double = 300

    static func entry(_ kid: String, _ state: KeyState = .next, created: Int64 = t0) -> KeyringDocument.Entry {
        KeyringDocument.Entry(kid: kid, algorithm: .es256, state: state, created: NumericDate(integer: created))
    }

    static func date(_ seconds: Int64) -> NumericDate { NumericDate(integer: seconds) }

    /// A bootstrapped keyring: A current, B next, both created at t0.
    static func bootstrapped() -> KeyLifecycle {
        var lifecycle = KeyLifecycle(entries: [])
        _ = lifecycle.bootstrap(current: entry("A"), next: entry("B"), now: date(t0))
        return lifecycle
    }

    /// A after one rotation at `t0 + maxAge`: A previous, B current, C next.
    static func rotated() throws -> KeyLifecycle {
        var lifecycle = bootstrapped()
        _ = try lifecycle.rotate(
            newNext: entry("C", created: t0 + 300),
            now: date(t0 + 300),
            jwksMaxAge: maxAge,
            force: false
        )
        return lifecycle
    }

    static func states(_ lifecycle: KeyLifecycle) -> [String: KeyState] {
        Dictionary(uniqueKeysWithValues: lifecycle.entries.map { ($0.kid, $0.state) })
    }

    static func entry(_ kid: String, in lifecycle: KeyLifecycle) throws -> KeyringDocument.Entry {
        try #require(lifecycle.entries.first { $0.kid == kid })
    }

    @Test("bootstrap gives one current key that signs at once and one next key")
    func bootstrap() throws {
        var lifecycle = KeyLifecycle(entries: [])
        let change = lifecycle.bootstrap(current: Self.entry("A"), next: Self.entry("B"), now: Self.date(Self.t0))
        #expect(Self.states(lifecycle) == ["A": .current, "B": .next])
        #expect(lifecycle.current?.kid == "A")
        #expect(lifecycle.next?.kid == "B")
        #expect(try Self.entry("A", in: lifecycle).activated == Self.date(Self.t0))
        #expect(try Self.entry("B", in: lifecycle).activated == nil)
        #expect(change.promoted == "A")
        #expect(change.added == ["A", "B"])
        try lifecycle.validate()
    }

    @Test("rotation before next has been published for the JWKS max-age is refused, naming the safe time")
    func rotateTooEarly() throws {
        var lifecycle = Self.bootstrapped()
        let error = #expect(throws: ServiceError.self) {
            try lifecycle.rotate(
                newNext: Self.entry("C"),
                now: Self.date(Self.t0 + 299),
                jwksMaxAge: Self.maxAge,
                force: false
            )
        }
        #expect(error?.code == .rotationTooEarly)
        let safeAt = Self.date(Self.t0 + 300).iso8601
        #expect(error?.reason.contains(safeAt) == true, "\(error?.reason ?? "")")
        #expect(error?.reason.contains("in 1s") == true, "\(error?.reason ?? "")")
        #expect(error?.reason.contains("B") == true)
        // Nothing moved.
        #expect(Self.states(lifecycle) == ["A": .current, "B": .next])
        #expect(lifecycle.safeRotationTime(jwksMaxAge: Self.maxAge) == Double(Self.t0 + 300))
    }

    @Test("rotation once next has been published for the max-age: current → previous, next → current, a new next")
    func rotateWhenSafe() throws {
        var lifecycle = Self.bootstrapped()
        let now = Self.date(Self.t0 + 300)
        let change = try lifecycle.rotate(
            newNext: Self.entry("C", created: Self.t0 + 300),
            now: now,
            jwksMaxAge: Self.maxAge,
            force: false
        )
        #expect(Self.states(lifecycle) == ["A": .previous, "B": .current, "C": .next])
        #expect(try Self.entry("A", in: lifecycle).deactivated == now)
        #expect(try Self.entry("B", in: lifecycle).activated == now)
        #expect(change.promoted == "B")
        #expect(change.demoted == "A")
        #expect(change.added == ["C"])
        try lifecycle.validate()
    }

    @Test("forced rotation is allowed at once (emergency)")
    func rotateForced() throws {
        var lifecycle = Self.bootstrapped()
        let change = try lifecycle.rotate(
            newNext: Self.entry("C", created: Self.t0 + 1),
            now: Self.date(Self.t0 + 1),
            jwksMaxAge: Self.maxAge,
            force: true
        )
        #expect(Self.states(lifecycle) == ["A": .previous, "B": .current, "C": .next])
        #expect(change.promoted == "B")
        try lifecycle.validate()
    }

    @Test("revoking the current key promotes next at once and adds a new next")
    func revokeCurrent() throws {
        var lifecycle = Self.bootstrapped()
        let now = Self.date(Self.t0 + 5)
        let change = try lifecycle.revoke(kid: "A", newNext: Self.entry("C", created: Self.t0 + 5), now: now)
        #expect(Self.states(lifecycle) == ["A": .revoked, "B": .current, "C": .next])
        let revoked = try Self.entry("A", in: lifecycle)
        #expect(revoked.retired == now)
        #expect(revoked.deactivated == now)
        #expect(try Self.entry("B", in: lifecycle).activated == now)
        #expect(change.revoked == "A")
        #expect(change.promoted == "B")
        #expect(change.added == ["C"])
        try lifecycle.validate()
    }

    @Test("revoking the next key keeps current and adds a new next")
    func revokeNext() throws {
        var lifecycle = Self.bootstrapped()
        let change = try lifecycle.revoke(kid: "B", newNext: Self.entry("C"), now: Self.date(Self.t0 + 5))
        #expect(Self.states(lifecycle) == ["A": .current, "B": .revoked, "C": .next])
        #expect(change.promoted == nil)
        #expect(change.added == ["C"])
        try lifecycle.validate()
    }

    @Test("revoking the previous key keeps current and next and adds nothing")
    func revokePrevious() throws {
        var lifecycle = try Self.rotated()
        let change = try lifecycle.revoke(kid: "A", newNext: Self.entry("D"), now: Self.date(Self.t0 + 400))
        #expect(Self.states(lifecycle) == ["A": .revoked, "B": .current, "C": .next])
        #expect(change.revoked == "A")
        #expect(change.promoted == nil)
        #expect(change.added.isEmpty)
        try lifecycle.validate()
    }

    @Test("revoking an unknown kid is refused; revoking a revoked key again changes nothing")
    func revokeUnknownAndTwice() throws {
        var lifecycle = Self.bootstrapped()
        let error = #expect(throws: ServiceError.self) {
            try lifecycle.revoke(kid: "nope", newNext: Self.entry("C"), now: Self.date(Self.t0))
        }
        #expect(error?.code == .notFound)
        _ = try lifecycle.revoke(kid: "B", newNext: Self.entry("C"), now: Self.date(Self.t0))
        let again = try lifecycle.revoke(kid: "B", newNext: Self.entry("D"), now: Self.date(Self.t0 + 1))
        #expect(again == KeyLifecycle.Change.none)
        #expect(Self.states(lifecycle) == ["A": .current, "B": .revoked, "C": .next])
    }

    @Test("a previous key is retired only once its longest token has expired, leeway included")
    func retireExpired() throws {
        var lifecycle = try Self.rotated()  // A deactivated at t0 + 300
        let lifetime: Double = 3600
        let leeway: Double = 30
        let boundary = Self.t0 + 300 + 3600 + 30

        let early = lifecycle.retireExpired(now: Self.date(boundary - 1), maxTokenLifetime: lifetime, leeway: leeway)
        #expect(early.retired.isEmpty)
        #expect(Self.states(lifecycle)["A"] == .previous)

        let due = lifecycle.retireExpired(now: Self.date(boundary), maxTokenLifetime: lifetime, leeway: leeway)
        #expect(due.retired == ["A"])
        #expect(Self.states(lifecycle) == ["A": .retired, "B": .current, "C": .next])
        #expect(try Self.entry("A", in: lifecycle).retired == Self.date(boundary))
        try lifecycle.validate()
    }

    @Test("current and next keys are never retired, however old")
    func retireKeepsCurrentAndNext() {
        var lifecycle = Self.bootstrapped()
        let change = lifecycle.retireExpired(
            now: Self.date(Self.t0 + 10 * 365 * 86_400),
            maxTokenLifetime: 3600,
            leeway: 30
        )
        #expect(change.retired.isEmpty)
        #expect(Self.states(lifecycle) == ["A": .current, "B": .next])
    }

    @Test("validate accepts one current and one next with unique kids")
    func validateAccepts() throws {
        try KeyLifecycle(entries: [Self.entry("A", .current), Self.entry("B", .next), Self.entry("C", .previous)])
            .validate()
    }

    @Test(
        "validate refuses broken keyrings, saying what is wrong",
        arguments: [
            ([("A", KeyState.current), ("B", .current), ("C", .next)], "exactly one current"),
            ([("A", KeyState.current), ("B", .previous)], "exactly one next"),
            ([("A", KeyState.next), ("B", .previous)], "exactly one current"),
            ([("A", KeyState.current), ("B", .next), ("C", .next)], "exactly one next"),
            ([("A", KeyState.current), ("B", .next), ("A", .previous)], "twice"),
        ]
    )
    func validateRefuses(entries: [(String, KeyState)], message: String) {
        let lifecycle = KeyLifecycle(entries: entries.map { Self.entry($0.0, $0.1) })
        let error = #expect(throws: ServiceError.self) { try lifecycle.validate() }
        #expect(error?.code == .keyring)
        #expect(error?.reason.contains(message) == true, "\(error?.reason ?? "")")
    }

    @Test("scheduled rotation is due once current has signed for the interval")
    func rotationDue() throws {
        let lifecycle = Self.bootstrapped()  // A activated at t0
        let day: Double = 86_400
        #expect(!lifecycle.rotationDue(now: Double(Self.t0) + day - 1, interval: day))
        #expect(lifecycle.rotationDue(now: Double(Self.t0) + day, interval: day))
        // A keyring without an activated current key is never due.
        #expect(!KeyLifecycle(entries: [Self.entry("A", .next)]).rotationDue(now: 9e9, interval: day))
    }

    @Test("a key change the disk refuses is logged as an error; one refused by the rules as a warning")
    func failedKeyChangesAreLogged() async throws {
        let capture = LogCapture()
        let harness = try await Harness.make(logger: capture.logger())
        // Too early: the next key has not been in the JWKS for its max-age.
        await #expect(throws: ServiceError.self) { try await harness.service.rotateKeys(force: false) }
        await #expect(throws: ServiceError.self) { try await harness.service.revokeKey(kid: "no-such-kid") }
        harness.storage.failSaves = true
        await #expect(throws: ServiceError.self) { try await harness.service.rotateKeys(force: true) }

        let records = capture.all.filter { $0.message.hasPrefix("key ") }
        #expect(records.map(\.message) == ["key rotation refused", "key revocation refused", "key rotation failed"])
        #expect(records.map(\.level) == [.warning, .warning, .error])
        #expect(records.last?.metadata["reason"].map { "\($0)" }?.contains("key directory") == true)
    }
}
