import Synchronization
import TokenStore

/// The family of each refresh token this node issued or rotated to, by the token's hash, so
/// a refresh can mint its successor without reading the store first.
///
/// Only what never changes in a family is used from here (its id, subject, client, scope,
/// dialect, creation and end); whether the token is still active and the family not ended is
/// decided in the store's transaction, on the rows it reads. An entry that is out of date
/// (its token spent on another node, its family revoked) therefore costs a signature that is
/// thrown away, never a wrong answer. A token this node has not seen (issued by another node,
/// or older than what is kept) is read from the store as before.
///
/// Bounded: two generations of at most `capacity / 2` entries each; when the newer one is
/// full it becomes the older one and the oldest generation is dropped.
final class RefreshFamilyCache: Sendable {
    private struct Generations {
        var newer: [RefreshTokenKey: RefreshFamily] = [:]
        var older: [RefreshTokenKey: RefreshFamily] = [:]
    }

    private let generations = Mutex(Generations())
    private let generationSize: Int

    init(capacity: Int) {
        generationSize = max(1, capacity / 2)
    }

    /// The family of the refresh token whose store key is `hash`, if this node knows it.
    func family(of hash: [UInt8]) -> RefreshFamily? {
        guard let key = RefreshTokenKey(hash) else { return nil }
        return generations.withLock { $0.newer[key] ?? $0.older[key] }
    }

    /// Remembers `family` for the token hashed `hash`; forgets `spent`, the token it replaces.
    func remember(_ hash: [UInt8], family: RefreshFamily, replacing spent: [UInt8]? = nil) {
        guard let key = RefreshTokenKey(hash) else { return }
        let spentKey = spent.flatMap(RefreshTokenKey.init)
        generations.withLock { generations in
            if let spentKey {
                generations.newer[spentKey] = nil
                generations.older[spentKey] = nil
            }
            if generations.newer.count >= generationSize {
                generations.older = generations.newer
                generations.newer = [:]
            }
            generations.newer[key] = family
        }
    }

    /// Forgets the token hashed `hash` (its family ended, or it was found spent).
    func forget(_ hash: [UInt8]) {
        guard let key = RefreshTokenKey(hash) else { return }
        generations.withLock { generations in
            generations.newer[key] = nil
            generations.older[key] = nil
        }
    }

    var count: Int { generations.withLock { $0.newer.count + $0.older.count } }
}

/// A refresh token's store key (32 bytes) as four words: hashed and compared without an array.
private struct RefreshTokenKey: Hashable, Sendable {
    let a: UInt64
    let b: UInt64
    let c: UInt64
    let d: UInt64

    init?(_ hash: [UInt8]) {
        guard hash.count == 32 else { return nil }
        (a, b, c, d) = hash.withUnsafeBytes { raw in
            (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
    }
}
