/// Durable state of tokend (DESIGN §3, §5): refresh-token families, revoked access-token
/// ids, subject cutoffs, revoked key ids, and an append-only event log with a cursor.
///
/// Every mutating call returns only once the change is durable (committed and synced), so a
/// caller may acknowledge it to a client. Every mutation also appends its event to the log
/// in the same transaction.
///
/// Implementations: `SQLiteTokenStore` (embedded, GRDB, WAL). A PostgreSQL implementation
/// follows the same contract; `updateRefreshToken` maps to `SELECT … FOR UPDATE` inside one
/// transaction.
public protocol TokenStore: Sendable {
    /// Everything the in-memory revocation state needs at start-up, without entries whose
    /// tokens have all expired by `now`.
    ///
    /// Pass `now` minus the verifier's clock leeway: a revoked token whose `exp` is inside
    /// the leeway would still verify, so its revocation must still be loaded. An access
    /// revocation is left out once its `expiresAt <= now`; a revoked family once both its
    /// `expiresAt` and its `lastAccessExpiresAt` are `<= now` (what `compact` deletes).
    /// Subject cutoffs and revoked keys are always included. Read from one consistent
    /// snapshot, together with `cursor`.
    func loadRevocations(now: Double) async throws -> RevocationSnapshot

    /// Denies the access token `jti` until `expiresAt` (its `exp`). Idempotent: a repeat
    /// keeps the later `expiresAt` and appends an event only when it changed something.
    func revokeAccessToken(jti: String, subject: String?, expiresAt: Double, at: Double, reason: String) async throws

    /// Every token of `subject` issued before `notBefore` is invalid (logout everywhere).
    /// Keeps the later cutoff when one exists; the event (stamped `notBefore`) is appended
    /// only when the cutoff moved. Ends, in the same transaction, every open refresh family of
    /// the subject created at or before `notBefore` (revoked at `notBefore` for `reason`, no
    /// event of its own): the store then refuses their rotation on every node, including one
    /// that has not yet followed the cutoff into its memory.
    func setSubjectCutoff(subject: String, notBefore: Double, reason: String) async throws

    /// Records that `kid` is revoked (key compromise). Idempotent: the first revocation's
    /// time and reason stay, and a repeat appends no event.
    func revokeKey(kid: String, at: Double, reason: String) async throws

    /// Starts a refresh family with its first token. Throws `.conflict` when the family id
    /// or the token hash exists already, when the token names another family, or when a
    /// hash is not 32 bytes (SHA-256).
    func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) async throws

    /// Reads the refresh token with `hash` and its family, lets `decide` choose what
    /// happens, and applies that change atomically with respect to every other call for the
    /// same token: of N concurrent calls for one token, each sees the state the previous
    /// one left. `decide` must be pure; it may be called again if the transaction retries.
    ///
    /// The read, `decide` and the change happen in one write transaction. The decision's
    /// `event` is appended when present; without one, a `.rotate` appends `refresh_rotated`
    /// and a `.revokeFamily` that ended a live family appends `family_revoked`. An error
    /// thrown by `decide` is rethrown unchanged and nothing is written. A `.rotate` whose
    /// spent token is not stored, whose successor exists already or belongs to another
    /// family throws `.conflict` and writes nothing.
    func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome

    /// Rotates in one step, when it may: the token hashed `rotation.hash` is spent and
    /// `rotation.successor` replaces it, with the `refresh_rotated` event, exactly as
    /// `updateRefreshToken` does for a `.rotate` decision — if the token is active in family
    /// `rotation.familyID` and the family may refresh (not ended, `now` before its end,
    /// created after `rotation.subjectCutoff`). Returns false, having changed nothing, when any
    /// of that does not hold; the caller then decides with `updateRefreshToken`. Of concurrent
    /// calls for one token at most one returns true. A store without a cheaper way than
    /// `updateRefreshToken` returns false at once (the default).
    func rotateIfCurrent(_ rotation: ConditionalRotation) async throws -> Bool

    /// The refresh token with `hash` and its family as last committed, read without waiting
    /// for the writer: a snapshot for deciding what to prepare (minting a successor), never
    /// for changing anything, which `updateRefreshToken` decides again in its transaction.
    func refreshToken(hash: [UInt8]) async throws -> StoredRefreshToken

    /// Ends a family (logout, revocation of its refresh token, reuse detection, deactivation).
    /// Unknown or already ended families are left as they are, without an event.
    func revokeRefreshFamily(id: String, at: Double, reason: String) async throws

    /// The family, for explain and admin views.
    func refreshFamily(id: String) async throws -> RefreshFamily?

    /// Events after `cursor` (exclusive), oldest first, at most `limit`. Sequences are never
    /// reused, even after old events are trimmed.
    func events(after cursor: Int64, limit: Int) async throws -> [TokenEvent]

    /// Appends an event that has no other state change (key rotation, reload, sign-in, …).
    func appendEvent(kind: String, subject: String?, detail: String, at: Double) async throws

    /// Deletes revocations and families whose tokens have all expired by `now`; returns how
    /// many rows went.
    ///
    /// Goes: access revocations with `expiresAt <= now`, families whose `expiresAt` and
    /// `lastAccessExpiresAt` are both `<= now` with their refresh tokens, and events older
    /// than the store's event retention when one is configured. Stays: subject cutoffs and
    /// revoked keys (one row per subject or key). Pass `now` minus the clock leeway, as for
    /// `loadRevocations`. Appends a `compacted` event when anything went.
    func compact(now: Double) async throws -> Int

    /// What the store can do now, for `/healthz`, systemd's STATUS= and the log; never throws
    /// (a failure is a reason).
    ///
    /// Writes are reported failing while a commit would not be in the store tokend opens at
    /// its next start (its file deleted or replaced, not writable, on a read-only file system),
    /// and from the moment a write failed for a reason of the store's own (disk full, I/O
    /// error, locked) until one succeeds again. While they fail for such a reason this call
    /// tries a write itself (appending `writes_resumed` when it works), so recovery shows
    /// without waiting for a client's write.
    func health() async -> StoreHealth

    /// Releases files and connections. Every later call throws `.unavailable`.
    func close() async throws

    /// Whether refresh tokens issued over this store are keyed in issue order: such a token
    /// begins with its issue time, and its key with that time, so that a new key goes at the
    /// end of the store's index rather than at a random place in it (TokenService's
    /// `RefreshSecret`). Tokens keyed by their SHA-256 alone keep working. A store says yes
    /// only when every process that may read it knows such keys: the SQLite store marks its
    /// schema, so that an older tokend refuses the file rather than call its sessions unknown.
    var keysRefreshTokensInIssueOrder: Bool { get }
}

extension TokenStore {
    /// No: a store shared by a fleet may have nodes of an older tokend reading it.
    public var keysRefreshTokensInIssueOrder: Bool { false }

    public func rotateIfCurrent(_ rotation: ConditionalRotation) async throws -> Bool { false }

    /// `refreshToken(hash:)` through `updateRefreshToken` with no change, for stores without
    /// a cheaper read.
    public func refreshToken(hash: [UInt8]) async throws -> StoredRefreshToken {
        try await updateRefreshToken(hash: hash, now: 0) { token, family in
            RefreshDecision(change: .none, outcome: StoredRefreshToken(token: token, family: family))
        }
    }
}

/// A refresh token and its family as stored (nil when unknown).
public struct StoredRefreshToken: Sendable, Equatable {
    public var token: RefreshTokenRecord?
    public var family: RefreshFamily?

    public init(token: RefreshTokenRecord?, family: RefreshFamily?) {
        self.token = token
        self.family = family
    }
}

/// The revocation state loaded at start-up.
public struct RevocationSnapshot: Sendable, Equatable {
    /// jti → the token's exp.
    public var revokedAccessTokens: [String: Double]
    /// subject → tokens issued before this time are invalid.
    public var subjectCutoffs: [String: Double]
    /// Revoked key ids.
    public var revokedKeys: Set<String>
    /// Ended refresh families: id → the end of what the family covers
    /// (`RefreshFamily.coverageEnd`). Access tokens carrying `sid` = id are inactive, and none
    /// of them verifies after that time, so memory may forget the family then.
    public var revokedFamilies: [String: Double]
    /// The event-log position this snapshot reflects.
    public var cursor: Int64

    public init(
        revokedAccessTokens: [String: Double] = [:],
        subjectCutoffs: [String: Double] = [:],
        revokedKeys: Set<String> = [],
        revokedFamilies: [String: Double] = [:],
        cursor: Int64 = 0
    ) {
        self.revokedAccessTokens = revokedAccessTokens
        self.subjectCutoffs = subjectCutoffs
        self.revokedKeys = revokedKeys
        self.revokedFamilies = revokedFamilies
        self.cursor = cursor
    }
}

/// One sign-in's chain of refresh tokens (DESIGN §3).
public struct RefreshFamily: Sendable, Equatable {
    public var id: String
    public var subject: String
    public var clientID: String
    /// Space-separated scope granted to the family.
    public var scope: String
    /// The dialect or route that created it ("native", "v1", …): decides the response shape.
    public var dialect: String
    public var createdAt: Double
    /// Absolute end of the family (refresh policy).
    public var expiresAt: Double
    public var revokedAt: Double?
    public var revokedReason: String?
    /// The newest access token issued in this family, for explain and revocation.
    public var lastAccessJTI: String?
    public var lastAccessExpiresAt: Double?

    public init(
        id: String,
        subject: String,
        clientID: String,
        scope: String,
        dialect: String,
        createdAt: Double,
        expiresAt: Double,
        revokedAt: Double? = nil,
        revokedReason: String? = nil,
        lastAccessJTI: String? = nil,
        lastAccessExpiresAt: Double? = nil
    ) {
        self.id = id
        self.subject = subject
        self.clientID = clientID
        self.scope = scope
        self.dialect = dialect
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.revokedReason = revokedReason
        self.lastAccessJTI = lastAccessJTI
        self.lastAccessExpiresAt = lastAccessExpiresAt
    }
}

extension RefreshFamily {
    /// The end of everything the family covers: its refresh tokens (`expiresAt`) and the
    /// access tokens it issued (`lastAccessExpiresAt`, the latest expiry of any of them: a
    /// rotation never lowers it, even when a later token lives shorter). Once it has passed, an
    /// ended family matters to no token any more (`compact` deletes it).
    public var coverageEnd: Double { max(expiresAt, lastAccessExpiresAt ?? expiresAt) }
}

/// A refresh token as stored: never its plaintext, only SHA-256 of it.
public struct RefreshTokenRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        /// The family's newest token: using it rotates.
        case active
        /// Used once; a retry inside the grace window gets `successor` again, any other use
        /// is reuse.
        case spent
    }

    public var hash: [UInt8]
    public var familyID: String
    public var state: State
    public var createdAt: Double
    public var spentAt: Double?
    /// SHA-256 of the token that replaced this one.
    public var successorHash: [UInt8]?
    /// The successor response (access + refresh token), sealed with a key derived from this
    /// token's plaintext: readable only by whoever presents this token again.
    public var successorSealed: [UInt8]?

    public init(
        hash: [UInt8],
        familyID: String,
        state: State,
        createdAt: Double,
        spentAt: Double? = nil,
        successorHash: [UInt8]? = nil,
        successorSealed: [UInt8]? = nil
    ) {
        self.hash = hash
        self.familyID = familyID
        self.state = state
        self.createdAt = createdAt
        self.spentAt = spentAt
        self.successorHash = successorHash
        self.successorSealed = successorSealed
    }
}

/// What `updateRefreshToken`'s decision does to the store, plus what it returns.
public struct RefreshDecision<Outcome: Sendable>: Sendable {
    public enum Change: Sendable {
        /// Nothing to write (unknown token, retry inside the grace window, expired family).
        case none
        /// Mark the presented token spent, store its successor as the family's active token,
        /// and note the newest access token.
        case rotate(
            spent: RefreshTokenRecord,
            successor: RefreshTokenRecord,
            accessJTI: String,
            accessExpiresAt: Double
        )
        /// End the family (reuse detected, or absolute lifetime over).
        case revokeFamily(id: String, reason: String)
    }

    public var change: Change
    public var outcome: Outcome
    /// The event to append in the same transaction, if any: (kind, subject, detail).
    public var event: (kind: String, subject: String?, detail: String)?

    public init(change: Change, outcome: Outcome, event: (kind: String, subject: String?, detail: String)? = nil) {
        self.change = change
        self.outcome = outcome
        self.event = event
    }
}

/// What `rotateIfCurrent` needs: the presented token, the conditions, and the successor
/// minted for it.
public struct ConditionalRotation: Sendable {
    /// SHA-256 of the presented refresh token.
    public var hash: [UInt8]
    public var familyID: String
    /// The family's subject, for the event.
    public var subject: String
    /// The subject's sign-out cutoff as this node knows it: the family must be newer.
    public var subjectCutoff: Double?
    /// The new token (active, in `familyID`, created `now`).
    public var successor: RefreshTokenRecord
    /// The successor pair sealed under the presented token, for replays in the grace window.
    public var successorSealed: [UInt8]
    public var accessJTI: String
    public var accessExpiresAt: Double
    public var now: Double

    public init(
        hash: [UInt8],
        familyID: String,
        subject: String,
        subjectCutoff: Double?,
        successor: RefreshTokenRecord,
        successorSealed: [UInt8],
        accessJTI: String,
        accessExpiresAt: Double,
        now: Double
    ) {
        self.hash = hash
        self.familyID = familyID
        self.subject = subject
        self.subjectCutoff = subjectCutoff
        self.successor = successor
        self.successorSealed = successorSealed
        self.accessJTI = accessJTI
        self.accessExpiresAt = accessExpiresAt
        self.now = now
    }

    /// The spent token as `updateRefreshToken` would store it.
    public var spent: RefreshTokenRecord {
        var spent = RefreshTokenRecord(hash: hash, familyID: familyID, state: .spent, createdAt: 0)
        spent.spentAt = now
        spent.successorHash = successor.hash
        spent.successorSealed = successorSealed
        return spent
    }
}

/// One entry of the append-only event log.
public struct TokenEvent: Sendable, Equatable {
    /// Monotonic position: the cursor.
    public var sequence: Int64
    public var at: Double
    /// e.g. "revoke_access", "subject_cutoff", "revoke_key", "family_created",
    /// "refresh_rotated", "refresh_reuse", "family_revoked", "key_rotated" (see `Kind`).
    public var kind: String
    public var subject: String?
    /// Human-readable, never a secret (jti, kid, family id, reason).
    public var detail: String

    public init(sequence: Int64, at: Double, kind: String, subject: String?, detail: String) {
        self.sequence = sequence
        self.at = at
        self.kind = kind
        self.subject = subject
        self.detail = detail
    }
}

extension TokenEvent {
    /// The event kinds the stores write themselves, and the ones TokenService is expected to
    /// pass through `RefreshDecision.event` and `appendEvent`.
    public enum Kind {
        /// `revokeAccessToken`: detail `jti=… exp=… reason=…`.
        public static let revokeAccess = "revoke_access"
        /// `setSubjectCutoff`: detail `not_before=… reason=…`.
        public static let subjectCutoff = "subject_cutoff"
        /// `revokeKey`: detail `kid=… reason=…`.
        public static let revokeKey = "revoke_key"
        /// `createRefreshFamily`: detail `family=… client=… dialect=…`.
        public static let familyCreated = "family_created"
        /// A rotation without an event of its own: detail `family=… access_jti=…`.
        public static let refreshRotated = "refresh_rotated"
        /// Reuse of a spent refresh token (TokenService passes it with `.revokeFamily`).
        public static let refreshReuse = "refresh_reuse"
        /// `revokeRefreshFamily`, or `.revokeFamily` without an event: detail `family=… reason=…`.
        public static let familyRevoked = "family_revoked"
        /// A key rotation (TokenService, through `appendEvent`).
        public static let keyRotated = "key_rotated"
        /// `compact` removed rows: detail `access=… families=… tokens=… events=…`.
        public static let compacted = "compacted"
        /// Writes work again after they failed (`health()`'s own write): detail `after=…`.
        public static let writesResumed = "writes_resumed"
    }
}
