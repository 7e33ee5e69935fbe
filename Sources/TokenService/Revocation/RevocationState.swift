import Synchronization
public import TokenStore

/// Revocations held in memory for O(1) checks on every introspection (DESIGN §3, §9):
/// revoked jtis, subject cutoffs and ended refresh families. Sharded by key so concurrent
/// readers on different event loops rarely meet on one lock; entries are added only after
/// the store has made them durable, and dropped by `compact` once no token they cover can
/// verify any more (revoked jtis at their token's exp, ended families at their coverage end),
/// so memory follows what is live rather than everything since start.
public final class RevocationState: Sendable {
    private static let shardCount = 16

    private struct Shard: Sendable {
        var jtis = RevokedJTIs()
        var cutoffs: [String: Double] = [:]
        /// Ended family id → the end of what it covers (`RefreshFamily.coverageEnd`).
        var families: [String: Double] = [:]
        /// Subjects whose cutoff is being made durable: issuance under a ticket waits for none
        /// of them, it is refused (see `reserveIssuance`).
        var pendingCutoffs: [String: Int] = [:]
    }

    private let shards: [LockedBox<Shard>]
    /// Bumped after every revocation is in place (never for compaction, which drops only
    /// what cannot verify any more): a check that passed at the current generation still
    /// holds.
    private let changes = Atomic<UInt64>(0)
    /// The latest clock reading (whole seconds) any issuance fixed its `iat` from: a cutoff
    /// begun later is never below it, even if the wall clock stepped back.
    private let latestIssuanceClock = Atomic<Int64>(0)

    /// The number of revocations made so far. Read it before checking a token: a revocation
    /// that is not counted yet was not acknowledged yet either.
    public var generation: UInt64 { changes.load(ordering: .acquiring) }

    public init(_ snapshot: RevocationSnapshot = RevocationSnapshot()) {
        shards = (0..<RevocationState.shardCount).map { _ in LockedBox(Shard()) }
        for (jti, exp) in snapshot.revokedAccessTokens { revokeAccessToken(jti: jti, expiresAt: exp) }
        for (subject, cutoff) in snapshot.subjectCutoffs { setCutoff(subject: subject, notBefore: cutoff) }
        for (family, end) in snapshot.revokedFamilies { revokeFamily(id: family, until: end) }
    }

    @inline(__always)
    private func shard(_ key: String) -> Int {
        var hasher = Hasher()
        hasher.combine(key)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(RevocationState.shardCount))
    }

    @inline(__always)
    private func shard(_ key: RevokedJTIs.Key) -> Int {
        switch key {
        // Random bits: the high word picks the shard; the table inside mixes the whole key.
        case .packed(let bits): Int(UInt64(truncatingIfNeeded: bits >> 64) % UInt64(RevocationState.shardCount))
        case .other(let jti): shard(jti)
        }
    }

    /// Denies `jti` until `expiresAt` (the later of two revocations stands).
    public func revokeAccessToken(jti: String, expiresAt: Double) {
        let key = RevokedJTIs.Key(jti)
        shards[shard(key)].withLock { $0.jtis.insert(key, expiresAt: expiresAt) }
        changes.add(1, ordering: .releasing)
    }

    public func setCutoff(subject: String, notBefore: Double) {
        shards[shard(subject)].withLock { $0.cutoffs[subject] = max($0.cutoffs[subject] ?? 0, notBefore) }
        changes.add(1, ordering: .releasing)
    }

    /// The subject's cutoff as an issuance saw it before it started its slow work (hashing a
    /// password, reading a refresh family): `reserveIssuance` refuses if it moved since.
    public func ticket(subject: String) -> IssuanceTicket {
        IssuanceTicket(subject: subject, cutoff: cutoff(subject: subject))
    }

    /// Fixes the `iat` of a token for `subject`, atomically with the subject's cutoffs: nil
    /// when `ticket` is given and a cutoff was set since it was taken, or is being set now.
    ///
    /// Together with `beginCutoff` this orders every issuance against every cutoff of its
    /// subject. An `iat` fixed before a cutoff begins is at or before that cutoff (the
    /// cutoff's time is read after it began, and is never below `latestIssuanceClock` nor
    /// below the previous cutoff + 1), so the token is revoked with the others; an issuance
    /// whose ticket predates a cutoff and that comes after it began is refused. Only a ticket
    /// taken after a cutoff completed may issue a token that outlives it.
    public func reserveIssuance(subject: String, ticket: IssuanceTicket?, now: Double) -> Int64? {
        shards[shard(subject)].withLock { state -> Int64? in
            let cutoff = state.cutoffs[subject]
            if let ticket {
                if ticket.subject != subject || state.pendingCutoffs[subject] != nil || ticket.cutoff != cutoff {
                    return nil
                }
            }
            let clock = Int64(now.rounded(.down))
            latestIssuanceClock.max(clock)
            // A token must never fall under a cutoff set in the same second it is issued in
            // (iat is whole seconds): start such tokens one second later.
            if let cutoff, Double(clock) <= cutoff { return Int64(cutoff.rounded(.down)) + 1 }
            return clock
        }
    }

    /// Starts a cutoff for `subject`: from now until `finishCutoff`, every issuance under a
    /// ticket for it is refused. Returns the earliest time the cutoff may be set to so that
    /// it covers every token whose `iat` was fixed before: the later of `now`, the latest
    /// issuance clock and the previous cutoff + 1 (tokens issued after it carry that `iat`).
    public func beginCutoff(subject: String, now: Double) -> Double {
        shards[shard(subject)].withLock { state -> Double in
            state.pendingCutoffs[subject, default: 0] += 1
            var notBefore = max(now, Double(latestIssuanceClock.load(ordering: .relaxed)))
            if let earlier = state.cutoffs[subject] { notBefore = max(notBefore, earlier.rounded(.down) + 1) }
            return notBefore
        }
    }

    /// Ends what `beginCutoff` started: sets the cutoff when it was made durable (`notBefore`
    /// non-nil), and lets ticketed issuance for the subject proceed again.
    public func finishCutoff(subject: String, notBefore: Double?) {
        shards[shard(subject)].withLock { state in
            if let notBefore { state.cutoffs[subject] = max(state.cutoffs[subject] ?? 0, notBefore) }
            let left = (state.pendingCutoffs[subject] ?? 1) - 1
            state.pendingCutoffs[subject] = left > 0 ? left : nil
        }
        if notBefore != nil { changes.add(1, ordering: .releasing) }
    }

    /// Ends family `id` in memory until `end`, the end of what it covers
    /// (`RefreshFamily.coverageEnd`): after it no token of the family verifies, and `compact`
    /// drops it.
    public func revokeFamily(id: String, until end: Double) {
        shards[shard(id)].withLock { $0.families[id] = max($0.families[id] ?? end, end) }
        changes.add(1, ordering: .releasing)
    }

    public func isAccessTokenRevoked(jti: String) -> Bool {
        let key = RevokedJTIs.Key(jti)
        return shards[shard(key)].withLock { $0.jtis.contains(key) }
    }

    /// The subject's cutoff: tokens issued at or before it are invalid.
    public func cutoff(subject: String) -> Double? {
        shards[shard(subject)].withLock { $0.cutoffs[subject] }
    }

    /// Whether family `id` has ended (its access tokens are inactive).
    public func isFamilyRevoked(_ id: String) -> Bool {
        shards[shard(id)].withLock { $0.families[id] != nil }
    }

    /// Drops the jtis and ended families whose tokens have all expired by `now` (they cannot
    /// verify any more anyway); returns how many went. Pass `now` minus the clock leeway, as
    /// for the store's `compact`. Subject cutoffs stay (one per subject).
    public func compact(now: Double) -> Int {
        var removed = 0
        for shard in shards {
            removed += shard.withLock { state -> Int in
                var removed = state.jtis.removeExpired(now: now)
                if state.families.contains(where: { $0.value <= now }) {
                    let before = state.families.count
                    state.families = state.families.filter { $0.value > now }
                    removed += before - state.families.count
                }
                return removed
            }
        }
        return removed
    }

    /// Bytes the revoked-jti tables take, for tests of the per-jti cost.
    package var revokedJTITableBytes: Int {
        shards.reduce(0) { total, shard in total + shard.withLock { $0.jtis.tableBytes } }
    }

    public var counts: (jtis: Int, cutoffs: Int, families: Int) {
        var result = (0, 0, 0)
        for shard in shards {
            shard.withLock {
                result.0 += $0.jtis.count
                result.1 += $0.cutoffs.count
                result.2 += $0.families.count
            }
        }
        return result
    }
}

/// A subject's cutoff as seen when a sign-in or refresh began; see
/// `RevocationState.reserveIssuance`.
public struct IssuanceTicket: Sendable, Equatable {
    public let subject: String
    let cutoff: Double?
}

extension Atomic where Value == Int64 {
    /// Raises the value to `candidate` if it is lower.
    fileprivate func max(_ candidate: Int64) {
        var current = load(ordering: .relaxed)
        while current < candidate {
            let (exchanged, original) = compareExchange(
                expected: current,
                desired: candidate,
                ordering: .relaxed
            )
            if exchanged { return }
            current = original
        }
    }
}
