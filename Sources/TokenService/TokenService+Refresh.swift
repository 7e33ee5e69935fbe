import CodedErrors
import CoreMetrics
public import JOSE
import Logging
import TokenCrypto
public import TokenStore

extension TokenService {
    /// The refresh grant (RFC 6749 §6) with rotation, replay inside the grace window and
    /// family revocation on reuse. `scope`, when given, must be a subset of the family's.
    public func refresh(
        token: String,
        scope: [String]? = nil,
        clientID: String? = nil
    ) async -> Result<IssuedTokens, OAuthError> {
        guard RefreshSecret.plausible(token) else { return .failure(.invalidGrant("unknown refresh token")) }
        let hash = RefreshSecret.key(of: token)
        let now = clock.now()
        do {
            // Minting needs the family: from memory when this node issued or rotated to the
            // token, else read first (a snapshot, off the writer), where a spent token needs
            // no candidate. The transaction below decides again on the rows it reads.
            let family: RefreshFamily
            let mayBeActive: Bool
            if let known = refreshFamilies.family(of: hash) {
                (family, mayBeActive) = (known, true)
            } else {
                let stored = try await store.refreshToken(hash: hash)
                guard let record = stored.token, let found = stored.family else {
                    return .failure(.invalidGrant("unknown refresh token"))
                }
                (family, mayBeActive) = (found, record.state == .active)
            }
            // The cutoff this refresh is decided against; minting refuses if it moves before.
            let ticket = revocations.ticket(subject: family.subject)
            let cutoff = ticket.cutoff
            if let refusal = RefreshRotation.familyRefusal(family, now: now, subjectCutoff: cutoff) {
                return .failure(.invalidGrant(refusal))
            }
            if let clientID, clientID != family.clientID {
                return .failure(.invalidGrant("the refresh token was issued to another client"))
            }
            let granted = family.scope.split(separator: " ").map(String.init)
            if let scope, !Set(scope).isSubset(of: Set(granted)) {
                return .failure(.invalidScope("the requested scope exceeds the scope granted to this refresh token"))
            }
            var candidate: RefreshRotation.Candidate?
            var minted: IssuedTokens?
            if mayBeActive {
                // A dialect's family gets its dialect's lifetime and claims, and may refuse
                // (an inactive account).
                var policy = configuration.accessPolicy
                var extraClaims = JSONObject()
                if family.dialect != "native", let customizer = refreshCustomizer {
                    switch await customizer.refreshGrant(for: family) {
                    case .success(let grant):
                        policy = grant.policy
                        extraClaims = grant.claims
                    case .failure(let error):
                        return .failure(error)
                    }
                }
                let request = IssueRequest(
                    subject: family.subject,
                    scope: scope ?? granted,
                    clientID: family.clientID,
                    extraClaims: extraClaims,
                    dialect: family.dialect
                )
                var tokens: IssuedTokens
                do {
                    tokens = try mintAccess(request, policy: policy, familyID: family.id, now: now, ticket: ticket)
                } catch let error as ServiceError where error.code == .signedOut {
                    return .failure(.invalidGrant("the user has been signed out"))
                }
                let next = RefreshSecret.generate(inIssueOrder: store.keysRefreshTokensInIssueOrder, now: now)
                tokens.refreshToken = next.text
                let sealed = try AES256GCM.seal(
                    JSONValue.object(SealedSuccessor.encode(tokens)).compactBytes,
                    key: RefreshSecret.sealingKey(token)
                )
                candidate = RefreshRotation.Candidate(
                    successor: RefreshTokenRecord(hash: next.hash, familyID: family.id, state: .active, createdAt: now),
                    sealed: sealed,
                    accessJTI: tokens.jti,
                    accessExpiresAt: tokens.expiresAt
                )
                minted = tokens
            }
            let grace = configuration.refreshGrace
            let chosen = candidate
            // The common case in one step where the store has one (an active token of an open
            // family); anything else is decided on the rows, in the store's transaction.
            let outcome: RefreshRotation.Outcome
            if let candidate,
                try await store.rotateIfCurrent(
                    ConditionalRotation(
                        hash: hash,
                        familyID: family.id,
                        subject: family.subject,
                        subjectCutoff: cutoff,
                        successor: candidate.successor,
                        successorSealed: candidate.sealed,
                        accessJTI: candidate.accessJTI,
                        accessExpiresAt: candidate.accessExpiresAt,
                        now: now
                    )
                )
            {
                outcome = .rotated
            } else {
                outcome = try await store.updateRefreshToken(hash: hash, now: now) { record, family in
                    RefreshRotation.decide(
                        record: record,
                        family: family,
                        now: now,
                        grace: grace,
                        subjectCutoff: cutoff,
                        candidate: chosen
                    )
                }
            }
            if case .rotated = outcome, let successor = chosen?.successor.hash {
                refreshFamilies.remember(successor, family: family, replacing: hash)
            } else {
                refreshFamilies.forget(hash)
            }
            switch outcome {
            case .rotated:
                metrics.refreshRotated.increment()
                return .success(minted!)
            case .replay(let sealed):
                guard let plain = try? AES256GCM.open(sealed, key: RefreshSecret.sealingKey(token)),
                    let tokens = SealedSuccessor.decode(plain, now: now)
                else { return .failure(.invalidGrant("unknown refresh token")) }
                // Only the just-spent token may replay: once its successor has itself been
                // used, the family's newest access token is another one, and this is reuse.
                let current = try await store.refreshFamily(id: family.id)
                guard let current, current.revokedAt == nil, current.lastAccessJTI == tokens.jti else {
                    try await endFamily(family.id, subject: family.subject, reason: "refresh token reuse", now: now)
                    metrics.reuseDetected.increment()
                    logger.warning(
                        "refresh token reuse: session revoked",
                        metadata: [
                            "family": "\(family.id)", "sub": "\(family.subject)",
                            "reason": "a superseded refresh token was used again",
                        ]
                    )
                    return .failure(.invalidGrant("refresh token reuse detected; the session has been revoked"))
                }
                return .success(tokens)
            case .reuse(let familyID, let subject, let until):
                revocations.revokeFamily(id: familyID, until: until)
                metrics.reuseDetected.increment()
                metrics.revokedFamily.increment()
                logger.warning(
                    "refresh token reuse: session revoked",
                    metadata: [
                        "family": "\(familyID)", "sub": "\(subject)", "reason": "a spent refresh token was used again",
                    ]
                )
                return .failure(.invalidGrant("refresh token reuse detected; the session has been revoked"))
            case .refused(let reason):
                return .failure(.invalidGrant(reason))
            }
        } catch let error as ServiceError {
            return .failure(.temporarilyUnavailable(error.reason))
        } catch {
            let failure = noteStoreFailure(error, during: "refresh")
            return .failure(.temporarilyUnavailable(failure.reason))
        }
    }
}

/// Lets the account layer shape refreshes of the families it created: their dialect's
/// lifetime and claims, and a refusal when the account may no longer sign in.
public protocol RefreshCustomizer: Sendable {
    func refreshGrant(
        for family: RefreshFamily
    ) async -> Result<(policy: LifetimePolicy, claims: JSONObject), OAuthError>
}

/// The successor pair as sealed for replay.
enum SealedSuccessor {
    static func encode(_ tokens: IssuedTokens) -> JSONObject {
        var object = JSONObject()
        object["a"] = .string(tokens.accessToken)
        object["r"] = tokens.refreshToken.map { .string($0) } ?? .null
        object["s"] = .string(tokens.scope)
        object["j"] = .string(tokens.jti)
        object["x"] = .number(JSONNumber(Int64(tokens.expiresAt)))
        object["f"] = tokens.familyID.map { .string($0) } ?? .null
        object["i"] = .number(JSONNumber(Int64(tokens.issuedAt)))
        return object
    }

    static func decode(_ bytes: [UInt8], now: Double) -> IssuedTokens? {
        guard let object = (try? JSONParser().parse(bytes))?.objectValue, let access = object["a"]?.stringValue,
            let scope = object["s"]?.stringValue, let jti = object["j"]?.stringValue,
            let exp = object["x"]?.numberValue?.doubleValue
        else { return nil }
        return IssuedTokens(
            accessToken: access,
            tokenType: "Bearer",
            expiresIn: max(0, Int(exp - now)),
            scope: scope,
            refreshToken: object["r"]?.stringValue,
            jti: jti,
            expiresAt: exp,
            familyID: object["f"]?.stringValue,
            issuedAt: object["i"]?.numberValue?.doubleValue ?? 0
        )
    }
}
