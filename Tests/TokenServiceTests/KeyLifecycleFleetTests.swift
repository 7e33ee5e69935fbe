import CodedErrors
import JOSE
import Testing
import TokenService
import TokenStore

/// Issue 12 item 5: on a fleet, the next key's JWKS max-age starts only once every node
/// publishes it (what the heartbeats say), not when it was created.
@Suite("KeyLifecycle on a fleet")
struct KeyLifecycleFleetTests {
    typealias Base = KeyLifecycleTests

    @Test("a live node that does not publish the next key yet blocks the rotation, naming the node")
    func liveNodeMissing() throws {
        var lifecycle = Base.bootstrapped()
        let fleet = KeyPublication(kid: "B", missing: ["host-c/42 (0c4d9e3b)"], everywhereFor: nil)
        let error = #expect(throws: ServiceError.self) {
            try lifecycle.rotate(
                newNext: Base.entry("C"),
                now: Base.date(Base.t0 + 10_000),
                jwksMaxAge: Base.maxAge,
                force: false,
                fleet: fleet
            )
        }
        #expect(error?.code == .rotationTooEarly)
        #expect(error?.reason.contains("host-c/42") == true, "\(error?.reason ?? "")")
        #expect(Base.states(lifecycle) == ["A": .current, "B": .next])
        #expect(lifecycle.safeRotationTime(jwksMaxAge: Base.maxAge, fleet: fleet, now: 0) == nil)
    }

    @Test("max-age counts from when the last node published the key, even long after it was created")
    func countsFromTheLastNode() throws {
        var lifecycle = Base.bootstrapped()
        let now = Base.t0 + 10_000
        // Every node has published B for 100 s only: 200 s to go.
        let fleet = KeyPublication(kid: "B", missing: [], everywhereFor: 100)
        let error = #expect(throws: ServiceError.self) {
            try lifecycle.rotate(
                newNext: Base.entry("C"),
                now: Base.date(now),
                jwksMaxAge: Base.maxAge,
                force: false,
                fleet: fleet
            )
        }
        #expect(error?.code == .rotationTooEarly)
        #expect(error?.reason.contains("by every node") == true, "\(error?.reason ?? "")")
        #expect(error?.reason.contains("in 3m 20s") == true, "\(error?.reason ?? "")")
        #expect(
            lifecycle.safeRotationTime(jwksMaxAge: Base.maxAge, fleet: fleet, now: Double(now))
                == Double(now + 200)
        )
        // Once every node has had it for max-age, it rotates.
        let later = KeyPublication(kid: "B", missing: [], everywhereFor: 300)
        let change = try lifecycle.rotate(
            newNext: Base.entry("C"),
            now: Base.date(now),
            jwksMaxAge: Base.maxAge,
            force: false,
            fleet: later
        )
        #expect(change.promoted == "B")
    }

    @Test("nodes that published the key from their start leave the rule at the key's creation")
    func publishedFromStart() throws {
        var lifecycle = Base.bootstrapped()
        let fleet = KeyPublication(kid: "B", missing: [], everywhereFor: nil)
        #expect(throws: ServiceError.self) {
            try lifecycle.rotate(
                newNext: Base.entry("C"),
                now: Base.date(Base.t0 + 299),
                jwksMaxAge: Base.maxAge,
                force: false,
                fleet: fleet
            )
        }
        let change = try lifecycle.rotate(
            newNext: Base.entry("C"),
            now: Base.date(Base.t0 + 300),
            jwksMaxAge: Base.maxAge,
            force: false,
            fleet: fleet
        )
        #expect(change.promoted == "B")
    }

    @Test("force rotates whatever the fleet says (an emergency)")
    func forceIgnoresTheFleet() throws {
        var lifecycle = Base.bootstrapped()
        let change = try lifecycle.rotate(
            newNext: Base.entry("C"),
            now: Base.date(Base.t0 + 1),
            jwksMaxAge: Base.maxAge,
            force: true,
            fleet: KeyPublication(kid: "B", missing: ["host-c/42 (0c4d9e3b)"], everywhereFor: nil)
        )
        #expect(change.promoted == "B")
    }
}
