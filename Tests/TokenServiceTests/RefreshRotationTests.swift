import Testing
import TokenService
import TokenStore
import TokenTestSupport

/// `RefreshRotation.decide` as a truth table: the stored token and family in, what the store
/// must change and what the caller answers out. No store, no clock.
@Suite("RefreshRotation.decide")
struct RefreshRotationTests {
    static let now = StoreFixtures.now + 100
    static let grace: Double = 10

    static let family = StoreFixtures.family()  // created at StoreFixtures.now, 30d
    static let active = StoreFixtures.activeToken("first")

    static var candidate: RefreshRotation.Candidate {
        RefreshRotation.Candidate(
            successor: StoreFixtures.activeToken("second", createdAt: now),
            sealed: [1, 2, 3],
            accessJTI: "jti-2",
            accessExpiresAt: now + 3600
        )
    }

    static func spent(at spentAt: Double, sealed: [UInt8]? = [9, 9]) -> RefreshTokenRecord {
        var record = active
        record.state = .spent
        record.spentAt = spentAt
        record.successorHash = StoreFixtures.hash("second")
        record.successorSealed = sealed
        return record
    }

    static func decide(
        _ record: RefreshTokenRecord?,
        family: RefreshFamily? = family,
        now: Double = now,
        cutoff: Double? = nil,
        candidate: RefreshRotation.Candidate? = candidate
    ) -> RefreshDecision<RefreshRotation.Outcome> {
        RefreshRotation.decide(
            record: record,
            family: family,
            now: now,
            grace: grace,
            subjectCutoff: cutoff,
            candidate: candidate
        )
    }

    static func changesNothing(_ decision: RefreshDecision<RefreshRotation.Outcome>) -> Bool {
        if case .none = decision.change { return true }
        return false
    }

    static func refusal(_ decision: RefreshDecision<RefreshRotation.Outcome>) -> String? {
        if case .refused(let reason) = decision.outcome { return reason }
        return nil
    }

    @Test("an unknown token is refused and changes nothing")
    func unknownToken() {
        let decision = Self.decide(nil)
        #expect(Self.refusal(decision) == "unknown refresh token")
        #expect(Self.changesNothing(decision))
        #expect(decision.event == nil)
    }

    @Test("a token whose family is missing is refused")
    func missingFamily() {
        let decision = Self.decide(Self.active, family: nil)
        #expect(Self.refusal(decision) != nil)
        #expect(Self.changesNothing(decision))
    }

    @Test("a revoked family refuses its active and its spent tokens alike")
    func revokedFamily() {
        var family = Self.family
        family.revokedAt = StoreFixtures.now + 50
        family.revokedReason = "logout"
        for record in [Self.active, Self.spent(at: Self.now - 1)] {
            let decision = Self.decide(record, family: family)
            #expect(Self.refusal(decision)?.contains("ended") == true)
            #expect(Self.changesNothing(decision))
        }
    }

    @Test("an expired family is refused from its expiresAt on")
    func expiredFamily() {
        let end = Self.family.expiresAt
        #expect(Self.refusal(Self.decide(Self.active, now: end - 1)) == nil)
        let decision = Self.decide(Self.active, now: end)
        #expect(Self.refusal(decision)?.contains("expired") == true)
        #expect(Self.changesNothing(decision))
    }

    @Test("a family created at or before the subject's cutoff is refused; one created after it is not")
    func cutoff() {
        let created = Self.family.createdAt
        #expect(Self.refusal(Self.decide(Self.active, cutoff: created))?.contains("signed out") == true)
        #expect(Self.refusal(Self.decide(Self.active, cutoff: created + 1))?.contains("signed out") == true)
        #expect(Self.refusal(Self.decide(Self.active, cutoff: created - 1)) == nil)
        #expect(
            RefreshRotation.familyRefusal(Self.family, now: Self.now, subjectCutoff: created - 0.001) == nil
        )
    }

    @Test("the active token with a candidate rotates: it is spent and the candidate becomes its successor")
    func activeRotates() throws {
        let candidate = Self.candidate
        let decision = Self.decide(Self.active, candidate: candidate)
        #expect(decision.outcome == .rotated)
        guard case .rotate(let spent, let successor, let accessJTI, let accessExpiresAt) = decision.change else {
            Issue.record("expected a rotation, got \(decision.change)")
            return
        }
        #expect(spent.hash == Self.active.hash)
        #expect(spent.state == .spent)
        #expect(spent.spentAt == Self.now)
        #expect(spent.successorHash == candidate.successor.hash)
        #expect(spent.successorSealed == candidate.sealed)
        #expect(successor == candidate.successor)
        #expect(accessJTI == "jti-2")
        #expect(accessExpiresAt == Self.now + 3600)
        // The store appends `refresh_rotated` in its one format (family=… access_jti=…).
        #expect(decision.event == nil)
    }

    @Test("the active token without a candidate is refused so the caller retries, and nothing changes")
    func activeWithoutCandidate() {
        let decision = Self.decide(Self.active, candidate: nil)
        #expect(Self.refusal(decision) != nil)
        #expect(Self.changesNothing(decision))
    }

    @Test("a spent token inside the grace window replays its sealed successor and changes nothing")
    func spentInsideGrace() {
        for spentAt in [Self.now, Self.now - 5, Self.now - Self.grace] {
            for candidate in [Self.candidate, nil] {
                let decision = Self.decide(Self.spent(at: spentAt, sealed: [7, 7, 7]), candidate: candidate)
                #expect(decision.outcome == .replay(sealed: [7, 7, 7]))
                #expect(Self.changesNothing(decision))
            }
        }
    }

    @Test("a spent token after the grace window is reuse: the family is revoked with an event")
    func spentAfterGrace() {
        let decision = Self.decide(Self.spent(at: Self.now - Self.grace - 0.5))
        #expect(
            decision.outcome
                == .reuse(familyID: Self.family.id, subject: Self.family.subject, until: Self.family.coverageEnd)
        )
        guard case .revokeFamily(let id, let reason) = decision.change else {
            Issue.record("expected the family to be revoked, got \(decision.change)")
            return
        }
        #expect(id == Self.family.id)
        #expect(reason.contains("reuse"))
        #expect(decision.event?.kind == TokenEvent.Kind.refreshReuse)
        #expect(decision.event?.subject == Self.family.subject)
    }

    @Test("a spent token with no sealed successor is reuse even inside the grace window")
    func spentWithoutSealed() {
        let decision = Self.decide(Self.spent(at: Self.now - 1, sealed: nil))
        #expect(
            decision.outcome
                == .reuse(familyID: Self.family.id, subject: Self.family.subject, until: Self.family.coverageEnd)
        )
    }
}
