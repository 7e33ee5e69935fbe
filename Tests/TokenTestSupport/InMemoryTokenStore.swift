public import TokenStore

/// A `TokenStore` and `UserStore` in memory, with the semantics of `SQLiteTokenStore` (the
/// shared TokenStoreTests run against both): the same idempotency, the same events, the same
/// validation errors, the same compaction, `.unavailable` after `close`.
///
/// Being an actor, every call is atomic: `updateRefreshToken` runs read → `decide` → change
/// without a suspension point. `setUnavailable(_:)` simulates an outage for 503 tests.
public actor InMemoryTokenStore: TokenStore {
    private var families: [String: RefreshFamily] = [:]
    private var tokens: [[UInt8]: RefreshTokenRecord] = [:]
    private var revokedAccess: [String: (subject: String?, expiresAt: Double)] = [:]
    private var cutoffs: [String: Double] = [:]
    private var revokedKeys: [String: Double] = [:]
    private var log: [TokenEvent] = []
    private var lastSequence: Int64 = 0
    private var closed = false
    private var outage: String?
    /// The users of `UserStore` (InMemoryTokenStore+Users.swift).
    var userTable = InMemoryUserTable()

    /// How long events are kept by `compact`; nil keeps them all.
    public let eventRetention: Double?

    /// Whether refresh tokens issued over it are keyed in issue order (as over SQLite), or by
    /// their SHA-256 alone (as over PostgreSQL, and before v5).
    public nonisolated let keysRefreshTokensInIssueOrder: Bool

    public init(eventRetention: Double? = nil, keysRefreshTokensInIssueOrder: Bool = true) {
        precondition(eventRetention.map { $0 > 0 } ?? true, "eventRetention must be positive")
        self.eventRetention = eventRetention
        self.keysRefreshTokensInIssueOrder = keysRefreshTokensInIssueOrder
    }

    /// While set, every call throws `.unavailable` with `reason`; nil ends the outage.
    public func setUnavailable(_ reason: String?) {
        outage = reason
    }

    /// Every event, oldest first (a test convenience).
    public var allEvents: [TokenEvent] { log }

    // MARK: - TokenStore

    public func loadRevocations(now: Double) throws -> RevocationSnapshot {
        try checkAvailable()
        return RevocationSnapshot(
            revokedAccessTokens: revokedAccess.filter { $0.value.expiresAt > now }.mapValues(\.expiresAt),
            subjectCutoffs: cutoffs,
            revokedKeys: Set(revokedKeys.keys),
            revokedFamilies: families.values.reduce(into: [:]) { result, family in
                if family.revokedAt != nil, family.coverageEnd > now { result[family.id] = family.coverageEnd }
            },
            cursor: lastSequence
        )
    }

    public func revokeAccessToken(
        jti: String,
        subject: String?,
        expiresAt: Double,
        at: Double,
        reason: String
    ) throws {
        try checkAvailable()
        if let existing = revokedAccess[jti] {
            guard expiresAt > existing.expiresAt else { return }
            revokedAccess[jti] = (existing.subject ?? subject, expiresAt)
        } else {
            revokedAccess[jti] = (subject, expiresAt)
        }
        append(StoreEvents.revokeAccess(jti: jti, subject: subject, expiresAt: expiresAt, reason: reason), at: at)
    }

    public func setSubjectCutoff(subject: String, notBefore: Double, reason: String) throws {
        try checkAvailable()
        for (id, family) in families
        where family.subject == subject && family.createdAt <= notBefore && family.revokedAt == nil {
            families[id]?.revokedAt = notBefore
            families[id]?.revokedReason = reason
        }
        if let existing = cutoffs[subject], existing >= notBefore { return }
        cutoffs[subject] = notBefore
        append(StoreEvents.subjectCutoff(subject: subject, notBefore: notBefore, reason: reason), at: notBefore)
    }

    public func revokeKey(kid: String, at: Double, reason: String) throws {
        try checkAvailable()
        guard revokedKeys[kid] == nil else { return }
        revokedKeys[kid] = at
        append(StoreEvents.revokeKey(kid: kid, reason: reason), at: at)
    }

    public func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) throws {
        try checkAvailable()
        try StoreValidation.checkNewFamily(family, firstToken: firstToken)
        guard families[family.id] == nil else {
            throw TokenStoreError.conflict("refresh family \(family.id) exists already")
        }
        guard tokens[firstToken.hash] == nil else {
            throw TokenStoreError.conflict("the first refresh token of family \(family.id) exists already")
        }
        families[family.id] = family
        tokens[firstToken.hash] = firstToken
        append(StoreEvents.familyCreated(family), at: family.createdAt)
    }

    public func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) throws -> Outcome {
        try checkAvailable()
        let token = tokens[hash]
        let family = token.flatMap { families[$0.familyID] }
        let decision = try decide(token, family)
        var defaultEvent: StoreEvents.Draft?
        switch decision.change {
        case .none:
            break
        case .rotate(let spent, let successor, let accessJTI, let accessExpiresAt):
            // Check everything before changing anything: the change is all or nothing.
            try StoreValidation.checkRotation(spent: spent, successor: successor)
            guard let stored = tokens[spent.hash], stored.familyID == spent.familyID,
                var owner = families[spent.familyID]
            else {
                throw TokenStoreError.conflict(
                    "rotation in family \(spent.familyID): the spent refresh token is not stored in that family"
                )
            }
            guard tokens[successor.hash] == nil else {
                throw TokenStoreError.conflict(
                    "rotation in family \(spent.familyID): the successor refresh token exists already"
                )
            }
            var updated = stored
            updated.state = spent.state
            updated.spentAt = spent.spentAt
            updated.successorHash = spent.successorHash
            updated.successorSealed = spent.successorSealed
            tokens[spent.hash] = updated
            tokens[successor.hash] = successor
            owner.lastAccessJTI = accessJTI
            owner.lastAccessExpiresAt = max(owner.lastAccessExpiresAt ?? accessExpiresAt, accessExpiresAt)
            families[owner.id] = owner
            defaultEvent = StoreEvents.refreshRotated(
                familyID: owner.id,
                subject: owner.subject,
                accessJTI: accessJTI
            )
        case .revokeFamily(let id, let reason):
            if let ended = endFamily(id: id, at: now, reason: reason) {
                defaultEvent = StoreEvents.familyRevoked(familyID: id, subject: ended.subject, reason: reason)
            }
        }
        if let event = StoreEvents.forDecision(decision.event, defaultEvent: { defaultEvent }) {
            append(event, at: now)
        }
        return decision.outcome
    }

    public func revokeRefreshFamily(id: String, at: Double, reason: String) throws {
        try checkAvailable()
        if let ended = endFamily(id: id, at: at, reason: reason) {
            append(StoreEvents.familyRevoked(familyID: id, subject: ended.subject, reason: reason), at: at)
        }
    }

    public func refreshFamily(id: String) throws -> RefreshFamily? {
        try checkAvailable()
        return families[id]
    }

    public func events(after cursor: Int64, limit: Int) throws -> [TokenEvent] {
        try checkAvailable()
        guard limit > 0 else { return [] }
        return Array(log.lazy.filter { $0.sequence > cursor }.prefix(limit))
    }

    public func appendEvent(kind: String, subject: String?, detail: String, at: Double) throws {
        try checkAvailable()
        append(StoreEvents.Draft(kind: kind, subject: subject, detail: detail), at: at)
    }

    public func compact(now: Double) throws -> Int {
        try checkAvailable()
        var counts = CompactionCounts()
        let accessBefore = revokedAccess.count
        revokedAccess = revokedAccess.filter { $0.value.expiresAt > now }
        counts.accessTokens = accessBefore - revokedAccess.count
        let ended = Set(families.values.filter { Self.end(of: $0) <= now }.map(\.id))
        let tokensBefore = tokens.count
        tokens = tokens.filter { !ended.contains($0.value.familyID) }
        counts.refreshTokens = tokensBefore - tokens.count
        families = families.filter { !ended.contains($0.key) }
        counts.families = ended.count
        if let eventRetention {
            let eventsBefore = log.count
            log.removeAll { $0.at < now - eventRetention }
            counts.events = eventsBefore - log.count
        }
        if counts.total > 0 { append(StoreEvents.compacted(counts), at: now) }
        return counts.total
    }

    public func health() -> StoreHealth {
        let failure = closed ? "the in-memory token store is closed" : outage
        return StoreHealth(reads: failure, writes: failure)
    }

    public func close() {
        closed = true
    }

    // MARK: - Helpers

    func checkAvailable() throws {
        if closed { throw TokenStoreError.unavailable("the in-memory token store is closed") }
        if let outage { throw TokenStoreError.unavailable(outage) }
    }

    func append(_ draft: StoreEvents.Draft, at: Double) {
        lastSequence += 1
        log.append(
            TokenEvent(sequence: lastSequence, at: at, kind: draft.kind, subject: draft.subject, detail: draft.detail)
        )
    }

    private func endFamily(id: String, at: Double, reason: String) -> RefreshFamily? {
        guard var family = families[id], family.revokedAt == nil else { return nil }
        let before = family
        family.revokedAt = at
        family.revokedReason = reason
        families[id] = family
        return before
    }

    /// The end of everything a family covers, as `SQLiteTokenStore.familyEnd`.
    private static func end(of family: RefreshFamily) -> Double {
        max(family.expiresAt, family.lastAccessExpiresAt ?? family.expiresAt)
    }
}
