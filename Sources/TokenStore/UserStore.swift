/// Durable user accounts behind the account APIs (DESIGN §5.3, issue 4). One table serves
/// every dialect. Like `TokenStore`, every mutation is durable before it returns.
public protocol UserStore: Sendable {
    /// Creates a user. Throws `TokenStoreError(.conflict, …)` naming `email` or `username`
    /// when either is taken (usernames compare case-insensitively, emails normalised).
    func createUser(_ user: NewUser) async throws -> UserRecord

    /// The user with this 24-hex public id.
    func user(publicID: String) async throws -> UserRecord?

    /// The user with this numeric id (the v1 dialect's `id`).
    func user(numericID: Int64) async throws -> UserRecord?

    /// The user whose normalised email equals `email`.
    func user(email: String) async throws -> UserRecord?

    /// The user whose username equals `username`, case-insensitively.
    func user(username: String) async throws -> UserRecord?

    /// Users matching `query`, oldest first.
    func users(matching query: UserQuery) async throws -> [UserRecord]

    /// Applies `change` to the user and returns the result; nil when there is no such user.
    func updateUser(publicID: String, _ change: UserChange) async throws -> UserRecord?
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
    /// Normalised: trimmed and lowercased.
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
        publicID: String, numericID: Int64, username: String, email: String, passwordHash: String,
        status: Status = .active, plan: String = "free", vendor: String? = nil, scope: [String] = ["user"],
        firstName: String = "", lastName: String = "", role: String = "user", avatar: String = "",
        permissions: [String] = [], statsJSON: String = "{}", createdAt: Double, lastLoginAt: Double? = nil,
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
        publicID: String, username: String, email: String, passwordHash: String, status: UserRecord.Status = .active,
        plan: String = "free", vendor: String? = nil, scope: [String] = ["user"], firstName: String = "",
        lastName: String = "", role: String = "user", avatar: String = "", permissions: [String] = [], createdAt: Double
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

/// Filters for `users(matching:)`. Substring matches are case-insensitive.
public struct UserQuery: Sendable, Equatable {
    public var emailContains: String?
    public var usernameContains: String?
    public var status: UserRecord.Status?
    public var limit: Int
    public var offset: Int

    public init(
        emailContains: String? = nil, usernameContains: String? = nil, status: UserRecord.Status? = nil, limit: Int = 100,
        offset: Int = 0
    ) {
        self.emailContains = emailContains
        self.usernameContains = usernameContains
        self.status = status
        self.limit = limit
        self.offset = offset
    }
}

/// A partial update; nil members are left as they are.
public struct UserChange: Sendable, Equatable {
    public var status: UserRecord.Status?
    public var passwordHash: String?
    public var lastLoginAt: Double?
    public var tokensNotBefore: Double?

    public init(
        status: UserRecord.Status? = nil, passwordHash: String? = nil, lastLoginAt: Double? = nil,
        tokensNotBefore: Double? = nil
    ) {
        self.status = status
        self.passwordHash = passwordHash
        self.lastLoginAt = lastLoginAt
        self.tokensNotBefore = tokensNotBefore
    }
}
