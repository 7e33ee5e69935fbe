import Foundation
import Logging
import NIOCore
import PostgresNIO
import TokenStore

/// Row reads and writes shared by the store's operations; each runs inside the caller's
/// transaction on `connection`.
extension PostgresTokenStore {
    static let tokenColumns = "hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed"
    static let familyColumns = """
        id, subject, client_id, scope, dialect, created_at, expires_at, revoked_at, revoked_reason, last_access_jti,
        last_access_expires_at
        """

    /// The token in `tokenColumns`' order from column `first` on.
    static func token(_ cells: PostgresRandomAccessRow, at first: Int) throws -> RefreshTokenRecord {
        let state = try cells[first + 2].decode(String.self)
        guard let tokenState = RefreshTokenRecord.State(rawValue: state) else {
            throw TokenStoreError.schema("a stored refresh token has the unknown state '\(state)'")
        }
        return RefreshTokenRecord(
            hash: bytes(try cells[first].decode(ByteBuffer.self)),
            familyID: try cells[first + 1].decode(String.self),
            state: tokenState,
            createdAt: try cells[first + 3].decode(Double.self),
            spentAt: try cells[first + 4].decode(Double?.self),
            successorHash: try cells[first + 5].decode(ByteBuffer?.self).map(bytes),
            successorSealed: try cells[first + 6].decode(ByteBuffer?.self).map(bytes)
        )
    }

    /// The family in `familyColumns`' order from column `first` on.
    static func family(_ cells: PostgresRandomAccessRow, at first: Int) throws -> RefreshFamily {
        RefreshFamily(
            id: try cells[first].decode(String.self),
            subject: try cells[first + 1].decode(String.self),
            clientID: try cells[first + 2].decode(String.self),
            scope: try cells[first + 3].decode(String.self),
            dialect: try cells[first + 4].decode(String.self),
            createdAt: try cells[first + 5].decode(Double.self),
            expiresAt: try cells[first + 6].decode(Double.self),
            revokedAt: try cells[first + 7].decode(Double?.self),
            revokedReason: try cells[first + 8].decode(String?.self),
            lastAccessJTI: try cells[first + 9].decode(String?.self),
            lastAccessExpiresAt: try cells[first + 10].decode(Double?.self)
        )
    }

    /// The first row `sql` (with `$1` bound to `value`) answers, decoded by `decode`; nil when
    /// it answers none.
    static func fetchOne<T>(
        _ sql: String,
        _ value: some PostgresDynamicTypeEncodable,
        _ connection: PostgresConnection,
        logger: Logger,
        _ decode: (PostgresRow) throws -> T
    ) async throws -> T? {
        var found: T?
        for try await row in try await connection.query(
            PostgresQuery(unsafeSQL: sql, binds: binds(value)),
            logger: logger
        )
        where found == nil {
            found = try decode(row)
        }
        return found
    }

    static func fetchToken(
        hash: [UInt8],
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws
        -> RefreshTokenRecord?
    {
        try await fetchOne(
            "SELECT \(tokenColumns) FROM refresh_tokens WHERE hash = $1",
            buffer(hash),
            connection,
            logger: logger
        ) {
            try token($0.makeRandomAccess(), at: 0)
        }
    }

    /// The statement `fetchTokenAndFamily` prepares.
    static func tokenAndFamilySQL(lock: Bool) -> String {
        let columns =
            tokenColumns.split(separator: ",").map { "t." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            + familyColumns.split(separator: ",").map { "f." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return """
            SELECT \(columns.joined(separator: ", "))
            FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
            WHERE t.hash = $1\(lock ? " FOR UPDATE" : "")
            """
    }

    /// The token with `hash` and its family, read by one statement; with `lock`, both rows
    /// locked `FOR UPDATE`.
    static func fetchTokenAndFamily(
        hash: [UInt8],
        lock: Bool,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> (RefreshTokenRecord?, RefreshFamily?) {
        let rows =
            lock
            ? try await connection.execute(PreparedStatements.LockTokenAndFamily(hash: buffer(hash)), logger: logger)
            : try await connection.execute(PreparedStatements.ReadTokenAndFamily(hash: buffer(hash)), logger: logger)
        var found: (RefreshTokenRecord?, RefreshFamily?) = (nil, nil)
        for try await row in rows {
            let cells = row.makeRandomAccess()
            found = (try token(cells, at: 0), try family(cells, at: 7))
        }
        return found
    }

    /// A batch of `rotateIfCurrent`s as one `CALL` (`RotateBatch`), committed when it
    /// returns: the hashes of the tokens rotated to their successors (by this call, or by an
    /// earlier one with the same batch). Lock waits end after `lockWait`.
    static func rotateBatch(
        _ rotations: [ConditionalRotation],
        lockWait: Duration,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> Set<[UInt8]> {
        var bindings = PostgresBindings(capacity: 11)
        bindings.append(rotations.map { buffer($0.hash) })
        bindings.append(rotations.map(\.familyID))
        bindings.append(rotations.map(\.now))
        // No cutoff: every family was created after -1.
        bindings.append(rotations.map { $0.subjectCutoff ?? -1 })
        bindings.append(rotations.map { buffer($0.successor.hash) })
        bindings.append(rotations.map { buffer($0.successorSealed) })
        bindings.append(rotations.map(\.accessJTI))
        bindings.append(rotations.map(\.accessExpiresAt))
        let events = rotations.map {
            StoreEvents.refreshRotated(familyID: $0.familyID, subject: $0.subject, accessJTI: $0.accessJTI)
        }
        bindings.append(events.map { $0.subject ?? "" })
        bindings.append(events.map(\.detail))
        bindings.append(Int32(clamping: Int64(lockWait / .milliseconds(1))))
        let rows = try await connection.execute(PreparedStatements.RotateBatch(bindings: bindings), logger: logger)
        var rotated: Set<[UInt8]> = []
        // The procedure checked the counts before it committed.
        for try await hashes in rows {
            for hash in hashes { rotated.insert(bytes(hash)) }
        }
        return rotated
    }

    /// A rotation as one statement: the spent token marked, its successor inserted, the
    /// family's newest access token noted and the event appended, each only if the step
    /// before it took effect. Throws `.conflict` (rolling the transaction back) when the spent
    /// token is not stored in its family or the successor exists already. `event` nil appends
    /// `fallback` with the family's subject.
    static func rotate(
        spent: RefreshTokenRecord,
        successor: RefreshTokenRecord,
        accessJTI: String,
        accessExpiresAt: Double,
        event: StoreEvents.Draft?,
        fallback: StoreEvents.Draft,
        at now: Double,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws {
        let kind = event?.kind ?? fallback.kind
        let detail = event?.detail ?? fallback.detail
        let familySubject = event == nil
        var bindings = PostgresBindings(capacity: 20)
        bindings.append(spent.state.rawValue)
        bindings.append(spent.spentAt)
        bindings.append(spent.successorHash.map(buffer))
        bindings.append(spent.successorSealed.map(buffer))
        bindings.append(buffer(spent.hash))
        bindings.append(spent.familyID)
        bindings.append(buffer(successor.hash))
        bindings.append(successor.familyID)
        bindings.append(successor.state.rawValue)
        bindings.append(successor.createdAt)
        bindings.append(successor.spentAt)
        bindings.append(successor.successorHash.map(buffer))
        bindings.append(successor.successorSealed.map(buffer))
        bindings.append(accessJTI)
        bindings.append(accessExpiresAt)
        bindings.append(now)
        bindings.append(kind)
        bindings.append(familySubject)
        bindings.append(event?.subject)
        bindings.append(detail)
        let rows = try await connection.execute(PreparedStatements.Rotate(bindings: bindings), logger: logger)
        var counts: (Int64, Int64, Int64) = (0, 0, 0)
        for try await row in rows { counts = row }
        guard counts.0 == 1 else {
            throw TokenStoreError.conflict(
                "rotation in family \(spent.familyID): the spent refresh token is not stored in that family"
            )
        }
        guard counts.1 == 1, counts.2 == 1 else {
            throw TokenStoreError.conflict(
                "rotation in family \(spent.familyID): the successor refresh token exists already"
            )
        }
    }

    static func fetchFamily(id: String, _ connection: PostgresConnection, logger: Logger) async throws -> RefreshFamily?
    {
        try await fetchOne(
            "SELECT \(familyColumns) FROM refresh_families WHERE id = $1",
            id,
            connection,
            logger: logger
        ) {
            try family($0.makeRandomAccess(), at: 0)
        }
    }

    static func insert(_ family: RefreshFamily, _ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.perform(
            """
            INSERT INTO refresh_families (id, subject, client_id, scope, dialect, created_at, expires_at, revoked_at,
                revoked_reason, last_access_jti, last_access_expires_at)
            VALUES (\(family.id), \(family.subject), \(family.clientID), \(family.scope), \(family.dialect),
                \(family.createdAt), \(family.expiresAt), \(family.revokedAt), \(family.revokedReason),
                \(family.lastAccessJTI), \(family.lastAccessExpiresAt))
            """,
            logger: logger
        )
    }

    static func insert(_ token: RefreshTokenRecord, _ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.perform(
            """
            INSERT INTO refresh_tokens (hash, family_id, state, created_at, spent_at, successor_hash, successor_sealed)
            VALUES (\(buffer(token.hash)), \(token.familyID), \(token.state.rawValue), \(token.createdAt),
                \(token.spentAt), \(token.successorHash.map(buffer)), \(token.successorSealed.map(buffer)))
            """,
            logger: logger
        )
    }

    /// Ends a live family; returns its subject when it did (nil for an unknown or ended one).
    static func endFamily(
        id: String,
        at: Double,
        reason: String,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> String? {
        let rows = try await connection.query(
            """
            UPDATE refresh_families SET revoked_at = \(at), revoked_reason = \(reason)
            WHERE id = \(id) AND revoked_at IS NULL
            RETURNING subject
            """,
            logger: logger
        )
        var subject: String?
        for try await value in rows.decode(String.self) { subject = value }
        return subject
    }

    /// Appends `event` when the statement `rows` answer (ending in `RETURNING 1`) changed a row:
    /// the idempotent changes (a repeat changes nothing and logs nothing).
    static func changing(
        _ rows: PostgresRowSequence,
        event: StoreEvents.Draft,
        at: Double,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws {
        guard try await count(rows) > 0 else { return }
        try await append(event, at: at, connection, logger: logger)
    }

    /// Appends `event` in the caller's transaction. An event other nodes follow
    /// (`TokenEvent.Kind.followed`) also notifies them, by the same statement: the
    /// notification, whose payload is the new sequence, is delivered when the transaction
    /// commits (and never when it rolls back).
    static func append(
        _ event: StoreEvents.Draft,
        at: Double,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws {
        guard followedKinds.contains(event.kind) else {
            try await connection.perform(
                "INSERT INTO events (at, kind, subject, detail) VALUES (\(at), \(event.kind), \(event.subject), \(event.detail))",
                logger: logger
            )
            return
        }
        // The position is recorded for a caller that waits until every node applied it
        // (`--wait`); a transaction that is retried forgets what its attempt recorded.
        let rows = try await connection.query(
            """
            WITH appended AS (
                INSERT INTO events (at, kind, subject, detail) VALUES (\(at), \(event.kind), \(event.subject), \(event.detail))
                RETURNING transaction_id, sequence)
            SELECT transaction_id::text::bigint, sequence, pg_notify(\(PostgresSchema.channel), sequence::text) IS NULL
            FROM appended
            """,
            logger: logger
        )
        for try await (transaction, sequence, _) in rows.decode((Int64, Int64, Bool).self) {
            WrittenPositions.current?.record(FollowCursor(transaction: transaction, sequence: sequence))
        }
    }

    static let followedKinds = Set(TokenEvent.Kind.followed)

    /// The newest event's sequence (0 when none was ever written).
    static func lastSequence(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        var last: Int64 = 0
        for try await value in try await connection.query(
            "SELECT coalesce(max(sequence), 0) FROM events",
            logger: logger
        )
        .decode(Int64.self) {
            last = value
        }
        return last
    }

    /// How many rows a statement ending in `RETURNING 1` touched.
    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    static func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    /// Bindings for a query built with `unsafeSQL` (only for SQL text that is not a literal).
    static func binds(_ values: any PostgresDynamicTypeEncodable...) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values { bindings.append(value) }
        return bindings
    }
}

extension PostgresConnection {
    /// Runs a statement whose rows (if any) are not wanted, and waits for it to end. A query's
    /// answer arrives before its rows, and so may its error (a lock wait that timed out): rows
    /// left unread would drop that error, and the next statement would fail with "current
    /// transaction is aborted" in its place.
    func perform(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}
