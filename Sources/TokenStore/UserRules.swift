import Foundation

/// The rules of `UserStore` shared by every implementation, so that they normalise, validate,
/// compare, order and log users alike (see `UserStore` for the rules themselves).
package enum UserRules {
    // MARK: Normalisation

    /// Trimmed, lowercased, NFC: the form in which an email is stored and looked up.
    package static func normalizedEmail(_ email: String) -> String {
        trimmed(email).lowercased().precomposedStringWithCanonicalMapping
    }

    /// Trimmed, NFC: the form in which a username is stored.
    package static func normalizedUsername(_ username: String) -> String {
        trimmed(username).precomposedStringWithCanonicalMapping
    }

    /// What usernames are compared by: the normalised username with `A`–`Z` lowered and every
    /// other byte kept, exactly as SQLite's built-in `lower()` (no ICU) does.
    package static func usernameKey(_ username: String) -> String {
        asciiLowercased(normalizedUsername(username))
    }

    /// What usernames and emails are told apart by, in one namespace (a username may not be
    /// anyone's email, nor an email anyone's username): trimmed, Unicode NFKC, case-folded
    /// (and NFKC again, as folding can undo it). `ＡＬＩＣＥ`, `alice` and `Alice` are one
    /// identifier; so are `straße` and `STRASSE`.
    package static func identifierKey(_ text: String) -> String {
        trimmed(text).precomposedStringWithCompatibilityMapping
            .folding(options: [.caseInsensitive], locale: nil)
            .lowercased()
            .precomposedStringWithCompatibilityMapping
    }

    /// The first character that has no place in an identifier because it is invisible or
    /// changes how the text around it looks: format characters (Unicode category Cf: bidi
    /// embeddings, overrides and isolates, zero-width spaces and joiners, the BOM…), other
    /// default-ignorable code points (variation selectors, fillers), controls, line and
    /// paragraph separators, surrogates, private-use and unassigned code points.
    package static func invisibleCharacter(in text: String) -> Unicode.Scalar? {
        text.unicodeScalars.first { scalar in
            switch scalar.properties.generalCategory {
            case .format, .control, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                return true
            default:
                return scalar.properties.isDefaultIgnorableCodePoint
            }
        }
    }

    /// `A`–`Z` lowered, every other character kept.
    package static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    private static func trimmed(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Validation

    /// The normalised form of `user`, or `.conflict` (no `field`) saying what is invalid.
    package static func validated(_ user: NewUser) throws -> NewUser {
        var user = user
        user.email = normalizedEmail(user.email)
        user.username = normalizedUsername(user.username)
        try checkPublicID(user.publicID)
        guard !user.username.isEmpty else { throw TokenStoreError.conflict("the username must not be empty") }
        guard !user.email.isEmpty else { throw TokenStoreError.conflict("the email must not be empty") }
        for (name, value) in [("username", user.username), ("email", user.email)] {
            if let scalar = invisibleCharacter(in: value) {
                throw TokenStoreError.conflict(
                    "the \(name) must not contain invisible or control characters (U+\(hex(scalar)))"
                )
            }
        }
        try checkPasswordHash(user.passwordHash)
        guard user.createdAt.isFinite else { throw TokenStoreError.conflict("the creation time must be finite") }
        return user
    }

    /// `scalar`'s code point as 4 or more upper-case hex digits (`200B`).
    package static func hex(_ scalar: Unicode.Scalar) -> String {
        let digits = String(scalar.value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// Whether `id` is 24 lowercase hex characters.
    package static func isPublicID(_ id: String) -> Bool {
        id.utf8.count == 24 && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    package static func checkPublicID(_ id: String) throws {
        guard isPublicID(id) else {
            throw TokenStoreError.conflict("a user's public id must be 24 lowercase hex characters")
        }
    }

    /// A PHC string of Argon2 (`$argon2id$…`); the hash itself never appears in the error.
    package static func checkPasswordHash(_ hash: String) throws {
        guard hash.hasPrefix("$argon2") else {
            throw TokenStoreError.conflict("a user's password hash must be an Argon2 PHC string ($argon2…)")
        }
    }

    package static func checkStats(_ json: String) throws {
        let object = try? JSONSerialization.jsonObject(with: Data(json.utf8))
        guard object is [String: Any] else {
            throw TokenStoreError.conflict("a user's stats must be the text of a JSON object")
        }
    }

    // MARK: Conflicts

    package static func publicIDTaken(_ id: String) -> TokenStoreError {
        TokenStoreError.conflict("public_id is taken: a user with public id \(id) exists already", field: "public_id")
    }

    /// The reason names `email` and not `username`.
    package static func emailTaken() -> TokenStoreError {
        TokenStoreError.conflict("email is taken: another user has this address already", field: "email")
    }

    /// The reason names `username` and not `email`.
    package static func usernameTaken() -> TokenStoreError {
        TokenStoreError.conflict(
            "username is taken: it names another user already (names compare after NFKC and case folding)",
            field: "username"
        )
    }

    /// The identifiers `user` claims: its username's key and its email's key, once when they
    /// are the same (a username that is the user's own email).
    package static func identifierKeys(of user: NewUser) -> (email: String, username: String?) {
        let email = identifierKey(user.email)
        let username = identifierKey(user.username)
        return (email, username == email ? nil : username)
    }

    // MARK: Records

    /// The record `createUser` stores for a validated `user`.
    package static func record(_ user: NewUser, numericID: Int64) -> UserRecord {
        UserRecord(
            publicID: user.publicID,
            numericID: numericID,
            username: user.username,
            email: user.email,
            passwordHash: user.passwordHash,
            status: user.status,
            plan: user.plan,
            vendor: user.vendor,
            scope: user.scope,
            firstName: user.firstName,
            lastName: user.lastName,
            role: user.role,
            avatar: user.avatar,
            permissions: user.permissions,
            createdAt: user.createdAt
        )
    }

    /// `user` with `change` applied, and the column names of the values that changed (in
    /// column order). Throws `.conflict` when a new value is invalid.
    package static func applying(_ change: UserChange, to user: UserRecord) throws -> (UserRecord, [String]) {
        if let hash = change.passwordHash { try checkPasswordHash(hash) }
        if let stats = change.statsJSON { try checkStats(stats) }
        var updated = user
        var fields: [String] = []
        func set<Value: Equatable>(_ path: WritableKeyPath<UserRecord, Value>, _ value: Value?, _ column: String) {
            guard let value, updated[keyPath: path] != value else { return }
            updated[keyPath: path] = value
            fields.append(column)
        }
        set(\.passwordHash, change.passwordHash, "password_hash")
        set(\.status, change.status, "status")
        set(\.plan, change.plan, "plan")
        set(\.vendor, change.vendor, "vendor")
        set(\.scope, change.scope, "scope")
        set(\.firstName, change.firstName, "first_name")
        set(\.lastName, change.lastName, "last_name")
        set(\.role, change.role, "role")
        set(\.avatar, change.avatar, "avatar")
        set(\.permissions, change.permissions, "permissions")
        set(\.statsJSON, change.statsJSON, "stats")
        set(\.lastLoginAt, change.lastLoginAt.map { Optional($0) }, "last_login_at")
        set(\.tokensNotBefore, change.tokensNotBefore.map { Optional($0) }, "tokens_not_before")
        return (updated, fields)
    }

    /// The time of an update's event.
    package static func eventTime(of change: UserChange) -> Double {
        change.changedAt ?? Date().timeIntervalSince1970
    }

    // MARK: Columns

    /// A string array as the JSON text the `scope` and `permissions` columns hold.
    package static func jsonText(_ strings: [String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return String(decoding: try encoder.encode(strings), as: UTF8.self)
    }

    /// The strings of a stored `scope` or `permissions` column.
    package static func strings(fromJSON json: String, column: String) throws -> [String] {
        do {
            return try JSONDecoder().decode([String].self, from: Data(json.utf8))
        } catch {
            throw TokenStoreError.schema("a stored user's \(column) is not a JSON array of strings")
        }
    }

    /// A stored status.
    package static func status(_ name: String) throws -> UserRecord.Status {
        guard let status = UserRecord.Status(rawValue: name) else {
            throw TokenStoreError.schema("a stored user has the unknown status '\(name)'")
        }
        return status
    }

    // MARK: Queries

    /// The substrings a query looks for, normalised as the values they are compared with:
    /// `email` against stored emails, `username` against `usernameKey`s.
    package static func needles(of query: UserQuery) -> (email: String?, username: String?) {
        (query.emailContains.map(normalizedEmail), query.usernameContains.map(usernameKey))
    }

    /// Whether `haystack` contains `needle` byte for byte (SQLite's `instr`); an empty needle
    /// is found everywhere.
    package static func contains(_ haystack: String, _ needle: String) -> Bool {
        let haystack = Array(haystack.utf8)
        let needle = Array(needle.utf8)
        guard needle.count <= haystack.count else { return false }
        if needle.isEmpty { return true }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }

    /// Oldest first: by creation time, then numeric id.
    package static func isOlder(_ lhs: UserRecord, _ rhs: UserRecord) -> Bool {
        (lhs.createdAt, lhs.numericID) < (rhs.createdAt, rhs.numericID)
    }
}

extension TokenEvent.Kind {
    /// `createUser`: subject the public id, detail `numeric_id=… status=…`.
    public static let userCreated = "user_created"
    /// `updateUser`: subject the public id, detail `fields=a,b` and ` status=…` when the status
    /// changed. Names the changed fields, never their values otherwise (no password hash).
    public static let userUpdated = "user_updated"
    /// Migrating to one namespace for identifiers: a user's username or email (`detail`
    /// `field=username|email`) was the identifier of an older user, who keeps it; this user
    /// signs in by its other identifier.
    public static let userIdentifierShadowed = "user_identifier_shadowed"
}

extension StoreEvents {
    package static func userCreated(_ user: UserRecord) -> Draft {
        Draft(
            kind: TokenEvent.Kind.userCreated,
            subject: user.publicID,
            detail: "numeric_id=\(user.numericID) status=\(user.status.rawValue)"
        )
    }

    package static func userUpdated(_ user: UserRecord, fields: [String]) -> Draft {
        var detail = "fields=\(fields.joined(separator: ","))"
        if fields.contains("status") { detail += " status=\(user.status.rawValue)" }
        return Draft(kind: TokenEvent.Kind.userUpdated, subject: user.publicID, detail: detail)
    }
}
