import Logging
import PostgresNIO
public import TokenStore

/// User accounts in `users`, named through `user_identifiers` (usernames and emails in one
/// namespace, `UserRules.identifierKey`). The identifier's primary key settles races between
/// nodes: of two creations claiming one identifier, the second waits for the first and then
/// finds it taken.
extension PostgresTokenStore: UserStore {
    static let userColumns = """
        public_id, numeric_id, username, email, password_hash, status, plan, vendor, scope, first_name, last_name,
        role, avatar, permissions, stats, created_at, last_login_at, tokens_not_before
        """

    public func createUser(_ user: NewUser) async throws -> UserRecord {
        let user = try UserRules.validated(user)
        let scope = try UserRules.jsonText(user.scope)
        let permissions = try UserRules.jsonText(user.permissions)
        let quiet = quiet
        return try await write("creating a user") { connection in
            if try await Self.fetchUser("public_id = $1", user.publicID, lock: false, connection, logger: quiet) != nil
            {
                throw UserRules.publicIDTaken(user.publicID)
            }
            let keys = UserRules.identifierKeys(of: user)
            if try await Self.identifierTaken(keys.email, connection, logger: quiet) {
                throw UserRules.emailTaken()
            }
            if let key = keys.username, try await Self.identifierTaken(key, connection, logger: quiet) {
                throw UserRules.usernameTaken()
            }
            var numericID: Int64 = 0
            for try await next in try await connection.query("SELECT nextval('user_numbers')", logger: quiet).decode(
                Int64.self
            ) {
                numericID = next
            }
            let record = UserRules.record(user, numericID: numericID)
            do {
                try await connection.perform(
                    """
                    INSERT INTO users (\(unescaped: Self.userColumns))
                    VALUES (\(record.publicID), \(record.numericID), \(record.username), \(record.email),
                        \(record.passwordHash), \(record.status.rawValue), \(record.plan), \(record.vendor), \(scope),
                        \(record.firstName), \(record.lastName), \(record.role), \(record.avatar), \(permissions),
                        \(record.statsJSON), \(record.createdAt), \(record.lastLoginAt), \(record.tokensNotBefore))
                    """,
                    logger: quiet
                )
            } catch {
                // A creation on another node committed the same id or address meanwhile.
                switch PostgresFailure.sqlState(error) == "23505" ? Self.constraint(of: error) : nil {
                case "users_pkey": throw UserRules.publicIDTaken(user.publicID)
                case "users_email_key": throw UserRules.emailTaken()
                default: throw error
                }
            }
            for (key, taken) in [(keys.email, UserRules.emailTaken()), (keys.username, UserRules.usernameTaken())] {
                guard let key else { continue }
                // Waits for a concurrent claim of `key` to end; nothing inserted means it is taken.
                let claimed = try await Self.count(
                    connection.query(
                        """
                        INSERT INTO user_identifiers (identifier, public_id) VALUES (\(key), \(record.publicID))
                        ON CONFLICT (identifier) DO NOTHING RETURNING 1
                        """,
                        logger: quiet
                    )
                )
                guard claimed == 1 else { throw taken }
            }
            try await Self.append(StoreEvents.userCreated(record), at: record.createdAt, connection, logger: quiet)
            return record
        }
    }

    public func user(publicID: String) async throws -> UserRecord? {
        let quiet = quiet
        return try await read("reading a user") { connection in
            try await Self.fetchUser("public_id = $1", publicID, lock: false, connection, logger: quiet)
        }
    }

    public func user(numericID: Int64) async throws -> UserRecord? {
        let quiet = quiet
        return try await read("reading a user") { connection in
            try await Self.fetchUser("numeric_id = $1", numericID, lock: false, connection, logger: quiet)
        }
    }

    public func user(email: String) async throws -> UserRecord? {
        try await user(identifier: UserRules.identifierKey(email), as: \.email)
    }

    public func user(username: String) async throws -> UserRecord? {
        try await user(identifier: UserRules.identifierKey(username), as: \.username)
    }

    /// The user holding the identifier `key`, when it holds it as `field`'s value.
    private func user(
        identifier key: String,
        as field: any KeyPath<UserRecord, String> & Sendable
    ) async throws
        -> UserRecord?
    {
        let quiet = quiet
        let found = try await read("reading a user") { connection in
            try await Self.fetchUser(
                "public_id = (SELECT public_id FROM user_identifiers WHERE identifier = $1)",
                key,
                lock: false,
                connection,
                logger: quiet
            )
        }
        guard let found, UserRules.identifierKey(found[keyPath: field]) == key else { return nil }
        return found
    }

    public func users(matching query: UserQuery) async throws -> [UserRecord] {
        guard query.limit > 0 else { return [] }
        let needles = UserRules.needles(of: query)
        // strpos(), not LIKE: the query's `%`, `_` and `\` are plain characters. lower() under
        // the C collation changes ASCII letters only, as `UserRules.usernameKey` does.
        var conditions: [String] = []
        var bindings = PostgresBindings()
        if let email = needles.email {
            bindings.append(email)
            conditions.append("strpos(email, $\(bindings.count)) > 0")
        }
        if let username = needles.username {
            bindings.append(username)
            conditions.append("strpos(lower(username COLLATE \"C\"), $\(bindings.count)) > 0")
        }
        if let status = query.status {
            bindings.append(status.rawValue)
            conditions.append("status = $\(bindings.count)")
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        bindings.append(Int64(query.limit))
        bindings.append(Int64(max(0, query.offset)))
        let sql = """
            SELECT \(Self.userColumns) FROM users \(filter)
            ORDER BY created_at, numeric_id LIMIT $\(bindings.count - 1) OFFSET $\(bindings.count)
            """
        let search = PostgresQuery(unsafeSQL: sql, binds: bindings)
        let quiet = quiet
        return try await read("searching users") { connection in
            var users: [UserRecord] = []
            for try await row in try await connection.query(search, logger: quiet) {
                users.append(try Self.userRecord(row))
            }
            return users
        }
    }

    public func updateUser(publicID: String, _ change: UserChange) async throws -> UserRecord? {
        let quiet = quiet
        return try await write("updating a user") { connection in
            try await Self.update(publicID: publicID, change, connection, logger: quiet)
        }
    }

    public func updateUsers(_ changes: [(publicID: String, change: UserChange)]) async throws {
        guard !changes.isEmpty else { return }
        let quiet = quiet
        let changes = changes.map { Change(publicID: $0.publicID, change: $0.change) }
        // In public id order: two batches over the same users lock them in the same order.
        let ordered = changes.enumerated().sorted {
            ($0.element.publicID, $0.offset) < ($1.element.publicID, $1.offset)
        }
        try await write("updating \(changes.count) users") { connection in
            for (_, item) in ordered {
                _ = try await Self.update(publicID: item.publicID, item.change, connection, logger: quiet)
            }
        }
    }

    private struct Change: Sendable {
        var publicID: String
        var change: UserChange
    }

    private static func update(
        publicID: String,
        _ change: UserChange,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> UserRecord? {
        let at = UserRules.eventTime(of: change)
        guard let user = try await fetchUser("public_id = $1", publicID, lock: true, connection, logger: logger) else {
            return nil
        }
        let (updated, fields) = try UserRules.applying(change, to: user)
        guard !fields.isEmpty else { return user }
        let scope = try UserRules.jsonText(updated.scope)
        let permissions = try UserRules.jsonText(updated.permissions)
        try await connection.perform(
            """
            UPDATE users SET password_hash = \(updated.passwordHash), status = \(updated.status.rawValue),
                plan = \(updated.plan), vendor = \(updated.vendor), scope = \(scope), first_name = \(updated.firstName),
                last_name = \(updated.lastName), role = \(updated.role), avatar = \(updated.avatar),
                permissions = \(permissions), stats = \(updated.statsJSON), last_login_at = \(updated.lastLoginAt),
                tokens_not_before = \(updated.tokensNotBefore)
            WHERE public_id = \(publicID)
            """,
            logger: logger
        )
        try await append(StoreEvents.userUpdated(updated, fields: fields), at: at, connection, logger: logger)
        return updated
    }

    // MARK: Rows

    /// The one user where `condition` (SQL with `$1` bound to `value`) holds.
    static func fetchUser(
        _ condition: String,
        _ value: some PostgresDynamicTypeEncodable,
        lock: Bool,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws -> UserRecord? {
        try await fetchOne(
            "SELECT \(userColumns) FROM users WHERE \(condition)\(lock ? " FOR UPDATE" : "")",
            value,
            connection,
            logger: logger,
            userRecord
        )
    }

    /// Whether a user holds the identifier `key` (as username or email).
    private static func identifierTaken(
        _ key: String,
        _ connection: PostgresConnection,
        logger: Logger
    ) async throws
        -> Bool
    {
        try await count(connection.query("SELECT 1 FROM user_identifiers WHERE identifier = \(key)", logger: logger))
            > 0
    }

    static func userRecord(_ row: PostgresRow) throws -> UserRecord {
        let cells = row.makeRandomAccess()
        return UserRecord(
            publicID: try cells[0].decode(String.self),
            numericID: try cells[1].decode(Int64.self),
            username: try cells[2].decode(String.self),
            email: try cells[3].decode(String.self),
            passwordHash: try cells[4].decode(String.self),
            status: try UserRules.status(try cells[5].decode(String.self)),
            plan: try cells[6].decode(String.self),
            vendor: try cells[7].decode(String?.self),
            scope: try UserRules.strings(fromJSON: try cells[8].decode(String.self), column: "scope"),
            firstName: try cells[9].decode(String.self),
            lastName: try cells[10].decode(String.self),
            role: try cells[11].decode(String.self),
            avatar: try cells[12].decode(String.self),
            permissions: try UserRules.strings(fromJSON: try cells[13].decode(String.self), column: "permissions"),
            statsJSON: try cells[14].decode(String.self),
            createdAt: try cells[15].decode(Double.self),
            lastLoginAt: try cells[16].decode(Double?.self),
            tokensNotBefore: try cells[17].decode(Double?.self)
        )
    }

    /// The constraint a server error names.
    static func constraint(of error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.constraintName]
    }
}
