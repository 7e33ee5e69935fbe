public import TokenStore

/// Users in memory, with the rules of `SQLiteTokenStore` (`UserRules`): the same
/// normalisation, the same conflicts in the same order, the same numeric ids, the same order
/// and the same events. Each call is atomic, the actor being the transaction.
extension InMemoryTokenStore: UserStore {
    public func createUser(_ user: NewUser) throws -> UserRecord {
        try checkAvailable()
        let user = try UserRules.validated(user)
        let record = try userTable.insert(user)
        append(StoreEvents.userCreated(record), at: record.createdAt)
        return record
    }

    public func user(publicID: String) throws -> UserRecord? {
        try checkAvailable()
        return userTable.byPublicID[publicID]
    }

    public func user(numericID: Int64) throws -> UserRecord? {
        try checkAvailable()
        return userTable.byNumericID[numericID].flatMap { userTable.byPublicID[$0] }
    }

    public func user(email: String) throws -> UserRecord? {
        try checkAvailable()
        return userTable.user(identifier: UserRules.identifierKey(email), as: \.email)
    }

    public func user(username: String) throws -> UserRecord? {
        try checkAvailable()
        return userTable.user(identifier: UserRules.identifierKey(username), as: \.username)
    }

    public func users(matching query: UserQuery) throws -> [UserRecord] {
        try checkAvailable()
        guard query.limit > 0 else { return [] }
        let needles = UserRules.needles(of: query)
        let matching = userTable.byPublicID.values.filter { user in
            if let email = needles.email, !UserRules.contains(user.email, email) { return false }
            if let username = needles.username,
                !UserRules.contains(UserRules.asciiLowercased(user.username), username)
            {
                return false
            }
            if let status = query.status, user.status != status { return false }
            return true
        }
        return Array(matching.sorted(by: UserRules.isOlder).dropFirst(max(0, query.offset)).prefix(query.limit))
    }

    public func updateUser(publicID: String, _ change: UserChange) throws -> UserRecord? {
        try checkAvailable()
        guard let user = userTable.byPublicID[publicID] else { return nil }
        let (updated, fields) = try UserRules.applying(change, to: user)
        guard !fields.isEmpty else { return user }
        userTable.byPublicID[publicID] = updated
        append(StoreEvents.userUpdated(updated, fields: fields), at: UserRules.eventTime(of: change))
        return updated
    }
}

/// The users of an `InMemoryTokenStore` and their unique keys. Emails, username keys and
/// identifiers are compared as UTF-8 bytes, as SQLite compares TEXT (a Swift `String` would
/// compare by canonical equivalence).
struct InMemoryUserTable: Sendable {
    var byPublicID: [String: UserRecord] = [:]
    var byNumericID: [Int64: String] = [:]
    var byEmail: [[UInt8]: String] = [:]
    var byUsernameKey: [[UInt8]: String] = [:]
    /// Usernames and emails in one namespace (`UserRules.identifierKey`), as `user_identifiers`.
    var byIdentifier: [[UInt8]: String] = [:]
    /// The last numeric id given: ids are never given twice.
    var lastNumericID: Int64 = 0

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The user holding identifier `key`, when it holds it as `field`'s value.
    func user(identifier key: String, as field: KeyPath<UserRecord, String>) -> UserRecord? {
        guard let user = byIdentifier[Self.bytes(key)].flatMap({ byPublicID[$0] }),
            UserRules.identifierKey(user[keyPath: field]) == key
        else { return nil }
        return user
    }

    /// Stores a validated user with the next numeric id, or throws the conflict `SQLiteTokenStore`
    /// would throw, checking in the same order.
    mutating func insert(_ user: NewUser) throws -> UserRecord {
        let email = Self.bytes(user.email)
        let usernameKey = Self.bytes(UserRules.asciiLowercased(user.username))
        let keys = UserRules.identifierKeys(of: user)
        guard byPublicID[user.publicID] == nil else { throw UserRules.publicIDTaken(user.publicID) }
        guard byIdentifier[Self.bytes(keys.email)] == nil, byEmail[email] == nil else { throw UserRules.emailTaken() }
        guard keys.username.map({ byIdentifier[Self.bytes($0)] }) ?? nil == nil, byUsernameKey[usernameKey] == nil
        else { throw UserRules.usernameTaken() }
        lastNumericID += 1
        let record = UserRules.record(user, numericID: lastNumericID)
        byPublicID[record.publicID] = record
        byNumericID[record.numericID] = record.publicID
        byEmail[email] = record.publicID
        byUsernameKey[usernameKey] = record.publicID
        for key in [keys.email, keys.username].compactMap({ $0 }) { byIdentifier[Self.bytes(key)] = record.publicID }
        return record
    }
}
