import CodedErrors
public import JOSE
public import Logging
public import PasswordHashing
public import ServiceLifecycle
import TokenCrypto
public import TokenStore

/// The three API contracts of the seed documents (DESIGN §5.3).
public enum AccountDialect: String, Sendable, CaseIterable {
    case appmixer
    case classic
    case v1

    /// Access token lifetime of the dialect.
    public var policy: LifetimePolicy {
        switch self {
        case .appmixer: .thirtyDays
        case .classic: .oneHour
        case .v1: .oneDay
        }
    }

    /// Whether sign-in also returns a rotating refresh token.
    public var withRefresh: Bool { self == .v1 }
}

/// Limits and defaults of the account APIs (the seed's variables, DESIGN §7).
public struct AccountConfiguration: Sendable {
    public var signupPerEmail: RateLimiter.Rule
    public var signupPerIP: RateLimiter.Rule
    /// Failed sign-ins per account identifier (username or email, normalised), from any
    /// client address.
    public var signinPerAccount: RateLimiter.Rule
    /// Failed sign-ins per client address (successful ones are not counted).
    public var signinPerIP: RateLimiter.Rule
    /// When set, unauthenticated sign-up is closed: a bearer token with this scope is needed.
    public var createScope: String?
    public var minimumPasswordLength: Int
    public var maximumPasswordBytes: Int

    public init(
        signupPerEmail: RateLimiter.Rule = .init(limit: 10, window: 3600),
        signupPerIP: RateLimiter.Rule = .init(limit: 50, window: 3600),
        signinPerAccount: RateLimiter.Rule = .init(limit: 10, window: 900),
        signinPerIP: RateLimiter.Rule = .init(limit: 100, window: 900),
        createScope: String? = nil,
        minimumPasswordLength: Int = 6,
        maximumPasswordBytes: Int = 1024
    ) {
        self.signupPerEmail = signupPerEmail
        self.signupPerIP = signupPerIP
        self.signinPerAccount = signinPerAccount
        self.signinPerIP = signinPerIP
        self.createScope = createScope
        self.minimumPasswordLength = minimumPasswordLength
        self.maximumPasswordBytes = maximumPasswordBytes
    }
}

/// Sign-up, sign-in, user info and user administration over a `UserStore`, issuing tokens
/// through `TokenService`. Users leave it as `UserView`s, without their password hash.
public final class AccountService: Sendable {
    /// The store, read through `signInTimes` (which adds the times not yet written).
    let users: any UserStore
    public let tokens: TokenService
    public let configuration: AccountConfiguration
    let hasher: PasswordHasher
    let clock: ServiceClock
    let logger: Logger
    let signupEmailLimiter: AccountLimit
    let signupIPLimiter: AccountLimit
    let signinAccountLimiter: AccountLimit
    let signinIPLimiter: AccountLimit
    /// Last sign-in times, written behind (one transaction per second, not per sign-in).
    let signInTimes: SignInTimes

    /// Builds the service over `users`; `tokens` should have been started with an
    /// `AccountRefresh` over the same store, so refreshes of the dialects' families get their
    /// lifetimes and claims. Run `pendingSignInTimes` in the daemon's `ServiceGroup`.
    /// `sharedLimits`: where a fleet counts the rate limits (the shared store); nil counts them
    /// in this process's memory.
    public init(
        users: any UserStore,
        tokens: TokenService,
        hasher: PasswordHasher,
        configuration: AccountConfiguration = AccountConfiguration(),
        sharedLimits: (any SharedRateWindows)? = nil,
        clock: ServiceClock = .system,
        logger: Logger
    ) {
        let signInTimes = SignInTimes(store: users) { [logger] error in
            logger.error("could not record last sign-in times", metadata: ["error": "\(error)"])
        }
        self.signInTimes = signInTimes
        self.users = signInTimes
        self.tokens = tokens
        self.hasher = hasher
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        signupEmailLimiter = AccountLimit(
            "signup_email",
            configuration.signupPerEmail,
            shared: sharedLimits,
            logger: logger
        )
        signupIPLimiter = AccountLimit(
            "signup_address",
            configuration.signupPerIP,
            shared: sharedLimits,
            logger: logger
        )
        signinAccountLimiter = AccountLimit(
            "signin_account",
            configuration.signinPerAccount,
            shared: sharedLimits,
            logger: logger
        )
        signinIPLimiter = AccountLimit(
            "signin_address",
            configuration.signinPerIP,
            shared: sharedLimits,
            logger: logger
        )
    }

    /// Writes the last sign-in times behind, as a `Service`: on graceful shutdown it writes
    /// what is still pending. Put it before the server in the `ServiceGroup`, so it stops after
    /// the server has answered its last sign-in, and close the store only after the group.
    public var pendingSignInTimes: any Service { signInTimes }

    // MARK: Validation

    /// Trimmed, lowercased; nil when it does not look like an address.
    public static func normalizedEmail(_ text: String) -> String? {
        let email = text.trimmingSpaces.lowercased()
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !email.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 }),
            UserRules.invisibleCharacter(in: email) == nil
        else { return nil }
        return email
    }

    func passwordProblems(_ password: String) -> [String] {
        if password.count < configuration.minimumPasswordLength {
            return ["password must be at least \(configuration.minimumPasswordLength) characters"]
        }
        if password.utf8.count > configuration.maximumPasswordBytes {
            return ["password must be at most \(configuration.maximumPasswordBytes) bytes"]
        }
        return []
    }

    /// What is wrong with `username` for an account whose email is `email`.
    ///
    /// Usernames and emails share one namespace (the store refuses a username that is any
    /// user's email, after NFKC and case folding). On top of that, a username that looks like
    /// an address (has an `@`) must be the account's own email, as in the seed documents'
    /// `{"username": "abc@example.com", "email": "abc@example.com"}`: otherwise anyone could
    /// take an address as a username before its owner signs up, and the tokens' `username`
    /// claim would show an address that is not the user's. Invisible characters (bidi
    /// controls, zero-width spaces, other format characters) are refused: they make two
    /// usernames look alike or one look like another.
    static func usernameProblems(_ username: String, email: String) -> [String] {
        let trimmed = username.trimmingSpaces
        if trimmed.isEmpty { return ["username must not be empty"] }
        if trimmed.count > 128 { return ["username must be at most 128 characters"] }
        if let scalar = UserRules.invisibleCharacter(in: trimmed) {
            let kind = scalar.properties.generalCategory == .control ? "control" : "invisible or formatting"
            return ["username must not contain \(kind) characters (found U+\(UserRules.hex(scalar)))"]
        }
        // On the normalised key: a full-width ＠ (U+FF20) or a small ﹫ (U+FE6B) is an @ there.
        let key = UserRules.identifierKey(trimmed)
        if key.contains("@"), key != UserRules.identifierKey(email) {
            return ["username must not contain @ unless it is the account's own email"]
        }
        return []
    }

    // MARK: Sign-up

    /// Creates an active user. `bypassLimits` is for admins (admin socket, or a token with
    /// API_USER_CREATE_SCOPE); everyone else is rate limited per email and per client address.
    public func signUp(
        username: String,
        email: String,
        password: String,
        clientAddress: String,
        bypassLimits: Bool,
        profile: (firstName: String, lastName: String, role: String)? = nil
    ) async throws(AccountError) -> UserView {
        var problems = AccountService.usernameProblems(username, email: email)
        let normalized = AccountService.normalizedEmail(email)
        if normalized == nil { problems.append("email must be a valid email address") }
        problems += passwordProblems(password)
        guard problems.isEmpty, let normalized else { throw .validation(problems) }
        let now = clock.now()
        if !bypassLimits {
            // Look-alike addresses (NFKC, case) are one address here too, as in the store.
            if let wait = try await signupEmailLimiter.take(UserRules.identifierKey(normalized), now: now) {
                throw .signUpLimited(perEmail: true, retryAfter: wait)
            }
            if let wait = try await signupIPLimiter.take(clientAddress, now: now) {
                throw .signUpLimited(perEmail: false, retryAfter: wait)
            }
        }
        let phc: String
        do throws(PasswordHashingError) { phc = try await hasher.hash(password) } catch {
            throw error.code == .overloaded ? .overloaded() : .unavailable()
        }
        let user = NewUser(
            publicID: AccountService.newPublicID(),
            username: username.trimmingSpaces,
            email: normalized,
            passwordHash: phc,
            firstName: profile?.firstName ?? "",
            lastName: profile?.lastName ?? "",
            role: profile?.role ?? "user",
            createdAt: now
        )
        do {
            let created = try await users.createUser(user)
            logger.info("user created", metadata: ["user": "\(created.publicID)", "admin": "\(bypassLimits)"])
            return UserView(created)
        } catch let error as TokenStoreError
            where error.code == .conflict && (error.field == "email" || error.field == "username")
        {
            throw .conflict(field: error.field!)
        } catch {
            logger.error("user creation failed", metadata: ["error": "\(error)"])
            throw .unavailable()
        }
    }

    /// 24 lowercase hex characters.
    static func newPublicID() -> String {
        SecureRandom.bytes(12).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    // MARK: Sign-in

    /// How the client named the account.
    public enum Identifier: Sendable {
        case email(String)
        case username(String)
        /// Appmixer's `username` may hold either.
        case emailOrUsername(String)
    }

    /// Checks the password with the same work and the same answer for an unknown user and a
    /// wrong password; refuses inactive users only after a correct password; then issues the
    /// dialect's tokens.
    ///
    /// A deactivation, password change or sign-out that lands while the password is being
    /// checked wins: the user is read again after hashing (still active, same password hash)
    /// and the tokens are issued under a ticket taken before hashing, which
    /// `RevocationState.reserveIssuance` refuses once a cutoff for the user has begun. A
    /// token issued before such a cutoff begins is covered by it.
    public func signIn(
        _ identifier: Identifier,
        password: String,
        clientAddress: String,
        dialect: AccountDialect
    ) async throws(AccountError) -> (user: UserView, tokens: IssuedTokens) {
        if password.utf8.count > configuration.maximumPasswordBytes { throw .invalidCredentials() }
        let now = clock.now()
        // Every attempt is counted before the hash, so that concurrent guesses cannot slip past
        // a limit, and a success is refunded from the address: only failures are limited.
        //
        // Per address: a gateway in front of many users is not locked out by their successes.
        if let wait = try await signinIPLimiter.take(clientAddress, now: now) { throw .signInLimited(retryAfter: wait) }
        // Per account, whatever the address: keyed by the identifier as typed, normalised (one
        // namespace for usernames and emails, so a key names at most one account), and counted
        // the same whether or not an account has it. Keying by the account instead would answer
        // 429 after failures spread over a username and an email only when both are the same
        // account, telling a prober which username goes with which email.
        let accountKey = AccountService.limitKey(identifier)
        if let wait = try await signinAccountLimiter.take(accountKey, now: now) {
            await signinIPLimiter.refund(clientAddress, takenAt: now)
            throw .signInLimited(retryAfter: wait)
        }

        // An attempt that turns out not to be a failure (no password was checked, or it was
        // the right one) is given back to both limiters.
        func notAFailure() async {
            await signinIPLimiter.refund(clientAddress, takenAt: now)
            await signinAccountLimiter.refund(accountKey, takenAt: now)
        }

        let found: UserRecord?
        do { found = try await lookUp(identifier) } catch {
            await notAFailure()
            logger.error("user lookup failed", metadata: ["error": "\(error)"])
            throw .unavailable()
        }
        guard var user = found else {
            do throws(PasswordHashingError) { try await hasher.verifyDummy(password: password) } catch {
                if error.code == .overloaded {
                    await notAFailure()
                    throw .overloaded()
                }
            }
            throw .invalidCredentials()
        }
        // Taken before hashing: a sign-out that begins from here on refuses the issuance.
        let ticket = tokens.revocations.ticket(subject: user.publicID)
        var result: PasswordHasher.VerifyResult
        do throws(AccountError) { result = try await verify(password, user) } catch {
            // No password was checked (the pool is full or failed).
            await notAFailure()
            throw error
        }
        guard result.matches else {
            logger.info("sign-in refused: wrong password", metadata: ["user": "\(user.publicID)"])
            throw .invalidCredentials()
        }
        // A success does not wipe the failures before it, though: the count is per identifier
        // from every address, so a reset would hand whoever is guessing a fresh budget each
        // time the real user signs in.
        await notAFailure()
        // The user as it is now, after the ~40 ms of hashing: a password set meanwhile must
        // match too (a concurrent sign-in's rehash changes the hash, not the password).
        let current = try await reread(user.publicID)
        if current.passwordHash != user.passwordHash {
            result = try await verify(password, current)
            guard result.matches else {
                logger.info("sign-in refused: password changed meanwhile", metadata: ["user": "\(user.publicID)"])
                throw .invalidCredentials()
            }
        }
        user = current
        guard user.status == .active else { throw .inactive() }
        guard let issued = try await issue(user, dialect: dialect, ticket: ticket) else {
            // A sign-out began while the password was hashed: this sign-in issues nothing (its
            // token would outlive the sign-out). A deactivation or a new password decides the
            // answer; after a plain sign-out the password was right, so the client is told to
            // try again (a sign-in that starts now is a new session), not that it was wrong.
            logger.info("sign-in refused: signed out meanwhile", metadata: ["user": "\(user.publicID)"])
            let after = try await reread(user.publicID)
            guard after.status == .active else { throw .inactive() }
            if after.passwordHash != user.passwordHash, try await !verify(password, after).matches {
                throw .invalidCredentials()
            }
            throw .unavailable()
        }
        if result.needsRehash, let phc = try? await hasher.hash(password),
            (try? await users.user(publicID: user.publicID))?.passwordHash == user.passwordHash
        {
            // A stronger hash is written at once, unless the password changed while it was
            // computed (the new password's hash must not be overwritten by the old one's). The
            // sign-in time goes the way of every other one (through SignInTimes, which keeps a
            // user's latest time), so an earlier sign-in still waiting there cannot overwrite it.
            var change = UserChange(passwordHash: phc)
            change.changedAt = now
            _ = try? await users.updateUser(publicID: user.publicID, change)
        }
        signInTimes.record(publicID: user.publicID, at: now)
        user.lastLoginAt = now
        return (UserView(user), issued)
    }

    /// The key of the per-account failure count: the identifier normalised as the store
    /// compares identifiers, whichever field named it. One longer than any username or email
    /// can be (which names no account) is kept as its digest, so that a spray of long
    /// identifiers costs the limiter a bounded size per key.
    static func limitKey(_ identifier: Identifier) -> String {
        switch identifier {
        case .email(let text), .username(let text), .emailOrUsername(let text):
            let key = UserRules.identifierKey(text)
            guard key.utf8.count > 320 else { return key }
            return "#" + Base64URL.encode(SHA256.hash(Array(key.utf8)))
        }
    }

    func verify(_ password: String, _ user: UserRecord) async throws(AccountError) -> PasswordHasher.VerifyResult {
        do throws(PasswordHashingError) {
            return try await hasher.verify(password: password, phc: user.passwordHash)
        } catch {
            throw error.code == .overloaded ? .overloaded() : .unavailable()
        }
    }

    /// The user read again by public id; gone counts as wrong credentials.
    func reread(_ publicID: String) async throws(AccountError) -> UserRecord {
        let found: UserRecord?
        do { found = try await users.user(publicID: publicID) } catch {
            logger.error("user lookup failed", metadata: ["error": "\(error)"])
            throw .unavailable()
        }
        guard let found else { throw .invalidCredentials() }
        return found
    }

    func lookUp(_ identifier: Identifier) async throws -> UserRecord? {
        switch identifier {
        case .email(let text):
            guard let email = AccountService.normalizedEmail(text) else { return nil }
            return try await users.user(email: email)
        case .username(let text):
            return try await users.user(username: text.trimmingSpaces)
        case .emailOrUsername(let text):
            if let user = try await users.user(username: text.trimmingSpaces) { return user }
            guard let email = AccountService.normalizedEmail(text) else { return nil }
            return try await users.user(email: email)
        }
    }

    // MARK: Tokens

    /// The dialect's access token (and refresh token for v1) for a new user.
    public func issueTokens(for user: UserView, dialect: AccountDialect) async throws(AccountError) -> IssuedTokens {
        guard let issued = try await issue(user, dialect: dialect, ticket: nil) else { throw .unavailable() }
        return issued
    }

    /// The dialect's tokens for `user`, issued under `ticket`: nil when a sign-out of the
    /// user began after the ticket was taken (``TokenService/issue(_:ticket:)`` refused).
    private func issue(
        _ user: UserRecord,
        dialect: AccountDialect,
        ticket: IssuanceTicket?
    ) async throws(AccountError) -> IssuedTokens? {
        try await issue(UserView(user), dialect: dialect, ticket: ticket)
    }

    private func issue(
        _ user: UserView,
        dialect: AccountDialect,
        ticket: IssuanceTicket?
    ) async throws(AccountError) -> IssuedTokens? {
        do {
            return try await tokens.issue(AccountService.issueRequest(for: user, dialect: dialect), ticket: ticket)
        } catch let error as ServiceError where error.code == .signedOut {
            return nil
        } catch {
            logger.error("token issue failed", metadata: ["error": "\(error)"])
            throw .unavailable()
        }
    }

    static func issueRequest(for user: UserView, dialect: AccountDialect) -> IssueRequest {
        IssueRequest(
            subject: user.publicID,
            scope: user.scope,
            clientID: dialect.rawValue,
            policy: dialect.policy,
            withRefresh: dialect.withRefresh,
            extraClaims: AccountService.claims(for: user, dialect: dialect),
            dialect: dialect.rawValue
        )
    }

    /// The claims each dialect's consumers read (seed documents).
    static func claims(for user: UserView, dialect: AccountDialect) -> JSONObject {
        switch dialect {
        case .appmixer:
            return JSONObject([("id", .string(user.publicID)), ("scope", .array(user.scope.map { .string($0) }))])
        case .classic:
            return JSONObject([
                ("userId", .string(user.publicID)), ("userName", .string(user.username)),
                ("email", .string(user.email)),
            ])
        case .v1:
            return JSONObject([
                ("id", .number(JSONNumber(user.numericID))), ("username", .string(user.username)),
                ("email", .string(user.email)), ("rol", .string(user.role)),
            ])
        }
    }

    /// The user behind an active access token, or why not.
    public func user(bearer token: String) async throws(AccountError) -> (UserView, VerifiedToken) {
        switch tokens.introspect(token) {
        case .active(let verified):
            let found: UserRecord?
            do { found = try await users.user(publicID: verified.subject) } catch { throw .unavailable() }
            guard let user = found else { throw .unauthorized() }
            guard user.status == .active else { throw .unauthorized() }
            return (UserView(user), verified)
        case .inactive:
            throw .unauthorized()
        case .unavailable:
            throw .unavailable()
        }
    }

    // MARK: Administration

    /// Deactivates a user: sign-in and refresh are refused and every token issued so far
    /// stops working at once.
    public func setActive(_ publicID: String, _ active: Bool) async throws(AccountError) -> UserView {
        let now = clock.now()
        let updated: UserRecord?
        do {
            updated = try await users.updateUser(
                publicID: publicID,
                UserChange(status: active ? .active : .inactive, tokensNotBefore: active ? nil : now)
            )
        } catch { throw .unavailable() }
        guard let updated else { throw .notFound() }
        if !active {
            do { try await tokens.logout(subject: publicID, reason: "user deactivated") } catch { throw .unavailable() }
        }
        logger.notice("user \(active ? "activated" : "deactivated")", metadata: ["user": "\(publicID)"])
        return UserView(updated)
    }

    /// Sets a new password (admin); the user's existing tokens stop working.
    public func setPassword(_ publicID: String, _ password: String) async throws(AccountError) -> UserView {
        let problems = passwordProblems(password)
        guard problems.isEmpty else { throw .validation(problems) }
        let phc: String
        do throws(PasswordHashingError) { phc = try await hasher.hash(password) } catch {
            throw error.code == .overloaded ? .overloaded() : .unavailable()
        }
        let updated: UserRecord?
        do { updated = try await users.updateUser(publicID: publicID, UserChange(passwordHash: phc)) } catch {
            throw .unavailable()
        }
        guard let updated else { throw .notFound() }
        do { try await tokens.logout(subject: publicID, reason: "password changed") } catch { throw .unavailable() }
        return UserView(updated)
    }

    /// Signs the user out everywhere.
    public func logout(_ publicID: String) async throws(AccountError) {
        do { try await tokens.logout(subject: publicID, reason: "logout") } catch { throw .unavailable() }
    }

    /// A user by public id or, when all digits, numeric id.
    public func find(_ id: String) async throws(AccountError) -> UserView {
        let found: UserRecord?
        do {
            if let number = Int64(id) {
                found = try await users.user(numericID: number)
            } else {
                found = try await users.user(publicID: id)
            }
        } catch { throw .unavailable() }
        guard let found else { throw .notFound() }
        return UserView(found)
    }

    public func list(_ query: UserQuery) async throws(AccountError) -> [UserView] {
        do { return try await users.users(matching: query).map(UserView.init) } catch { throw .unavailable() }
    }
}

/// Refreshes of the dialects' families (v1's): their dialect's lifetime and claims, refused
/// for inactive users. Pass it to `TokenService.start`.
public struct AccountRefresh: RefreshCustomizer {
    let users: any UserStore

    public init(users: any UserStore) {
        self.users = users
    }

    public func refreshGrant(
        for family: RefreshFamily
    ) async -> Result<(policy: LifetimePolicy, claims: JSONObject), OAuthError> {
        guard let dialect = AccountDialect(rawValue: family.dialect) else {
            return .success((LifetimePolicy.oneHour, JSONObject()))
        }
        let user: UserRecord?
        do { user = try await users.user(publicID: family.subject) } catch {
            return .failure(.temporarilyUnavailable("the user store is unavailable"))
        }
        guard let user else { return .failure(.invalidGrant("the account no longer exists")) }
        guard user.status == .active else {
            return .failure(.accountInactive("Account is inactive. Contact administrator."))
        }
        return .success((dialect.policy, AccountService.claims(for: UserView(user), dialect: dialect)))
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
