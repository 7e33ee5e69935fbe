public import TokenStore

/// A test store that hands every call to another store, so that a wrapper (an outage, a
/// scripted fleet) writes only what it changes.
public protocol ForwardingTokenStore: TokenStore {
    /// Where calls go now.
    var forwarded: any TokenStore { get }
}

extension ForwardingTokenStore {
    public func loadRevocations(now: Double) async throws -> RevocationSnapshot {
        try await forwarded.loadRevocations(now: now)
    }

    public func revokeAccessToken(
        jti: String,
        subject: String?,
        expiresAt: Double,
        at: Double,
        reason: String
    ) async throws {
        try await forwarded.revokeAccessToken(jti: jti, subject: subject, expiresAt: expiresAt, at: at, reason: reason)
    }

    public func setSubjectCutoff(subject: String, notBefore: Double, reason: String) async throws {
        try await forwarded.setSubjectCutoff(subject: subject, notBefore: notBefore, reason: reason)
    }

    public func revokeKey(kid: String, at: Double, reason: String) async throws {
        try await forwarded.revokeKey(kid: kid, at: at, reason: reason)
    }

    public func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) async throws {
        try await forwarded.createRefreshFamily(family, firstToken: firstToken)
    }

    public func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome {
        try await forwarded.updateRefreshToken(hash: hash, now: now, decide)
    }

    public func rotateIfCurrent(_ rotation: ConditionalRotation) async throws -> Bool {
        try await forwarded.rotateIfCurrent(rotation)
    }

    public func refreshToken(hash: [UInt8]) async throws -> StoredRefreshToken {
        try await forwarded.refreshToken(hash: hash)
    }

    public func revokeRefreshFamily(id: String, at: Double, reason: String) async throws {
        try await forwarded.revokeRefreshFamily(id: id, at: at, reason: reason)
    }

    public func refreshFamily(id: String) async throws -> RefreshFamily? {
        try await forwarded.refreshFamily(id: id)
    }

    public func events(after cursor: Int64, limit: Int) async throws -> [TokenEvent] {
        try await forwarded.events(after: cursor, limit: limit)
    }

    public func appendEvent(kind: String, subject: String?, detail: String, at: Double) async throws {
        try await forwarded.appendEvent(kind: kind, subject: subject, detail: detail, at: at)
    }

    public func compact(now: Double) async throws -> Int {
        try await forwarded.compact(now: now)
    }

    public func health() async -> StoreHealth {
        await forwarded.health()
    }

    public var keysRefreshTokensInIssueOrder: Bool { forwarded.keysRefreshTokensInIssueOrder }

    public func close() async throws {
        try await forwarded.close()
    }
}
