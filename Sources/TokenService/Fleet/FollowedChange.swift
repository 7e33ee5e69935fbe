import TokenStore

/// What a followed event changes in a node's memory (DESIGN §10), read from its kind, subject
/// and detail. A detail is accepted only when writing the same change again gives exactly the
/// same detail (`StoreEvents`), so a reason holding `exp=` or a space cannot mislead the
/// parse; an event that does not pass is `.unreadable`, and the follower reloads the whole
/// revocation state rather than guess.
enum FollowedChange: Sendable, Equatable {
    case accessToken(jti: String, expiresAt: Double)
    case subjectCutoff(subject: String, notBefore: Double)
    /// A family ended; its coverage end is read from the store.
    case family(id: String)
    /// The keyring changed (a rotation, a revoked or retired key): reload it.
    case keyring
    /// A followed kind whose detail this node cannot read.
    case unreadable

    /// The change `event` makes; nil for a kind that changes no other node's memory.
    init?(_ event: TokenEvent) {
        switch event.kind {
        case TokenEvent.Kind.revokeAccess:
            let fields = Self.fields(event.detail, "jti", "exp")
            guard let (values, reason) = fields, let jti = values.first, !jti.isEmpty,
                let expiresAt = Double(values[1]),
                StoreEvents.revokeAccess(jti: jti, subject: event.subject, expiresAt: expiresAt, reason: reason).detail
                    == event.detail
            else {
                self = .unreadable
                return
            }
            self = .accessToken(jti: jti, expiresAt: expiresAt)
        case TokenEvent.Kind.subjectCutoff:
            guard let subject = event.subject, let (values, reason) = Self.fields(event.detail, "not_before"),
                let notBefore = Double(values[0]),
                StoreEvents.subjectCutoff(subject: subject, notBefore: notBefore, reason: reason).detail == event.detail
            else {
                self = .unreadable
                return
            }
            self = .subjectCutoff(subject: subject, notBefore: notBefore)
        case TokenEvent.Kind.familyRevoked:
            guard let (values, reason) = Self.fields(event.detail, "family"), !values[0].isEmpty,
                StoreEvents.familyRevoked(familyID: values[0], subject: event.subject, reason: reason).detail
                    == event.detail
            else {
                self = .unreadable
                return
            }
            self = .family(id: values[0])
        case TokenEvent.Kind.refreshReuse:
            // TokenService's own wording: "family ID revoked: …".
            let words = event.detail.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard words.count == 3, words[0] == "family", !words[1].isEmpty, words[2].hasPrefix("revoked") else {
                self = .unreadable
                return
            }
            self = .family(id: String(words[1]))
        case TokenEvent.Kind.revokeKey, TokenEvent.Kind.keyringChanged:
            self = .keyring
        default:
            return nil
        }
    }

    /// The values of `names`, in order, as `name=value` words at the start of `detail`,
    /// followed by `reason=…`: the values and the reason; nil when the detail has another form.
    private static func fields(_ detail: String, _ names: String...) -> ([String], String)? {
        var rest = Substring(detail)
        var values: [String] = []
        for name in names {
            guard rest.hasPrefix(name + "="), let space = rest.firstIndex(of: " ") else { return nil }
            values.append(String(rest[rest.index(rest.startIndex, offsetBy: name.count + 1)..<space]))
            rest = rest[rest.index(after: space)...]
        }
        guard rest.hasPrefix("reason=") else { return nil }
        return (values, String(rest.dropFirst("reason=".count)))
    }
}
