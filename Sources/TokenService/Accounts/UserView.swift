public import TokenStore

/// A user as the account service hands it out: every field the APIs show, and never the
/// password hash, which stays inside `AccountService`.
public struct UserView: Sendable, Equatable {
    /// 24 lowercase hex characters (the appmixer and classic dialects' id).
    public let publicID: String
    /// Monotonic number (the v1 dialect's id).
    public let numericID: Int64
    public let username: String
    /// Normalised: trimmed, lowercased, NFC.
    public let email: String
    public let status: UserRecord.Status
    public let plan: String
    public let vendor: String?
    public let scope: [String]
    public let firstName: String
    public let lastName: String
    public let role: String
    public let avatar: String
    public let permissions: [String]
    /// A JSON object's compact text.
    public let statsJSON: String
    public let createdAt: Double
    public let lastLoginAt: Double?

    init(_ record: UserRecord) {
        publicID = record.publicID
        numericID = record.numericID
        username = record.username
        email = record.email
        status = record.status
        plan = record.plan
        vendor = record.vendor
        scope = record.scope
        firstName = record.firstName
        lastName = record.lastName
        role = record.role
        avatar = record.avatar
        permissions = record.permissions
        statsJSON = record.statsJSON
        createdAt = record.createdAt
        lastLoginAt = record.lastLoginAt
    }
}
