import Synchronization
import TokenStore
import TokenTestSupport

/// A store that answers from an `InMemoryTokenStore` until `failing` is set, and from then on
/// as a `FailingTokenStore` (every call throws `.unavailable`) until it is cleared: a disk
/// that goes away under a running service and comes back.
final class OutageStore: TokenStore {
    let healthy: InMemoryTokenStore
    let broken = FailingTokenStore()
    private let down = Mutex(false)

    init(_ healthy: InMemoryTokenStore = InMemoryTokenStore()) { self.healthy = healthy }

    var failing: Bool {
        get { down.withLock { $0 } }
        set { down.withLock { $0 = newValue } }
    }

    private var current: any TokenStore { failing ? broken : healthy }

    func loadRevocations(now: Double) async throws -> RevocationSnapshot {
        try await current.loadRevocations(now: now)
    }

    func revokeAccessToken(jti: String, subject: String?, expiresAt: Double, at: Double, reason: String) async throws {
        try await current.revokeAccessToken(jti: jti, subject: subject, expiresAt: expiresAt, at: at, reason: reason)
    }

    func setSubjectCutoff(subject: String, notBefore: Double, reason: String) async throws {
        try await current.setSubjectCutoff(subject: subject, notBefore: notBefore, reason: reason)
    }

    func revokeKey(kid: String, at: Double, reason: String) async throws {
        try await current.revokeKey(kid: kid, at: at, reason: reason)
    }

    func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) async throws {
        try await current.createRefreshFamily(family, firstToken: firstToken)
    }

    func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome {
        try await current.updateRefreshToken(hash: hash, now: now, decide)
    }

    func revokeRefreshFamily(id: String, at: Double, reason: String) async throws {
        try await current.revokeRefreshFamily(id: id, at: at, reason: reason)
    }

    func refreshFamily(id: String) async throws -> RefreshFamily? {
        try await current.refreshFamily(id: id)
    }

    func events(after cursor: Int64, limit: Int) async throws -> [TokenEvent] {
        try await current.events(after: cursor, limit: limit)
    }

    func appendEvent(kind: String, subject: String?, detail: String, at: Double) async throws {
        try await current.appendEvent(kind: kind, subject: subject, detail: detail, at: at)
    }

    func compact(now: Double) async throws -> Int {
        try await current.compact(now: now)
    }

    func health() async -> StoreHealth {
        await current.health()
    }

    func close() async throws {
        try await current.close()
    }
}
