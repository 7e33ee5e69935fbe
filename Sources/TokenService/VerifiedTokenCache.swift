import JOSE
import Synchronization

/// What introspection needs of a token whose signature and claims were verified once.
///
/// A class: the cache hands out one reference per hit rather than copies of every field. It
/// also remembers the keyring revision and the revocation generation it last passed its
/// revocation checks at, so a hit re-checks them in O(1) when nothing was revoked since
/// (``TokenService/inactiveReason(_:now:)``).
public final class VerifiedToken: Sendable {
    public let subject: String
    public let scope: String
    public let clientID: String?
    public let username: String?
    public let issuer: String
    public let audience: [String]?
    public let jti: String
    public let kid: String
    /// The refresh family (`sid`), when the token came from a sign-in with refresh.
    public let familyID: String?
    public let exp: Double
    public let iat: Double
    public let nbf: Double?
    /// The RFC 7662 §2.2 answer for this token while it is active, as compact JSON (`scope`
    /// always a string): built once when the token is verified, so answering for a cached
    /// token costs no serialisation.
    public let activeIntrospection: [UInt8]
    /// The keyring revision and revocation generation at which the revocation checks last
    /// passed (`UInt64.max`: never).
    private let checkedKeyring = Atomic<UInt64>(UInt64.max)
    private let checkedRevocations = Atomic<UInt64>(UInt64.max)

    /// Whether the revocation checks passed at exactly this keyring revision and revocation
    /// generation.
    func passedChecks(keyring: UInt64, revocations: UInt64) -> Bool {
        checkedRevocations.load(ordering: .relaxed) == revocations && checkedKeyring.load(ordering: .relaxed) == keyring
    }

    /// Records that the revocation checks passed against the state of `keyring` and
    /// `revocations`, both read before the checks began.
    func recordPassedChecks(keyring: UInt64, revocations: UInt64) {
        checkedKeyring.store(keyring, ordering: .relaxed)
        checkedRevocations.store(revocations, ordering: .relaxed)
    }

    init(
        subject: String,
        scope: String,
        clientID: String?,
        username: String?,
        issuer: String,
        audience: [String]?,
        jti: String,
        kid: String,
        familyID: String?,
        exp: Double,
        iat: Double,
        nbf: Double?
    ) {
        self.subject = subject
        self.scope = scope
        self.clientID = clientID
        self.username = username
        self.issuer = issuer
        self.audience = audience
        self.jti = jti
        self.kid = kid
        self.familyID = familyID
        self.exp = exp
        self.iat = iat
        self.nbf = nbf
        var body = JSONObject()
        body["active"] = .bool(true)
        body["sub"] = .string(subject)
        body["scope"] = .string(scope)
        if let clientID { body["client_id"] = .string(clientID) }
        if let username { body["username"] = .string(username) }
        body["token_type"] = "Bearer"
        body["exp"] = .number(JSONNumber(Int64(exp)))
        body["iat"] = .number(JSONNumber(Int64(iat)))
        if let nbf { body["nbf"] = .number(JSONNumber(Int64(nbf))) }
        if let audience {
            body["aud"] = audience.count == 1 ? .string(audience[0]) : .array(audience.map { .string($0) })
        }
        body["iss"] = .string(issuer)
        body["jti"] = .string(jti)
        activeIntrospection = JSONValue.object(body).compactBytes
    }
}

/// A bounded map from token text to its verified claims, so a repeated token skips the
/// signature check. Expiry and revocation are not cached: callers re-check them on every hit.
///
/// Set-associative, like a CPU cache: a token's keyed hash picks one set of four places,
/// a hit compares the stored hash and then the whole token text, and an insert into a full
/// set replaces that set's oldest entry. Inserting and evicting cost no reordering and no
/// second hash; the sets are spread over 64 locks, so event loops rarely meet on one. Only
/// verified tokens are inserted, so a client cannot fill the cache with tokens of its own.
final class VerifiedTokenCache: Sendable {
    private static let maxLocks = 64
    private static let ways = 4

    /// One place: the token's hash (0 when empty), its text and what it verified to.
    private struct Slot: Sendable {
        var hash: UInt64 = 0
        var token: String = ""
        var value: VerifiedToken?
    }

    /// The sets under one lock: set `s` of this lock is `slots[s * ways ..< (s + 1) * ways]`,
    /// and `victims[s]` the way its next insert replaces when the set is full.
    private struct Shard: Sendable {
        var slots: [Slot]
        var victims: [UInt8]
        var count = 0

        init(sets: Int) {
            slots = Array(repeating: Slot(), count: sets * VerifiedTokenCache.ways)
            victims = Array(repeating: 0, count: sets)
        }
    }

    private let shards: [LockedBox<Shard>]
    /// Sets per lock, a power of two.
    private let setsPerShard: Int

    /// Holds at most `capacity` tokens (rounded down to a power of two, at least four).
    init(capacity: Int) {
        let wanted = max(1, capacity / VerifiedTokenCache.ways)
        var sets = 1
        while sets * 2 <= wanted { sets *= 2 }
        let locks = min(VerifiedTokenCache.maxLocks, sets)
        setsPerShard = sets / locks
        let perShard = setsPerShard
        shards = (0..<locks).map { _ in LockedBox(Shard(sets: perShard)) }
    }

    /// A keyed hash of the token (never 0): its length and last 32 bytes, which for a JWS are
    /// signature bytes. Tokens that share them only share a set; hits compare the whole text.
    @inline(__always)
    private static func hash(_ token: String) -> UInt64 {
        var hasher = Hasher()
        let hashed: Void? = token.utf8.withContiguousStorageIfAvailable { bytes in
            hasher.combine(bytes.count)
            hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes.suffix(32))))
        }
        if hashed == nil { hasher.combine(token) }
        return UInt64(UInt(bitPattern: hasher.finalize())) | 1
    }

    /// The lock and the first slot of the token's set.
    @inline(__always)
    private func place(_ hash: UInt64) -> (shard: Int, set: Int) {
        let shard = Int(truncatingIfNeeded: hash >> 58) & (shards.count - 1)
        let set = Int(truncatingIfNeeded: hash >> 1) & (setsPerShard - 1)
        return (shard, set)
    }

    func lookup(_ token: String) -> VerifiedToken? {
        let hash = Self.hash(token)
        let (shard, set) = place(hash)
        return shards[shard].withLock { state -> VerifiedToken? in
            let first = set * VerifiedTokenCache.ways
            for i in first..<(first + VerifiedTokenCache.ways)
            where state.slots[i].hash == hash && state.slots[i].token == token {
                return state.slots[i].value
            }
            return nil
        }
    }

    func insert(_ token: String, _ verified: VerifiedToken) {
        let hash = Self.hash(token)
        let (shard, set) = place(hash)
        shards[shard].withLock { state in
            let first = set * VerifiedTokenCache.ways
            var free: Int?
            for i in first..<(first + VerifiedTokenCache.ways) {
                if state.slots[i].hash == hash, state.slots[i].token == token {
                    state.slots[i].value = verified
                    return
                }
                if free == nil, state.slots[i].hash == 0 { free = i }
            }
            let target: Int
            if let free {
                target = free
                state.count += 1
            } else {
                // Full: the set's oldest entry makes room.
                let way = Int(state.victims[set])
                target = first + way
                state.victims[set] = UInt8((way + 1) % VerifiedTokenCache.ways)
            }
            state.slots[target] = Slot(hash: hash, token: token, value: verified)
        }
    }

    /// The number of cached tokens.
    var count: Int {
        shards.reduce(0) { total, shard in total + shard.withLock { $0.count } }
    }

    func removeAll() {
        let sets = setsPerShard
        for shard in shards { shard.withLock { $0 = Shard(sets: sets) } }
    }
}
