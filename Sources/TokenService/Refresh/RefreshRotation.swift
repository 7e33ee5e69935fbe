public import TokenStore

/// The refresh-token rules of DESIGN §3 (RFC 9700 §4.14) as a pure decision over the stored
/// token and family. `TokenStore.updateRefreshToken` runs it inside one transaction, so of N
/// concurrent uses exactly one rotates and the others see the token it spent.
public enum RefreshRotation {
    /// What happened to a presented refresh token.
    public enum Outcome: Sendable, Equatable {
        /// The token was the family's newest: it is spent and `successor` replaces it.
        case rotated
        /// A retry of the just-spent token inside the grace window: the same successor again,
        /// sealed under the presented token.
        case replay(sealed: [UInt8])
        /// A spent token used again: the family is revoked; `until` is the end of what it
        /// covers, read in the transaction that ended it.
        case reuse(familyID: String, subject: String, until: Double)
        /// Unknown, ended, expired or signed-out: `invalid_grant` with this description.
        case refused(String)
    }

    /// A successor minted before the decision, used only if the decision is to rotate.
    public struct Candidate: Sendable {
        public var successor: RefreshTokenRecord
        public var sealed: [UInt8]
        public var accessJTI: String
        public var accessExpiresAt: Double

        public init(successor: RefreshTokenRecord, sealed: [UInt8], accessJTI: String, accessExpiresAt: Double) {
            self.successor = successor
            self.sealed = sealed
            self.accessJTI = accessJTI
            self.accessExpiresAt = accessExpiresAt
        }
    }

    /// Reasons a family can no longer refresh, whatever the token's state.
    public static func familyRefusal(_ family: RefreshFamily?, now: Double, subjectCutoff: Double?) -> String? {
        guard let family else { return "unknown refresh token" }
        // Before the end: a sign-out also ends the families it covers in the store.
        if let cutoff = subjectCutoff, family.createdAt <= cutoff { return "the user has been signed out" }
        if family.revokedAt != nil { return "the session of this refresh token has ended" }
        if now >= family.expiresAt { return "the refresh token has expired" }
        return nil
    }

    /// Decides, given the stored state. `candidate` is nil when the caller saw the token
    /// spent and minted nothing; an active token then refuses so the caller retries.
    public static func decide(
        record: RefreshTokenRecord?,
        family: RefreshFamily?,
        now: Double,
        grace: Double,
        subjectCutoff: Double?,
        candidate: Candidate?
    ) -> RefreshDecision<Outcome> {
        guard let record else { return RefreshDecision(change: .none, outcome: .refused("unknown refresh token")) }
        if let refusal = familyRefusal(family, now: now, subjectCutoff: subjectCutoff) {
            return RefreshDecision(change: .none, outcome: .refused(refusal))
        }
        let family = family!
        switch record.state {
        case .active:
            guard let candidate else {
                return RefreshDecision(change: .none, outcome: .refused("retry the request"))
            }
            var spent = record
            spent.state = .spent
            spent.spentAt = now
            spent.successorHash = candidate.successor.hash
            spent.successorSealed = candidate.sealed
            return RefreshDecision(
                change: .rotate(
                    spent: spent,
                    successor: candidate.successor,
                    accessJTI: candidate.accessJTI,
                    accessExpiresAt: candidate.accessExpiresAt
                ),
                // No event of its own: the store appends `refresh_rotated` with the family's
                // subject, in the format of every rotation (`family=… access_jti=…`).
                outcome: .rotated
            )
        case .spent:
            if let spentAt = record.spentAt, now - spentAt <= grace, let sealed = record.successorSealed {
                return RefreshDecision(change: .none, outcome: .replay(sealed: sealed))
            }
            return RefreshDecision(
                change: .revokeFamily(id: family.id, reason: "refresh token reuse"),
                outcome: .reuse(familyID: family.id, subject: family.subject, until: family.coverageEnd),
                event: (
                    "refresh_reuse", family.subject, "family \(family.id) revoked: a spent refresh token was used again"
                )
            )
        }
    }
}
