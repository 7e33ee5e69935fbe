public import JOSE
public import TokenStore

/// The key lifecycle of DESIGN §4 as a value-type state machine: next → current → previous →
/// retired, and any state → revoked. It decides; `Keyring` generates keys and persists.
public struct KeyLifecycle: Sendable {
    public private(set) var entries: [KeyringDocument.Entry]

    public init(entries: [KeyringDocument.Entry]) { self.entries = entries }

    public var current: KeyringDocument.Entry? { entries.first { $0.state == .current } }
    public var next: KeyringDocument.Entry? { entries.first { $0.state == .next } }

    /// What a change did, for the event log and messages.
    public struct Change: Sendable, Equatable {
        public var promoted: String?
        public var demoted: String?
        public var added: [String] = []
        public var retired: [String] = []
        public var revoked: String?
    }

    /// Checks the invariants: exactly one current and one next, unique kids.
    public func validate() throws {
        let kids = entries.map(\.kid)
        guard Set(kids).count == kids.count else { throw ServiceError.keyring("keyring.json lists a kid twice") }
        let currents = entries.filter { $0.state == .current }.count
        let nexts = entries.filter { $0.state == .next }.count
        guard currents == 1 else {
            throw ServiceError.keyring("keyring.json must have exactly one current key, it has \(currents)")
        }
        guard nexts == 1 else {
            throw ServiceError.keyring("keyring.json must have exactly one next key, it has \(nexts)")
        }
    }

    /// An empty keyring gets `current` (signing at once) and `next`.
    public mutating func bootstrap(
        current: KeyringDocument.Entry,
        next: KeyringDocument.Entry,
        now: NumericDate
    ) -> Change {
        var first = current
        first.state = .current
        first.activated = now
        var second = next
        second.state = .next
        entries = [first, second]
        return Change(promoted: first.kid, added: [first.kid, second.kid])
    }

    /// The earliest time `next` may be promoted: once it has been in the JWKS for max-age —
    /// on a fleet, in every node's JWKS (`fleet`, read from the heartbeats at `now`): a verifier
    /// may have cached a JWKS without it from a node that did not publish it yet. Nil when
    /// there is no next key, or a live node does not publish it yet (no time can be said).
    public func safeRotationTime(jwksMaxAge: Double, fleet: KeyPublication? = nil, now: Double = 0) -> Double? {
        guard let next else { return nil }
        var safeAt = next.created.seconds + jwksMaxAge
        if let fleet {
            guard fleet.kid == next.kid, fleet.missing.isEmpty else { return nil }
            if let everywhereFor = fleet.everywhereFor { safeAt = max(safeAt, now - everywhereFor + jwksMaxAge) }
        }
        return safeAt
    }

    /// Promotes next → current, current → previous, adds `newNext`. Refuses while the next
    /// key has been published for less than the JWKS max-age — on a fleet, by every node
    /// (`fleet`) — unless `force` (emergency).
    public mutating func rotate(
        newNext: KeyringDocument.Entry,
        now: NumericDate,
        jwksMaxAge: Double,
        force: Bool,
        fleet: KeyPublication? = nil
    ) throws
        -> Change
    {
        guard let nextIndex = entries.firstIndex(where: { $0.state == .next }),
            let currentIndex = entries.firstIndex(where: { $0.state == .current })
        else { throw ServiceError.keyring("the keyring has no current or no next key") }
        let kid = entries[nextIndex].kid
        if !force, let fleet, !fleet.lacking(kid).isEmpty {
            let missing = fleet.lacking(kid).joined(separator: ", ")
            throw ServiceError.rotationTooEarly(
                "next key \(kid) is not yet published by every live node (not by \(missing)); its JWKS max-age (\(DurationText.describe(jwksMaxAge))) starts once every node publishes it, or force it for an emergency"
            )
        }
        let safeAt =
            safeRotationTime(jwksMaxAge: jwksMaxAge, fleet: fleet, now: now.seconds)
            ?? entries[nextIndex].created.seconds + jwksMaxAge
        if !force, now.seconds < safeAt {
            let wait = DurationText.describe(safeAt - now.seconds)
            let when = NumericDate(seconds: safeAt)?.iso8601 ?? "later"
            throw ServiceError.rotationTooEarly(
                "next key \(entries[nextIndex].kid) has been published\(fleet == nil ? "" : " by every node") for less than the JWKS max-age (\(DurationText.describe(jwksMaxAge))); rotation is safe at \(when) (in \(wait)), or force it for an emergency"
            )
        }
        var change = Change()
        entries[currentIndex].state = .previous
        entries[currentIndex].deactivated = now
        change.demoted = entries[currentIndex].kid
        entries[nextIndex].state = .current
        entries[nextIndex].activated = now
        change.promoted = entries[nextIndex].kid
        var fresh = newNext
        fresh.state = .next
        entries.append(fresh)
        change.added = [fresh.kid]
        return change
    }

    /// Revokes `kid` at once. A revoked current key is replaced by next (forced), and a new
    /// next is added whenever next moved or was revoked.
    public mutating func revoke(kid: String, newNext: KeyringDocument.Entry, now: NumericDate) throws -> Change {
        guard let index = entries.firstIndex(where: { $0.kid == kid }) else {
            throw ServiceError.notFound("no key \(kid) in the keyring")
        }
        let was = entries[index].state
        guard was != .revoked else { return Change() }
        var change = Change(revoked: kid)
        entries[index].state = .revoked
        entries[index].retired = now
        if was == .current {
            entries[index].deactivated = now
            if let nextIndex = entries.firstIndex(where: { $0.state == .next }) {
                entries[nextIndex].state = .current
                entries[nextIndex].activated = now
                change.promoted = entries[nextIndex].kid
            }
        }
        if was == .current || was == .next {
            var fresh = newNext
            fresh.state = .next
            entries.append(fresh)
            change.added = [fresh.kid]
        }
        return change
    }

    /// Retires previous keys whose every token has expired: they stopped signing more than
    /// the longest token lifetime plus leeway ago.
    public mutating func retireExpired(now: NumericDate, maxTokenLifetime: Double, leeway: Double) -> Change {
        var change = Change()
        for index in entries.indices where entries[index].state == .previous {
            let stopped = entries[index].deactivated?.seconds ?? entries[index].created.seconds
            if stopped + maxTokenLifetime + leeway <= now.seconds {
                entries[index].state = .retired
                entries[index].retired = now
                change.retired.append(entries[index].kid)
            }
        }
        return change
    }

    /// True when scheduled rotation is due: current has signed for `interval`.
    public func rotationDue(now: Double, interval: Double) -> Bool {
        guard let activated = current?.activated?.seconds else { return false }
        return now >= activated + interval
    }
}
