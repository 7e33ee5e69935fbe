package import JOSE

/// The events the stores write on their own, shared by every implementation so that they
/// log the same kind, subject and detail for the same change.
///
/// Details hold identifiers (jti, kid, family id) and the caller's reason, never a token,
/// a hash or key material.
package enum StoreEvents {
    /// An event before it has a sequence.
    package struct Draft: Sendable, Equatable {
        package var kind: String
        package var subject: String?
        package var detail: String

        package init(kind: String, subject: String?, detail: String) {
            self.kind = kind
            self.subject = subject
            self.detail = detail
        }
    }

    package static func revokeAccess(jti: String, subject: String?, expiresAt: Double, reason: String) -> Draft {
        Draft(
            kind: TokenEvent.Kind.revokeAccess,
            subject: subject,
            detail: "jti=\(jti) exp=\(time(expiresAt)) reason=\(reason)"
        )
    }

    package static func subjectCutoff(subject: String, notBefore: Double, reason: String) -> Draft {
        Draft(
            kind: TokenEvent.Kind.subjectCutoff,
            subject: subject,
            detail: "not_before=\(time(notBefore)) reason=\(reason)"
        )
    }

    package static func revokeKey(kid: String, reason: String) -> Draft {
        Draft(kind: TokenEvent.Kind.revokeKey, subject: nil, detail: "kid=\(kid) reason=\(reason)")
    }

    package static func familyCreated(_ family: RefreshFamily) -> Draft {
        Draft(
            kind: TokenEvent.Kind.familyCreated,
            subject: family.subject,
            detail: "family=\(family.id) client=\(family.clientID) dialect=\(family.dialect)"
        )
    }

    package static func refreshRotated(familyID: String, subject: String?, accessJTI: String) -> Draft {
        Draft(
            kind: TokenEvent.Kind.refreshRotated,
            subject: subject,
            detail: "family=\(familyID) access_jti=\(accessJTI)"
        )
    }

    package static func familyRevoked(familyID: String, subject: String?, reason: String) -> Draft {
        Draft(kind: TokenEvent.Kind.familyRevoked, subject: subject, detail: "family=\(familyID) reason=\(reason)")
    }

    package static func keyringChanged(_ document: KeyringDocument) -> Draft {
        let current = document.keys.first { $0.state == .current }?.kid ?? "-"
        let next = document.keys.first { $0.state == .next }?.kid ?? "-"
        return Draft(kind: TokenEvent.Kind.keyringChanged, subject: nil, detail: "current=\(current) next=\(next)")
    }

    package static func compacted(_ counts: CompactionCounts) -> Draft {
        Draft(
            kind: TokenEvent.Kind.compacted,
            subject: nil,
            detail: "access=\(counts.accessTokens) families=\(counts.families) tokens=\(counts.refreshTokens) "
                + "events=\(counts.events)"
        )
    }

    package static func writesResumed(after failure: String) -> Draft {
        Draft(kind: TokenEvent.Kind.writesResumed, subject: nil, detail: "after=\(failure)")
    }

    /// The decision's own event, else the default one for its change (nil when the change
    /// wrote nothing).
    package static func forDecision(
        _ event: (kind: String, subject: String?, detail: String)?,
        defaultEvent: () -> Draft?
    ) -> Draft? {
        if let event { return Draft(kind: event.kind, subject: event.subject, detail: event.detail) }
        return defaultEvent()
    }

    /// A time stamp as whole seconds when it is one, else in full.
    package static func time(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

/// What one `compact` removed.
package struct CompactionCounts: Sendable, Equatable {
    package var accessTokens = 0
    package var families = 0
    package var refreshTokens = 0
    package var events = 0

    package init() {}

    package var total: Int { accessTokens + families + refreshTokens + events }
}
