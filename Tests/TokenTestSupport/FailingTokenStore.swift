public import TokenStore

/// A `TokenStore` that cannot answer: every call throws `.unavailable` with `reason`, as a
/// store whose disk is gone would. For the 503 paths (introspection, refresh, /healthz).
public struct FailingTokenStore: TokenStore {
    public let reason: String

    public init(reason: String = "the token store is down (FailingTokenStore)") {
        self.reason = reason
    }

    private func fail() -> TokenStoreError { TokenStoreError.unavailable(reason) }

    public func loadRevocations(now: Double) async throws -> RevocationSnapshot { throw fail() }

    public func revokeAccessToken(
        jti: String,
        subject: String?,
        expiresAt: Double,
        at: Double,
        reason: String
    ) async throws { throw fail() }

    public func setSubjectCutoff(subject: String, notBefore: Double, reason: String) async throws { throw fail() }

    public func revokeKey(kid: String, at: Double, reason: String) async throws { throw fail() }

    public func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) async throws {
        throw fail()
    }

    public func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome { throw fail() }

    public func revokeRefreshFamily(id: String, at: Double, reason: String) async throws { throw fail() }

    public func refreshFamily(id: String) async throws -> RefreshFamily? { throw fail() }

    public func events(after cursor: Int64, limit: Int) async throws -> [TokenEvent] { throw fail() }

    public func appendEvent(kind: String, subject: String?, detail: String, at: Double) async throws {
        throw fail()
    }

    public func compact(now: Double) async throws -> Int { throw fail() }

    public func health() async -> StoreHealth { StoreHealth(reads: reason, writes: reason) }

    public func close() async throws {}
}
