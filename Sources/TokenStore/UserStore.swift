/// Durable user accounts behind the account APIs (DESIGN §5.3, issue 4). One table serves
/// every dialect. Like `TokenStore`, every mutation is durable before it returns and appends
/// its event (`user_created`, `user_updated`) in the same transaction; no event ever holds a
/// password hash or an email address.
///
/// How values are compared (the same in every implementation):
/// - **email**: stored normalised — surrounding whitespace trimmed, lowercased (Unicode, as
///   `String.lowercased()`), Unicode NFC. The store normalises what it is given on every call,
///   so a caller's already-normalised address is left unchanged.
/// - **username**: stored as given (trimmed, NFC).
/// - **one namespace**: usernames and emails are compared, with each other too, by
///   `UserRules.identifierKey` — NFKC and Unicode case folding (`ＡＬＩＣＥ`, `Alice` and `alice`
///   are one name; so are `Ärger` and `ärger`). A user's username may equal its own email; it
///   may not equal (by that key) any other user's username or email. Lookups use the same key.
/// - Substring searches (`users(matching:)`) follow the same rules and take the query
///   literally: `%`, `_` and `\` are plain characters.
///
/// Invalid input (a public id that is not 24 lowercase hex characters, an empty username or
/// email, a password hash that is not an `$argon2…` PHC string, stats that are not a JSON
/// object) throws `.conflict` with a nil `field`.
public protocol UserStore: Sendable {
    /// Creates a user and returns it with the numeric id the store assigned (monotonic, never
    /// reused). Throws `TokenStoreError.conflict(…)` with `field` `"email"` or `"username"`
    /// (and a reason naming it) when that value is taken, `"public_id"` when the id is;
    /// checked in that order: public id, email, username.
    func createUser(_ user: NewUser) async throws -> UserRecord

    /// The user with this 24-hex public id.
    func user(publicID: String) async throws -> UserRecord?

    /// The user with this numeric id (the v1 dialect's `id`).
    func user(numericID: Int64) async throws -> UserRecord?

    /// The user whose email equals `email` by `UserRules.identifierKey` (NFKC, case-folded).
    func user(email: String) async throws -> UserRecord?

    /// The user whose username equals `username` by `UserRules.identifierKey`.
    func user(username: String) async throws -> UserRecord?

    /// Users matching every filter of `query`, oldest first (by `createdAt`, then numeric id).
    func users(matching query: UserQuery) async throws -> [UserRecord]

    /// Applies `change` to the user and returns the result; nil when there is no such user.
    /// Appends `user_updated` naming the fields whose value changed; a change that changes
    /// nothing writes nothing.
    func updateUser(publicID: String, _ change: UserChange) async throws -> UserRecord?

    /// Applies several changes in one transaction (one durable write), each as `updateUser`
    /// would (events included); users that do not exist are skipped.
    func updateUsers(_ changes: [(publicID: String, change: UserChange)]) async throws
}

extension UserStore {
    /// One `updateUser` per change, for stores without a batch of their own.
    public func updateUsers(_ changes: [(publicID: String, change: UserChange)]) async throws {
        for (publicID, change) in changes { _ = try await updateUser(publicID: publicID, change) }
    }
}

/// A user as stored. `passwordHash` is a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
/// never a password; it is never logged or returned by an API.
public struct UserRecord: Sendable, Equatable {
    public enum Status: String, Sendable { case active, inactive }

    /// 24 lowercase hex characters (the appmixer and classic dialects' id).
    public var publicID: String
    /// Monotonic number (the v1 dialect's id).
    public var numericID: Int64
    public var username: String
    /// Normalised: trimmed, lowercased, NFC.
    public var email: String
    public var passwordHash: String
    public var status: Status
    public var plan: String
    public var vendor: String?
    public var scope: [String]
    public var firstName: String
    public var lastName: String
    public var role: String
    public var avatar: String
    public var permissions: [String]
    /// A JSON object's compact text.
    public var statsJSON: String
    public var createdAt: Double
    public var lastLoginAt: Double?
    /// Tokens issued to this user at or before this time are invalid.
    public var tokensNotBefore: Double?

    public init(
        publicID: String,
        numericID: Int64,
        username: String,
        email: String,
        passwordHash: String,
        status: Status = .active,
        plan: String = "free",
        vendor: String? = nil,
        scope: [String] = ["user"],
        firstName: String = "",
        lastName: String = "",
        role: String = "user",
        avatar: String = "",
        permissions: [String] = [],
        statsJSON: String = "{}",
        createdAt: Double,
        lastLoginAt: Double? = nil,
        tokensNotBefore: Double? = nil
    ) {
        self.publicID = publicID
        self.numericID = numericID
        self.username = username
        self.email = email
        self.passwordHash = passwordHash
        self.status = status
        self.plan = plan
        self.vendor = vendor
        self.scope = scope
        self.firstName = firstName
        self.lastName = lastName
        self.role = role
        self.avatar = avatar
        self.permissions = permissions
        self.statsJSON = statsJSON
        self.createdAt = createdAt
        self.lastLoginAt = lastLoginAt
        self.tokensNotBefore = tokensNotBefore
    }
}

/// What `createUser` needs; the store assigns `numericID`.
public struct NewUser: Sendable, Equatable {
    public var publicID: String
    public var username: String
    public var email: String
    public var passwordHash: String
    public var status: UserRecord.Status
    public var plan: String
    public var vendor: String?
    public var scope: [String]
    public var firstName: String
    public var lastName: String
    public var role: String
    public var avatar: String
    public var permissions: [String]
    public var createdAt: Double

    public init(
        publicID: String,
        username: String,
        email: String,
        passwordHash: String,
        status: UserRecord.Status = .active,
        plan: String = "free",
        vendor: String? = nil,
        scope: [String] = ["user"],
        firstName: String = "",
        lastName: String = "",
        role: String = "user",
        avatar: String = "",
        permissions: [String] = [],
        createdAt: Double
    ) {
        self.publicID = publicID
        self.username = username
        self.email = email
        self.passwordHash = passwordHash
        self.status = status
        self.plan = plan
        self.vendor = vendor
        self.scope = scope
        self.firstName = firstName
        self.lastName = lastName
        self.role = role
        self.avatar = avatar
        self.permissions = permissions
        self.createdAt = createdAt
    }
}

/// Filters for `users(matching:)`; every filter given must match. Substrings are taken
/// literally (no wildcards) and compared as `UserStore` describes: case-insensitively.
public struct UserQuery: Sendable, Equatable {
    public var emailContains: String?
    public var usernameContains: String?
    public var status: UserRecord.Status?
    /// At most this many users; none when it is 0 or less.
    public var limit: Int
    /// Skips this many matching users first (a negative offset counts as 0).
    public var offset: Int

    public init(
        emailContains: String? = nil,
        usernameContains: String? = nil,
        status: UserRecord.Status? = nil,
        limit: Int = 100,
        offset: Int = 0
    ) {
        self.emailContains = emailContains
        self.usernameContains = usernameContains
        self.status = status
        self.limit = limit
        self.offset = offset
    }
}

/// A partial update; nil members are left as they are. The public and numeric ids, the
/// username, the email and `createdAt` never change.
public struct UserChange: Sendable, Equatable {
    public var status: UserRecord.Status?
    /// A new `$argon2…` PHC string (a set or rehashed password).
    public var passwordHash: String?
    public var lastLoginAt: Double?
    /// Replaces the cutoff (it is not kept at the later of the two).
    public var tokensNotBefore: Double?
    public var plan: String?
    /// `.some(nil)` clears the vendor; nil leaves it.
    public var vendor: String??
    public var scope: [String]?
    public var firstName: String?
    public var lastName: String?
    public var role: String?
    public var avatar: String?
    public var permissions: [String]?
    /// A JSON object's text.
    public var statsJSON: String?
    /// When the change happens, the time of its `user_updated` event; nil uses the current
    /// time.
    public var changedAt: Double?

    public init(
        status: UserRecord.Status? = nil,
        passwordHash: String? = nil,
        lastLoginAt: Double? = nil,
        tokensNotBefore: Double? = nil,
        plan: String? = nil,
        vendor: String?? = nil,
        scope: [String]? = nil,
        firstName: String? = nil,
        lastName: String? = nil,
        role: String? = nil,
        avatar: String? = nil,
        permissions: [String]? = nil,
        statsJSON: String? = nil,
        changedAt: Double? = nil
    ) {
        self.status = status
        self.passwordHash = passwordHash
        self.lastLoginAt = lastLoginAt
        self.tokensNotBefore = tokensNotBefore
        self.plan = plan
        self.vendor = vendor
        self.scope = scope
        self.firstName = firstName
        self.lastName = lastName
        self.role = role
        self.avatar = avatar
        self.permissions = permissions
        self.statsJSON = statsJSON
        self.changedAt = changedAt
    }
}
