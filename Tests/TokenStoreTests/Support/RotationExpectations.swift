import Testing
import TokenStore
import TokenTestSupport

/// Checks what a rotation of fam-1's token `first` to the token `next` (sealed as "sealed
/// successor of NEXT", its access token `jti` expiring an hour after `at`) left in `store`:
/// the spent token naming its successor, the successor active, the family's newest access
/// token, and the `refresh_rotated` event after the family's creation.
func expectRotated(
    _ store: any TokenStore,
    from first: RefreshTokenRecord,
    to next: String,
    at: Double,
    jti: String,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let spent = try await store.peek(first.hash)
    #expect(spent.token?.state == .spent, sourceLocation: sourceLocation)
    #expect(spent.token?.spentAt == at, sourceLocation: sourceLocation)
    #expect(spent.token?.successorHash == StoreFixtures.hash(next), sourceLocation: sourceLocation)
    #expect(spent.token?.successorSealed == Array("sealed successor of \(next)".utf8), sourceLocation: sourceLocation)
    #expect(spent.token?.createdAt == first.createdAt, sourceLocation: sourceLocation)
    #expect(spent.family?.lastAccessJTI == jti, sourceLocation: sourceLocation)
    #expect(spent.family?.lastAccessExpiresAt == at + 3600, sourceLocation: sourceLocation)

    let successor = try await store.peek(StoreFixtures.hash(next))
    #expect(successor.token?.state == .active, sourceLocation: sourceLocation)
    #expect(successor.token?.familyID == first.familyID, sourceLocation: sourceLocation)
    #expect(successor.token?.createdAt == at, sourceLocation: sourceLocation)

    let events = try await store.allEvents()
    #expect(events.map(\.kind) == ["family_created", "refresh_rotated"], sourceLocation: sourceLocation)
    #expect(events.last?.detail == "family=\(first.familyID) access_jti=\(jti)", sourceLocation: sourceLocation)
    #expect(events.last?.subject == "user-1", sourceLocation: sourceLocation)
    #expect(events.last?.at == at, sourceLocation: sourceLocation)
}
