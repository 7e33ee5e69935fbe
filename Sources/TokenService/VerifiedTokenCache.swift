import JOSE


/// What introspection needs of a token whose signature and claims were verified once.
public struct VerifiedToken: Sendable {
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

    init(
        subject: String, scope: String, clientID: String?, username: String?, issuer: String, audience: [String]?,
        jti: String, kid: String, familyID: String?, exp: Double, iat: Double, nbf: Double?
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
/// Sharded; a full shard evicts its oldest entry (first in, first out), in constant time.
final class VerifiedTokenCache: Sendable {
    private static let shardCount = 16

    /// One shard: the entries and the order they came in, as a ring of keys.
    private struct Shard: Sendable {
        var entries: [String: VerifiedToken] = [:]
        var ring: [String] = []
        /// Where the next key goes once the ring is full (the oldest key).
        var next = 0
    }

    private let shards: [LockedBox<Shard>]
    private let capacityPerShard: Int

    init(capacity: Int) {
        capacityPerShard = max(1, capacity / VerifiedTokenCache.shardCount)
        shards = (0..<VerifiedTokenCache.shardCount).map { _ in LockedBox(Shard()) }
    }

    @inline(__always)
    private func shard(_ token: String) -> Int {
        // The signature segment's last bytes are uniformly random: cheap and well spread.
        var h = 0
        for byte in token.utf8.suffix(4) { h = h &* 31 &+ Int(byte) }
        return Int(UInt(bitPattern: h) % UInt(VerifiedTokenCache.shardCount))
    }

    func lookup(_ token: String) -> VerifiedToken? {
        shards[shard(token)].withLock { $0.entries[token] }
    }

    func insert(_ token: String, _ verified: VerifiedToken) {
        let limit = capacityPerShard
        shards[shard(token)].withLock { shard in
            if shard.entries.updateValue(verified, forKey: token) != nil { return }
            if shard.ring.count < limit {
                shard.ring.append(token)
                return
            }
            // Full: the oldest entry makes room. (A key replaced in place above keeps its
            // position, so every key in the ring is in `entries` exactly once.)
            shard.entries.removeValue(forKey: shard.ring[shard.next])
            shard.ring[shard.next] = token
            shard.next = (shard.next + 1) % limit
        }
    }

    /// The number of cached tokens.
    var count: Int {
        shards.reduce(0) { total, shard in total + shard.withLock { $0.entries.count } }
    }

    func removeAll() {
        for shard in shards { shard.withLock { $0 = Shard() } }
    }
}
