import Synchronization
import TokenStore
import TokenTestSupport

/// A store the fleet shares, as a follower sees it: an `InMemoryTokenStore` for everything a
/// node writes and reads, plus a followed event log the test writes as other nodes would
/// (`publish`), each event final or not (its transaction still open), and a switch that makes
/// the log unreadable (the database away).
final class ScriptedFleetStore: FollowableStore {
    let memory = InMemoryTokenStore()
    private let log = Mutex<[FollowedEvent]>([])
    private let down = Mutex(false)
    static let start = FollowCursor(transaction: 100, sequence: 0)

    var logUnreadable: Bool {
        get { down.withLock { $0 } }
        set { down.withLock { $0 = newValue } }
    }

    /// Adds (or replaces, by position) an event of the followed log.
    func publish(_ kind: String, subject: String? = nil, _ detail: String, at position: FollowCursor, final: Bool) {
        let event = TokenEvent(sequence: position.sequence, at: 0, kind: kind, subject: subject, detail: detail)
        log.withLock { log in
            log.removeAll { $0.position == position }
            log.append(FollowedEvent(position: position, event: event, final: final))
            log.sort { $0.position < $1.position }
        }
    }

    func loadRevocationsToFollow(now: Double) async throws -> (RevocationSnapshot, FollowCursor) {
        (try await memory.loadRevocations(now: now), Self.start)
    }

    func followedEvents(after position: FollowCursor, limit: Int) async throws -> FollowedEvents {
        if logUnreadable { throw TokenStoreError.unavailable("the test database is away") }
        let after = log.withLock { $0.filter { $0.position > position } }
        return FollowedEvents(events: Array(after.prefix(limit)), complete: after.count < limit)
    }

    func loadRevocations(now: Double) async throws -> RevocationSnapshot { try await memory.loadRevocations(now: now) }

    func revokeAccessToken(jti: String, subject: String?, expiresAt: Double, at: Double, reason: String) async throws {
        try await memory.revokeAccessToken(jti: jti, subject: subject, expiresAt: expiresAt, at: at, reason: reason)
    }

    func setSubjectCutoff(subject: String, notBefore: Double, reason: String) async throws {
        try await memory.setSubjectCutoff(subject: subject, notBefore: notBefore, reason: reason)
    }

    func revokeKey(kid: String, at: Double, reason: String) async throws {
        try await memory.revokeKey(kid: kid, at: at, reason: reason)
    }

    func createRefreshFamily(_ family: RefreshFamily, firstToken: RefreshTokenRecord) async throws {
        try await memory.createRefreshFamily(family, firstToken: firstToken)
    }

    func updateRefreshToken<Outcome: Sendable>(
        hash: [UInt8],
        now: Double,
        _ decide: @escaping @Sendable (RefreshTokenRecord?, RefreshFamily?) throws -> RefreshDecision<Outcome>
    ) async throws -> Outcome {
        try await memory.updateRefreshToken(hash: hash, now: now, decide)
    }

    func revokeRefreshFamily(id: String, at: Double, reason: String) async throws {
        try await memory.revokeRefreshFamily(id: id, at: at, reason: reason)
    }

    func refreshFamily(id: String) async throws -> RefreshFamily? { try await memory.refreshFamily(id: id) }

    func events(after cursor: Int64, limit: Int) async throws -> [TokenEvent] {
        try await memory.events(after: cursor, limit: limit)
    }

    func appendEvent(kind: String, subject: String?, detail: String, at: Double) async throws {
        try await memory.appendEvent(kind: kind, subject: subject, detail: detail, at: at)
    }

    func compact(now: Double) async throws -> Int { try await memory.compact(now: now) }

    func health() async -> StoreHealth { await memory.health() }

    func close() async throws { await memory.close() }
}
