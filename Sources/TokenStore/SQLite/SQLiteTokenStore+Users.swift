import Foundation
import GRDB

/// User accounts in the `users` table (schema v2), named through `user_identifiers` (v3:
/// usernames and emails in one namespace). Every write shares one `BEGIN IMMEDIATE`
/// transaction with its event, so conflict checks and the numeric id counter see every
/// committed user, in this process and in any other.
extension SQLiteTokenStore: UserStore {
    public func createUser(_ user: NewUser) async throws -> UserRecord {
        let user = try UserRules.validated(user)
        let scope = try Self.jsonText(user.scope)
        let permissions = try Self.jsonText(user.permissions)
        return try await write("creating a user") { db in
            if try Self.fetchUser("public_id = ?", [user.publicID], db) != nil {
                throw UserRules.publicIDTaken(user.publicID)
            }
            let keys = UserRules.identifierKeys(of: user)
            if try Self.identifierTaken(keys.email, db) || Self.fetchUser("email = ?", [user.email], db) != nil {
                throw UserRules.emailTaken()
            }
            if try keys.username.map({ try Self.identifierTaken($0, db) }) == true
                || Self.fetchUser("lower(username) = ?", [UserRules.asciiLowercased(user.username)], db) != nil
            {
                throw UserRules.usernameTaken()
            }
            let record = UserRules.record(user, numericID: try Self.nextNumericID(db))
            try db.execute(
                sql: """
                    INSERT INTO users (public_id, numeric_id, username, email, password_hash, status, plan, vendor,
                        scope, first_name, last_name, role, avatar, permissions, stats, created_at, last_login_at,
                        tokens_not_before)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    record.publicID, record.numericID, record.username, record.email, record.passwordHash,
                    record.status.rawValue, record.plan, record.vendor, scope, record.firstName, record.lastName,
                    record.role, record.avatar, permissions, record.statsJSON, record.createdAt, record.lastLoginAt,
                    record.tokensNotBefore,
                ]
            )
            for (key, taken) in [(keys.email, UserRules.emailTaken()), (keys.username, UserRules.usernameTaken())] {
                guard let key else { continue }
                // The primary key is the last word: two creations cannot both claim `key`.
                do {
                    try db.execute(
                        sql: "INSERT INTO user_identifiers (identifier, public_id) VALUES (?, ?)",
                        arguments: [key, record.publicID]
                    )
                } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
                    throw taken
                }
            }
            try Self.append(StoreEvents.userCreated(record), at: record.createdAt, db)
            return record
        }
    }

    /// Whether a user holds the identifier `key` (as username or email).
    private static func identifierTaken(_ key: String, _ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT 1 FROM user_identifiers WHERE identifier = ?", arguments: [key]) ?? false
    }

    /// The user holding the identifier `key`, when it holds it as `field`'s value.
    private func user(identifier key: String, as field: KeyPath<UserRecord, String>) async throws -> UserRecord? {
        let found = try await read("reading a user") { db in
            try Row.fetchOne(
                db,
                sql: "SELECT users.* FROM user_identifiers JOIN users USING (public_id) WHERE identifier = ?",
                arguments: [key]
            ).map(UserRecord.init(row:))
        }
        guard let found, UserRules.identifierKey(found[keyPath: field]) == key else { return nil }
        return found
    }

    public func user(publicID: String) async throws -> UserRecord? {
        try await read("reading a user") { db in try Self.fetchUser("public_id = ?", [publicID], db) }
    }

    public func user(numericID: Int64) async throws -> UserRecord? {
        try await read("reading a user") { db in try Self.fetchUser("numeric_id = ?", [numericID], db) }
    }

    public func user(email: String) async throws -> UserRecord? {
        try await user(identifier: UserRules.identifierKey(email), as: \.email)
    }

    public func user(username: String) async throws -> UserRecord? {
        try await user(identifier: UserRules.identifierKey(username), as: \.username)
    }

    public func users(matching query: UserQuery) async throws -> [UserRecord] {
        guard query.limit > 0 else { return [] }
        let needles = UserRules.needles(of: query)
        // instr(), not LIKE: the query's `%`, `_` and `\` are plain characters.
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let email = needles.email {
            conditions.append("instr(email, ?) > 0")
            arguments += [email]
        }
        if let username = needles.username {
            conditions.append("instr(lower(username), ?) > 0")
            arguments += [username]
        }
        if let status = query.status {
            conditions.append("status = ?")
            arguments += [status.rawValue]
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments += [query.limit, max(0, query.offset)]
        let sql = "SELECT * FROM users \(filter) ORDER BY created_at, numeric_id LIMIT ? OFFSET ?"
        return try await read("searching users") { [arguments] db in
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            var users: [UserRecord] = []
            while let row = try rows.next() { users.append(try UserRecord(row: row)) }
            return users
        }
    }

    public func updateUser(publicID: String, _ change: UserChange) async throws -> UserRecord? {
        try await write("updating a user") { db in try Self.update(publicID: publicID, change, db) }
    }

    public func updateUsers(_ changes: [(publicID: String, change: UserChange)]) async throws {
        guard !changes.isEmpty else { return }
        try await write("updating \(changes.count) users") { db in
            for (publicID, change) in changes { _ = try Self.update(publicID: publicID, change, db) }
        }
    }

    private static func update(publicID: String, _ change: UserChange, _ db: Database) throws -> UserRecord? {
        let at = UserRules.eventTime(of: change)
        guard let user = try fetchUser("public_id = ?", [publicID], db) else { return nil }
        let (updated, fields) = try UserRules.applying(change, to: user)
        guard !fields.isEmpty else { return user }
        try db.execute(
            sql: """
                UPDATE users SET password_hash = ?, status = ?, plan = ?, vendor = ?, scope = ?, first_name = ?,
                    last_name = ?, role = ?, avatar = ?, permissions = ?, stats = ?, last_login_at = ?,
                    tokens_not_before = ?
                WHERE public_id = ?
                """,
            arguments: [
                updated.passwordHash, updated.status.rawValue, updated.plan, updated.vendor,
                try jsonText(updated.scope), updated.firstName, updated.lastName, updated.role, updated.avatar,
                try jsonText(updated.permissions), updated.statsJSON, updated.lastLoginAt,
                updated.tokensNotBefore, publicID,
            ]
        )
        try append(StoreEvents.userUpdated(updated, fields: fields), at: at, db)
        return updated
    }

    // MARK: Rows

    /// The one user where `condition` (SQL with bound `arguments`, never spliced values) holds.
    static func fetchUser(_ condition: String, _ arguments: StatementArguments, _ db: Database) throws -> UserRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM users WHERE \(condition)", arguments: arguments)
            .map(UserRecord.init(row:))
    }

    /// Takes the next numeric id: one more than any ever given (the counter) or stored.
    static func nextNumericID(_ db: Database) throws -> Int64 {
        try db.execute(
            sql: """
                UPDATE user_numbers
                SET last_numeric_id = max(last_numeric_id, (SELECT coalesce(max(numeric_id), 0) FROM users)) + 1
                WHERE singleton = 1
                """
        )
        guard db.changesCount == 1, let next = try Int64.fetchOne(db, sql: "SELECT last_numeric_id FROM user_numbers")
        else {
            throw TokenStoreError.schema("the user number counter (table user_numbers) is missing its row")
        }
        return next
    }

    static func jsonText(_ strings: [String]) throws -> String { try UserRules.jsonText(strings) }
}

extension UserRecord {
    init(row: Row) throws {
        self.init(
            publicID: try row.decode(forColumn: "public_id"),
            numericID: try row.decode(forColumn: "numeric_id"),
            username: try row.decode(forColumn: "username"),
            email: try row.decode(forColumn: "email"),
            passwordHash: try row.decode(forColumn: "password_hash"),
            status: try UserRules.status(try row.decode(forColumn: "status")),
            plan: try row.decode(forColumn: "plan"),
            vendor: try row.decode(forColumn: "vendor"),
            scope: try UserRules.strings(fromJSON: try row.decode(forColumn: "scope"), column: "scope"),
            firstName: try row.decode(forColumn: "first_name"),
            lastName: try row.decode(forColumn: "last_name"),
            role: try row.decode(forColumn: "role"),
            avatar: try row.decode(forColumn: "avatar"),
            permissions: try UserRules.strings(
                fromJSON: try row.decode(forColumn: "permissions"),
                column: "permissions"
            ),
            statsJSON: try row.decode(forColumn: "stats"),
            createdAt: try row.decode(forColumn: "created_at"),
            lastLoginAt: try row.decode(forColumn: "last_login_at"),
            tokensNotBefore: try row.decode(forColumn: "tokens_not_before")
        )
    }
}
