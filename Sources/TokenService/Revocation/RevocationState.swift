import Synchronization
public import TokenStore

/// Revocations held in memory for O(1) checks on every introspection (DESIGN §3, §9):
/// revoked jtis, subject cutoffs and ended refresh families. Sharded by key so concurrent
/// readers on different event loops rarely meet on one lock; entries are added only after
/// the store has made them durable.
public final class RevocationState: Sendable {
    private static let shardCount = 16

    private struct Shard: Sendable {
        var jtis: [String: Double] = [:]
        var cutoffs: [String: Double] = [:]
        var families: [String: Double] = [:]
    }

    private let shards: [LockedBox<Shard>]
    /// Bumped after every revocation is in place (never for compaction, which drops only
    /// what cannot verify any more): a check that passed at the current generation still
    /// holds.
    private let changes = Atomic<UInt64>(0)

    /// The number of revocations made so far. Read it before checking a token: a revocation
    /// that is not counted yet was not acknowledged yet either.
    public var generation: UInt64 { changes.load(ordering: .acquiring) }

    public init(_ snapshot: RevocationSnapshot = RevocationSnapshot()) {
        shards = (0..<RevocationState.shardCount).map { _ in LockedBox(Shard()) }
        for (jti, exp) in snapshot.revokedAccessTokens { revokeAccessToken(jti: jti, expiresAt: exp) }
        for (subject, cutoff) in snapshot.subjectCutoffs { setCutoff(subject: subject, notBefore: cutoff) }
        for (family, at) in snapshot.revokedFamilies { revokeFamily(id: family, at: at) }
    }

    @inline(__always)
    private func shard(_ key: String) -> Int {
        var hasher = Hasher()
        hasher.combine(key)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(RevocationState.shardCount))
    }

    public func revokeAccessToken(jti: String, expiresAt: Double) {
        shards[shard(jti)].withLock { $0.jtis[jti] = expiresAt }
        changes.add(1, ordering: .releasing)
    }

    public func setCutoff(subject: String, notBefore: Double) {
        shards[shard(subject)].withLock { $0.cutoffs[subject] = max($0.cutoffs[subject] ?? 0, notBefore) }
        changes.add(1, ordering: .releasing)
    }

    public func revokeFamily(id: String, at: Double) {
        shards[shard(id)].withLock { $0.families[id] = at }
        changes.add(1, ordering: .releasing)
    }

    public func isAccessTokenRevoked(jti: String) -> Bool {
        shards[shard(jti)].withLock { $0.jtis[jti] != nil }
    }

    /// The subject's cutoff: tokens issued at or before it are invalid.
    public func cutoff(subject: String) -> Double? {
        shards[shard(subject)].withLock { $0.cutoffs[subject] }
    }

    public func familyRevokedAt(_ id: String) -> Double? {
        shards[shard(id)].withLock { $0.families[id] }
    }

    /// Drops jtis whose tokens have expired (they cannot verify any more anyway).
    public func compact(now: Double) -> Int {
        var removed = 0
        for shard in shards {
            shard.withLock { state in
                let before = state.jtis.count
                state.jtis = state.jtis.filter { $0.value > now }
                removed += before - state.jtis.count
            }
        }
        return removed
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
