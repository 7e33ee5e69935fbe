import CodedErrors
import Foundation
public import Logging
public import NIOCore
import PostgresNIO
import Synchronization
public import TokenStore

/// The fleet store (DESIGN §10, issue 11): the same contracts as `SQLiteTokenStore`, on one
/// PostgreSQL database that several tokend processes on several hosts share.
///
/// - Durable before acknowledged: every session runs with `synchronous_commit = on`, and a
///   mutation's `await` returns only after its `COMMIT` succeeded. A failure at any point
///   (including a connection lost while the `COMMIT` was in flight) throws, so nothing is
///   acknowledged that is not committed.
/// - One transaction per mutation, with its event. `updateRefreshToken` reads the token and its
///   family `FOR UPDATE`, so concurrent calls for one token, on any node, run one after the
///   other and each sees what the previous committed.
/// - Serialization failures and deadlocks (SQLSTATE 40001, 40P01) are retried inside the store
///   with a jittered backoff; so is a transaction whose connection broke before its `COMMIT` was
///   sent. Neither reaches a client.
/// - Every operation has a deadline (`operationTimeout`): a database that does not answer makes
///   it throw `.unavailable` (503) instead of hanging a request; a connection stuck past the
///   deadline is closed. The pool reconnects by itself; the first failure and the recovery are
///   each logged once.
public final class PostgresTokenStore: TokenStore {
    public let location: PostgresLocation
    /// How long events are kept by `compact`; nil keeps them all.
    public let eventRetention: Double?
    /// How long one operation (a lease, its transaction, its retries) may take.
    public let operationTimeout: Duration
    /// Rows of nodes not seen for this long are deleted by `compact` (at least an hour).
    public let nodeRetention: Double
    /// For `health()`'s own connection when the pool cannot get one.
    let password: String?

    let client: PostgresClient
    let logger: Logger
    /// postgres-nio's own logging stays off: its messages may quote queries and bound values.
    let quiet = Logger(label: "tokend.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    private let runner: Task<Void, Never>
    /// Why the database cannot be used, from the first failure until an operation succeeds.
    private let failure = FailureRecord()
    /// Why writes fail while reads work (a read-only server, a full disk), until one succeeds.
    private let writeFailure = FailureRecord()
    private let closed = Atomic<Bool>(false)
    /// Concurrent one-step rotations, grouped into one statement each turn.
    private let rotations = RotationBatches()

    private init(
        location: PostgresLocation,
        eventRetention: Double?,
        operationTimeout: Duration,
        nodeRetention: Double,
        password: String?,
        client: PostgresClient,
        runner: Task<Void, Never>,
        logger: Logger
    ) {
        self.password = password
        self.location = location
        self.eventRetention = eventRetention
        self.operationTimeout = operationTimeout
        self.nodeRetention = nodeRetention
        self.client = client
        self.runner = runner
        self.logger = logger
    }

    /// Connects to the database, migrates it to this binary's schema (once, whichever node
    /// comes first) and starts the connection pool.
    ///
    /// Throws `.unavailable` naming the location and the reason when the server cannot be
    /// reached or refuses the role, and `.schema` when the database was migrated by a newer
    /// tokend.
    ///
    /// - Parameters:
    ///   - password: the role's password (from a file or credential), or nil for peer/trust
    ///     authentication.
    ///   - maximumConnections: connections the pool may open (concurrent transactions).
    ///   - jwksMaxAge: how long verifiers may cache a JWKS; rows of stopped nodes are kept at
    ///     least that long (the key rotation rule reads them), and at least an hour.
    public static func open(
        location: PostgresLocation,
        password: String?,
        logger: Logger,
        eventRetention: Double? = nil,
        operationTimeout: Duration = .seconds(5),
        maximumConnections: Int = 16,
        jwksMaxAge: Double = 0,
        eventLoopGroup: (any EventLoopGroup)? = nil
    ) async throws -> PostgresTokenStore {
        precondition(eventRetention.map { $0 > 0 } ?? true, "eventRetention must be positive")
        let configuration = try PostgresConnector.clientConfiguration(
            location,
            password: password,
            maximumConnections: maximumConnections
        )
        let quiet = Logger(label: "tokend.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        // One connection of its own first: its error says exactly why a start fails (refused,
        // no such role or database, TLS), where the pool would only retry.
        try await PostgresConnector.migrate(location, password: password, logger: logger)
        // On the caller's event loops when it gives them (tokend: its HTTP loops), so that a
        // request handled on a loop that also serves its connection crosses no thread.
        let client = PostgresClient(
            configuration: configuration,
            eventLoopGroup: eventLoopGroup ?? PostgresClient.defaultEventLoopGroup,
            backgroundLogger: quiet
        )
        let runner = Task { await client.run() }
        let store = PostgresTokenStore(
            location: location,
            eventRetention: eventRetention,
            operationTimeout: operationTimeout,
            nodeRetention: max(Self.minimumNodeRetention, jwksMaxAge + 60),
            password: password,
            client: client,
            runner: runner,
            logger: logger
        )
        logger.info(
            "token store opened",
            metadata: ["store": "\(location)", "schema": "\(PostgresSchema.latestVersion)"]
        )
        return store
    }

    // MARK: - TokenStore

    public func loadRevocations(now: Double) async throws -> RevocationSnapshot {
        let quiet = quiet
        return try await read("loading revocations") { connection in
            try await Self.revocations(connection, now: now, logger: quiet)
        }
    }

    /// The revocation state as of the caller's transaction's snapshot.
    static func revocations(
        _ connection: PostgresConnection,
        now: Double,
        logger: Logger
    ) async throws
        -> RevocationSnapshot
    {
        var snapshot = RevocationSnapshot()
        let access = try await connection.query(
            "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > \(now)",
            logger: logger
        )
        for try await (jti, expiresAt) in access.decode((String, Double).self) {
            snapshot.revokedAccessTokens[jti] = expiresAt
        }
        let cutoffs = try await connection.query("SELECT subject, not_before FROM subject_cutoffs", logger: logger)
        for try await (subject, notBefore) in cutoffs.decode((String, Double).self) {
            snapshot.subjectCutoffs[subject] = notBefore
        }
        for try await kid in try await connection.query("SELECT kid FROM revoked_keys", logger: logger).decode(
            String.self
        ) {
            snapshot.revokedKeys.insert(kid)
        }
        let families = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT id, \(Self.familyEnd) FROM refresh_families
                    WHERE revoked_at IS NOT NULL AND \(Self.familyEnd) > $1
                    """,
                binds: Self.binds(now)
            ),
            logger: logger
        )
        for try await (id, end) in families.decode((String, Double).self) {
            snapshot.revokedFamilies[id] = end
        }
        snapshot.cursor = try await Self.lastSequence(connection, logger: logger)
        return snapshot
    }

    public func revokeAccessToken(
        jti: String,
        subject: String?,
        expiresAt: Double,
        at: Double,
        reason: String
    ) async throws {
        try await write("revoking an access token") { connection in
            try await Self.changing(
                connection.query(
                    """
                    INSERT INTO revoked_access_tokens AS r (jti, subject, expires_at, revoked_at, reason)
                    VALUES (\(jti), \(subject), \(expiresAt), \(at), \(reason))
                    ON CONFLICT (jti) DO UPDATE
                    SET expires_at = excluded.expires_at, subject = coalesce(r.subject, excluded.subject)
                    WHERE excluded.expires_at > r.expires_at
                    RETURNING 1
                    """,
                    logger: self.quiet
                ),
                event: StoreEvents.revokeAccess(jti: jti, subject: subject, expiresAt: expiresAt, reason: reason),
                at: at,
                connection,
                logger: self.quiet
            )
        }
    }

    public func setSubjectCutoff(subject: String, notBefore: Double, reason: String) async throws {
        try await write("setting a subject cutoff") { connection in
            // The families the cutoff covers end with it: a rotation locks its family row, so
            // one on a node that has not yet followed the cutoff waits for this transaction
            // and then finds the family ended, rather than mint past the sign-out.
            try await connection.perform(
                """
                UPDATE refresh_families SET revoked_at = \(notBefore), revoked_reason = \(reason)
                WHERE subject = \(subject) AND created_at <= \(notBefore) AND revoked_at IS NULL
                """,
                logger: self.quiet
            )
            try await Self.changing(
                connection.query(
                    """
                    INSERT INTO subject_cutoffs AS c (subject, not_before, reason) VALUES (\(subject), \(notBefore), \(reason))
                    ON CONFLICT (subject) DO UPDATE SET not_before = excluded.not_before, reason = excluded.reason
                    WHERE excluded.not_before > c.not_before
                    RETURNING 1
                    """,
                    logger: self.quiet
                ),
                event: StoreEvents.subjectCutoff(subject: subject, notBefore: notBefore, reason: reason),
                at: notBefore,
                connection,
                logger: self.quiet
            )
        }
    }

    public func revokeKey(kid: String, at: Double, reason: String) async throws {
        try await write("revoking a key") { connection in
            try await Self.changing(
                connection.query(
                    """
                    INSERT INTO revoked_keys (kid, revoked_at, reason) VALUES (\(kid), \(at), \(reason))
                    ON CONFLICT (kid) DO NOTHING RETURNING 1
                    """,
                    logger: self.quiet
                ),
                event: StoreEvents.revokeKey(kid: kid, reason: reason),
                at: at,
                connection,
                logger: self.quiet
            )
        }
    }

    public func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) async throws {
        try StoreValidation.checkNewFamily(family, firstToken: firstToken)
        try await write("creating a refresh family") { connection in
            if try await Self.fetchFamily(id: family.id, connection, logger: self.quiet) != nil {
                throw TokenStoreError.conflict("refresh family \(family.id) exists already")
            }
            if try await Self.fetchToken(hash: firstToken.hash, connection, logger: self.quiet) != nil {
                throw TokenStoreError.conflict("the first refresh token of family \(family.id) exists already")
            }
            try await Self.insert(family, connection, logger: self.quiet)
            try await Self.insert(firstToken, connection, logger: self.quiet)
            try await Self.append(
                StoreEvents.familyCreated(family),
                at: family.createdAt,
                connection,
                logger: self.quiet
            )
        }
    }

    public func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome {
        try await write("updating a refresh token") { connection in
            // The token and its family read and locked by one statement (every writer that
            // locks both locks them so), so concurrent uses of one token run one after another.
            let (token, family) = try await Self.fetchTokenAndFamily(
                hash: hash,
                lock: true,
                connection,
                logger: self.quiet
            )
            let decision = try decide(token, family)
            switch decision.change {
            case .none:
                if let event = decision.event {
                    try await Self.append(
                        StoreEvents.Draft(kind: event.kind, subject: event.subject, detail: event.detail),
                        at: now,
                        connection,
                        logger: self.quiet
                    )
                }
            case .rotate(let spent, let successor, let accessJTI, let accessExpiresAt):
                try StoreValidation.checkRotation(spent: spent, successor: successor)
                let fallback = StoreEvents.refreshRotated(familyID: spent.familyID, subject: nil, accessJTI: accessJTI)
                try await Self.rotate(
                    spent: spent,
                    successor: successor,
                    accessJTI: accessJTI,
                    accessExpiresAt: accessExpiresAt,
                    event: decision.event.map {
                        StoreEvents.Draft(kind: $0.kind, subject: $0.subject, detail: $0.detail)
                    },
                    fallback: fallback,
                    at: now,
                    connection,
                    logger: self.quiet
                )
            case .revokeFamily(let id, let reason):
                var defaultEvent: StoreEvents.Draft?
                if let subject = try await Self.endFamily(
                    id: id,
                    at: now,
                    reason: reason,
                    connection,
                    logger: self.quiet
                ) {
                    defaultEvent = StoreEvents.familyRevoked(familyID: id, subject: subject, reason: reason)
                }
                if let event = StoreEvents.forDecision(decision.event, defaultEvent: { defaultEvent }) {
                    try await Self.append(event, at: now, connection, logger: self.quiet)
                }
            }
            return decision.outcome
        }
    }

    public func rotateIfCurrent(_ rotation: ConditionalRotation) async throws -> Bool {
        let spent = rotation.spent
        try StoreValidation.checkRotation(spent: spent, successor: rotation.successor)
        guard rotation.successor.state == .active, rotation.successor.familyID == rotation.familyID else {
            throw TokenStoreError.conflict("a successor refresh token must be active, in the spent token's family")
        }
        let quiet = quiet
        let lockWait = min(operationTimeout / 2, .seconds(10))
        return try await rotations.rotate(rotation) { batch in
            // One CALL whose answer comes only once the procedure's COMMIT is durable (a
            // statement in an implicit transaction would answer before its commit). Its lock
            // waits end well inside the operation's deadline.
            try await self.writeOne("rotating refresh tokens") { connection in
                try await Self.rotateBatch(batch, lockWait: lockWait, connection, logger: quiet)
            }
        }
    }

    /// The token and its family as last committed, by one statement (no lock, no transaction):
    /// what a refresh prepares from before `updateRefreshToken` decides again under the lock.
    public func refreshToken(hash: [UInt8]) async throws -> StoredRefreshToken {
        let quiet = quiet
        return try await readOne("reading a refresh token") { connection in
            let (token, family) = try await Self.fetchTokenAndFamily(hash: hash, lock: false, connection, logger: quiet)
            return StoredRefreshToken(token: token, family: family)
        }
    }

    public func revokeRefreshFamily(id: String, at: Double, reason: String) async throws {
        try await write("revoking a refresh family") { connection in
            if let subject = try await Self.endFamily(id: id, at: at, reason: reason, connection, logger: self.quiet) {
                try await Self.append(
                    StoreEvents.familyRevoked(familyID: id, subject: subject, reason: reason),
                    at: at,
                    connection,
                    logger: self.quiet
                )
            }
        }
    }

    public func refreshFamily(id: String) async throws -> RefreshFamily? {
        try await read("reading a refresh family") { connection in
            try await Self.fetchFamily(id: id, connection, logger: self.quiet)
        }
    }

    public func events(after cursor: Int64, limit: Int) async throws -> [TokenEvent] {
        guard limit > 0 else { return [] }
        return try await read("reading events") { connection in
            let rows = try await connection.query(
                """
                SELECT sequence, at, kind, subject, detail FROM events
                WHERE sequence > \(cursor) ORDER BY sequence LIMIT \(limit)
                """,
                logger: self.quiet
            )
            var events: [TokenEvent] = []
            for try await (sequence, at, kind, subject, detail) in rows.decode(
                (Int64, Double, String, String?, String).self
            ) {
                events.append(TokenEvent(sequence: sequence, at: at, kind: kind, subject: subject, detail: detail))
            }
            return events
        }
    }

    public func appendEvent(kind: String, subject: String?, detail: String, at: Double) async throws {
        try await write("appending an event") { connection in
            try await Self.append(
                StoreEvents.Draft(kind: kind, subject: subject, detail: detail),
                at: at,
                connection,
                logger: self.quiet
            )
        }
    }

    /// Deletes in transactions of at most `compactionBatch` rows, so writes queued meanwhile
    /// run in between; one node at a time (a session advisory lock: a node that finds it held
    /// leaves the work to the node holding it and returns 0).
    public func compact(now: Double) async throws -> Int {
        let batch = Self.compactionBatch
        let retention = eventRetention
        let nodeRetention = nodeRetention
        let quiet = quiet
        guard !closed.load(ordering: .acquiring) else {
            throw TokenStoreError.unavailable("compacting failed: the store is closed")
        }
        let counts = try await withDeadline("compacting", limit: .seconds(3600)) { lease in
            try await self.client.withConnection { connection in
                lease.hold(connection)
                defer { lease.letGo(connection) }
                let locked = try await connection.query(
                    "SELECT pg_try_advisory_lock(\(PostgresSchema.compactionLock))",
                    logger: quiet
                )
                var acquired = false
                for try await value in locked.decode(Bool.self) { acquired = value }
                guard acquired else { return CompactionCounts() }
                do {
                    let counts = try await Self.compactLocked(
                        connection,
                        now: now,
                        batch: batch,
                        retention: retention,
                        nodeRetention: nodeRetention,
                        logger: quiet
                    )
                    try await connection.perform(
                        "SELECT pg_advisory_unlock(\(PostgresSchema.compactionLock))",
                        logger: quiet
                    )
                    return counts
                } catch {
                    // The lock goes with the session when the connection is gone; else free it.
                    try? await connection.perform(
                        "SELECT pg_advisory_unlock(\(PostgresSchema.compactionLock))",
                        logger: quiet
                    )
                    throw error
                }
            }
        }
        guard counts.total > 0 else { return 0 }
        logger.info(
            "token store compacted",
            metadata: [
                "access_revocations": "\(counts.accessTokens)", "families": "\(counts.families)",
                "refresh_tokens": "\(counts.refreshTokens)", "events": "\(counts.events)",
            ]
        )
        return counts.total
    }

    /// Rows one compaction transaction deletes at most.
    static let compactionBatch = 10_000

    private static func compactLocked(
        _ connection: PostgresConnection,
        now: Double,
        batch: Int,
        retention: Double?,
        nodeRetention: Double,
        logger: Logger
    ) async throws -> CompactionCounts {
        var counts = CompactionCounts()
        /// Runs `query` (which answers one row: two counts) in one transaction after another
        /// until it deletes nothing; returns the sums.
        func inBatches(_ query: PostgresQuery) async throws -> (Int, Int) {
            var total = (0, 0)
            while true {
                try await connection.perform("BEGIN", logger: logger)
                var deleted = (0, 0)
                do {
                    for try await (first, second) in try await connection.query(query, logger: logger).decode(
                        (Int64, Int64).self
                    ) {
                        deleted = (Int(first), Int(second))
                    }
                    try await connection.perform("COMMIT", logger: logger)
                } catch {
                    try? await connection.perform("ROLLBACK", logger: logger)
                    throw error
                }
                total = (total.0 + deleted.0, total.1 + deleted.1)
                if deleted.0 + deleted.1 == 0 { return total }
            }
        }
        counts.accessTokens = try await inBatches(
            """
            WITH gone AS (
                DELETE FROM revoked_access_tokens WHERE jti IN
                    (SELECT jti FROM revoked_access_tokens WHERE expires_at <= \(now) LIMIT \(batch))
                RETURNING 1)
            SELECT count(*), 0::bigint FROM gone
            """
        ).0
        // A batch of ended families with their refresh tokens.
        (counts.families, counts.refreshTokens) = try await inBatches(
            PostgresQuery(
                unsafeSQL: """
                    WITH ended AS (SELECT id FROM refresh_families WHERE \(familyEnd) <= $1 LIMIT $2),
                        tokens AS (DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM ended) RETURNING 1),
                        families AS (DELETE FROM refresh_families WHERE id IN (SELECT id FROM ended) RETURNING 1)
                    SELECT (SELECT count(*) FROM families), (SELECT count(*) FROM tokens)
                    """,
                binds: binds(now, batch)
            )
        )
        if let retention {
            counts.events = try await inBatches(
                """
                WITH gone AS (
                    DELETE FROM events WHERE sequence IN
                        (SELECT sequence FROM events WHERE at < \(now - retention) LIMIT \(batch))
                    RETURNING 1)
                SELECT count(*), 0::bigint FROM gone
                """
            ).0
        }
        // Rate-limit windows that have ended (not counted: they are no token's state).
        _ = try await inBatches(
            """
            WITH gone AS (
                DELETE FROM rate_windows WHERE (rule, key) IN
                    (SELECT rule, key FROM rate_windows WHERE window_start + window_seconds <= \(now) LIMIT \(batch))
                RETURNING 1)
            SELECT count(*), 0::bigint FROM gone
            """
        )
        // Rows of nodes whose heartbeat stopped long ago (not counted either), by the
        // database's clock like every heartbeat.
        _ = try await inBatches(
            """
            WITH gone AS (
                DELETE FROM nodes WHERE last_seen < \(unescaped: databaseNow) - \(nodeRetention) RETURNING 1)
            SELECT count(*), 0::bigint FROM gone
            """
        )
        if counts.total > 0 {
            try await connection.perform("BEGIN", logger: logger)
            do {
                try await append(StoreEvents.compacted(counts), at: now, connection, logger: logger)
                try await connection.perform("COMMIT", logger: logger)
            } catch {
                try? await connection.perform("ROLLBACK", logger: logger)
                throw error
            }
        }
        return counts
    }

    public func health() async -> StoreHealth {
        var health = StoreHealth()
        let began = ContinuousClock.now
        do {
            _ = try await withDeadline("checking the database", limit: .seconds(2)) { lease in
                try await self.client.withConnection { connection in
                    lease.hold(connection)
                    defer { lease.letGo(connection) }
                    try await connection.perform("SELECT 1", logger: self.quiet)
                }
            }
            noteSuccess(wrote: false)
        } catch {
            // The pool only retries; a connection of its own says why (refused, no socket, TLS,
            // authentication).
            let cause = await PostgresConnector.connectionProblem(location, password: password) ?? error
            noteFailure(cause, writing: false, began: began)
            health.reads = reason(of: cause)
        }
        if health.reads == nil, let failure = writeFailure.current, writeFailure.probeIsDue() {
            let now = Date().timeIntervalSince1970
            try? await write("checking that writes work again") { connection in
                try await Self.append(
                    StoreEvents.writesResumed(after: failure),
                    at: now,
                    connection,
                    logger: self.quiet
                )
            }
        }
        // Writes fail with reads; the reason is said once, under reads.
        health.writes = health.reads != nil ? "the database cannot be reached" : writeFailure.current
        return health
    }

    public func close() async throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        runner.cancel()
        await runner.value
        logger.info("token store closed", metadata: ["store": "\(location)"])
    }

    // MARK: - Transactions

    /// The end of everything a family covers (same expression as the index).
    static let familyEnd = "greatest(expires_at, coalesce(last_access_expires_at, expires_at))"

    /// Runs `body` in one read-write transaction (READ COMMITTED; rows that must not change
    /// under it are read `FOR UPDATE`), committed before it returns; retried on serialization
    /// failures and deadlocks.
    func write<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await transaction(operation, begin: "BEGIN ISOLATION LEVEL READ COMMITTED", writing: true, body)
    }

    /// Runs `body` in a read-only transaction over one snapshot (REPEATABLE READ).
    func read<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await transaction(operation, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", writing: false, body)
    }

    /// Runs `body` (one statement) outside a transaction: a single read needs no BEGIN and
    /// COMMIT round trips of its own.
    func readOne<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await transaction(operation, begin: nil, writing: false, body)
    }

    /// Runs `body`, one statement that is its own transaction: one round trip where BEGIN,
    /// the statement and COMMIT take three. Only for writes that can be repeated (running one
    /// twice is the same as once): retried like a read, a lost connection included, so a
    /// connection the server closed does not show as an outage.
    ///
    /// postgres-nio ends a statement's rows at CommandComplete, before the Sync that commits,
    /// so a plain statement's success does not prove its commit: fine for a heartbeat, which
    /// the next one repeats. A `CALL` of a procedure that commits before it answers
    /// (`rotate_batch`) does prove it.
    func writeOne<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await transaction(operation, begin: nil, writing: true, body)
    }

    /// Attempts one operation makes at most when the database asks it to retry.
    static let maximumAttempts = 10

    private func transaction<T: Sendable>(
        _ operation: String,
        begin: PostgresQuery?,
        writing: Bool,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        guard !closed.load(ordering: .acquiring) else {
            throw TokenStoreError.unavailable("\(operation) failed: the store is closed")
        }
        let quiet = quiet
        let began = ContinuousClock.now
        // While the database is known to be unreachable, a request learns so within a second
        // rather than waiting the whole timeout (the pool keeps reconnecting meanwhile).
        let limit = failure.current == nil ? operationTimeout : min(operationTimeout, .seconds(1))
        do {
            let result = try await withDeadline(operation, limit: limit) { lease in
                var attempt = 0
                while true {
                    attempt += 1
                    let commitSent = Atomic<Bool>(false)
                    let recorded = WrittenPositions.current?.count ?? 0
                    do {
                        return try await self.client.withConnection { connection in
                            lease.hold(connection)
                            defer { lease.letGo(connection) }
                            // The pool may hand out a connection the server has just closed
                            // (a restart, a terminated backend) before it learns so; a query
                            // written to it is lost, never answered. Take another.
                            if connection.isClosed { throw PostgresFailure.ClosedBeforeUse() }
                            guard let begin else {
                                do { return try await body(connection) } catch {
                                    throw PostgresFailure.passingThrough(error)
                                }
                            }
                            try await connection.perform(begin, logger: quiet)
                            do {
                                let result: T
                                do {
                                    result = try await body(connection)
                                } catch {
                                    throw PostgresFailure.passingThrough(error)
                                }
                                commitSent.store(true, ordering: .relaxed)
                                try await connection.perform("COMMIT", logger: quiet)
                                return result
                            } catch {
                                if !commitSent.load(ordering: .relaxed) {
                                    try? await connection.perform("ROLLBACK", logger: quiet)
                                }
                                throw error
                            }
                        }
                    } catch {
                        WrittenPositions.current?.truncate(to: recorded)
                        guard attempt < Self.maximumAttempts,
                            PostgresFailure.isRetryable(error, commitSent: commitSent.load(ordering: .relaxed))
                        else { throw error }
                        // 1, 2, 4 … 64 ms, jittered, so that colliding writers spread out.
                        let base = UInt64(1) << UInt64(min(attempt - 1, 6))
                        try await Task.sleep(for: .microseconds(Int64.random(in: 500...1000) * Int64(base)))
                    }
                }
            }
            noteSuccess(wrote: writing)
            return result
        } catch {
            noteFailure(error, writing: writing, began: began)
            throw PostgresFailure.mapped(error, operation: operation, location: location)
        }
    }

    /// Records why the database cannot be used (or cannot be written) when `error` says so;
    /// logs when that changes.
    private func noteFailure(_ error: any Error, writing: Bool, began: ContinuousClock.Instant) {
        guard let kind = PostgresFailure.storeFailure(error) else { return }
        let reason = reason(of: error)
        if kind == .writesOnly, !writing { return }
        // Began before a later operation succeeded: the outage it saw is over.
        if (kind == .writesOnly ? writeFailure : failure).succeeded(since: began) { return }
        guard (kind == .writesOnly ? writeFailure : failure).fail(reason) == nil else { return }
        logger.error(
            kind == .writesOnly
                ? "PostgreSQL refuses writes; writes answer 503" : "PostgreSQL cannot be reached; writes answer 503",
            metadata: ["store": "\(location)", "reason": "\(reason)"]
        )
    }

    /// Clears the failure after an operation succeeded; logs the recovery once.
    private func noteSuccess(wrote: Bool) {
        if let previous = failure.succeed() {
            logger.notice(
                "PostgreSQL is reachable again; reconnected",
                metadata: ["store": "\(location)", "failed_with": "\(previous)"]
            )
        }
        guard wrote else { return }
        if let previousWrite = writeFailure.succeed() {
            logger.notice("PostgreSQL takes writes again", metadata: ["failed_with": "\(previousWrite)"])
        }
    }

    private func reason(of error: any Error) -> String {
        let mapped = PostgresFailure.mapped(error, operation: "", location: location)
        return (mapped as? TokenStoreError)?.reason ?? "\(mapped)"
    }

}
