import Atomics
import CoreMetrics
import JOSE

/// Why a token is not active. Introspection answers only `{"active":false}`; the reason is
/// for `/v1/verify`'s RFC 6750 description, logs and metrics.
public enum InactiveReason: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed
    case invalid(String)
    case expired
    case notYetValid
    case revoked
    case keyRevoked

    /// The `error_description` of RFC 6750's `invalid_token`: short and safe.
    public var description: String {
        switch self {
        case .malformed: "malformed"
        case .invalid: "invalid"
        case .expired: "expired"
        case .notYetValid: "not yet valid"
        case .revoked: "revoked"
        case .keyRevoked: "signing key revoked"
        }
    }
}

/// The answer of RFC 7662 introspection.
public enum IntrospectionResult: Sendable {
    case active(VerifiedToken)
    case inactive(InactiveReason)
    /// Memory cannot vouch for revocations right now: answer 503, never `active:false`. One
    /// host never answers this (its memory holds every acknowledged revocation, whatever the
    /// store does); it is for a node whose memory follows a shared store and falls behind
    /// (DESIGN §10, `TOKEND_MAX_STALENESS`).
    case unavailable(String)
}

extension TokenService {
    /// The options every token tokend accepts must meet (RFC 9068 profile).
    var validationOptions: ValidationOptions {
        // At least one second of skew: a token issued right after a sign-out starts at the next
        // whole second (iat is whole seconds), and must be usable at once.
        ValidationOptions(
            leeway: max(configuration.leeway, 1),
            issuer: configuration.issuer,
            audience: configuration.audience,
            requiredType: "at+jwt",
            requireExpiration: true
        )
    }

    /// Introspects an access token: memory only, safe to call on an event loop.
    /// A cached verification is re-checked for expiry and revocation on every hit.
    /// Memory holds every acknowledged revocation, so the answer stands while the store
    /// fails (issue 10, finding 9) — on a node of a fleet, only while it has caught up with the
    /// shared store within `TOKEND_MAX_STALENESS` (else `.unavailable`).
    public func introspect(_ token: String) -> IntrospectionResult {
        // A node of a fleet that has not caught up with the shared store within the bound may
        // miss a revocation made elsewhere: it says so rather than vouch for the token.
        if let refusal = freshness.refusal {
            metrics.introspectUnavailable.increment()
            return .unavailable(refusal)
        }
        let now = clock.now()
        let verified: VerifiedToken
        if let hit = cache.lookup(token) {
            metrics.cacheHit.increment()
            verified = hit
        } else {
            metrics.cacheMiss.increment()
            switch verifyAndExtract(token, now: now) {
            case .success(let fresh):
                verified = fresh
                cache.insert(token, fresh)
            case .failure(let reason):
                metrics.introspectInactive.increment()
                return .inactive(reason)
            }
        }
        if let reason = inactiveReason(verified, now: now) {
            metrics.introspectInactive.increment()
            return .inactive(reason)
        }
        metrics.introspectActive.increment()
        return .active(verified)
    }

    /// The checks that can change after a token was verified: time, revocations, keys. Time
    /// is checked on every call; the revocation and key checks are skipped when this token
    /// passed them at the current keyring snapshot and revocation generation (nothing was
    /// revoked and no key changed since), which keeps a hit O(1) in the number of revocations.
    func inactiveReason(_ token: VerifiedToken, now: Double) -> InactiveReason? {
        let leeway = max(configuration.leeway, 1)
        if now >= token.exp + leeway { return .expired }
        if let nbf = token.nbf, nbf > now + leeway { return .notYetValid }
        // Both read before the checks: a revocation or key change after these reads makes the
        // next hit check again.
        let snapshot = keyring.snapshot
        let generation = revocations.generation
        if token.passedChecks(keyring: snapshot.revision, revocations: generation) { return nil }
        if snapshot.revokedKids.contains(token.kid) { return .keyRevoked }
        if !snapshot.verifyingKids.contains(token.kid) { return .invalid("signing key retired") }
        if revocations.isAccessTokenRevoked(jti: token.jti) { return .revoked }
        if let cutoff = revocations.cutoff(subject: token.subject), token.iat <= cutoff { return .revoked }
        if let family = token.familyID, revocations.isFamilyRevoked(family) { return .revoked }
        token.recordPassedChecks(keyring: snapshot.revision, revocations: generation)
        return nil
    }

    /// Signature, header rules and claims of a token, through the current key set.
    func verifyAndExtract(_ token: String, now: Double) -> Result<VerifiedToken, InactiveReason> {
        let snapshot = keyring.snapshot
        let verified: VerifiedJWT
        do {
            verified = try JWTVerifier(keys: snapshot.keySet, options: validationOptions).verify(token, now: now)
        } catch let error as JOSEError {
            switch error.code {
            case .expired: return .failure(.expired)
            case .notYetValid, .issuedInFuture: return .failure(.notYetValid)
            case .unknownKid where snapshot.revokedKids.contains(JWSKid.peek(token) ?? ""):
                return .failure(.keyRevoked)
            default:
                return .failure(error.category == .malformed ? .malformed : .invalid(error.code.name))
            }
        } catch {
            return .failure(.invalid("\(error)"))
        }
        let claims = verified.claims
        guard let subject = claims.sub, let jti = claims.jti, let exp = claims.exp, let iat = claims.iat else {
            return .failure(.invalid("missing sub, jti, exp or iat"))
        }
        return .success(
            VerifiedToken(
                subject: subject,
                scope: claims.scopeText ?? "",
                clientID: claims.member("client_id")?.stringValue,
                username: claims.member("username")?.stringValue ?? claims.member("userName")?.stringValue,
                issuer: claims.iss ?? configuration.issuer,
                audience: claims.aud,
                jti: jti,
                kid: verified.key.kid ?? "",
                familyID: claims.member("sid")?.stringValue,
                exp: exp.seconds,
                iat: iat.seconds,
                nbf: claims.nbf?.seconds
            )
        )
    }
}

/// Reads a token's `kid` without verifying anything, for error messages only.
enum JWSKid {
    static func peek(_ token: String) -> String? {
        guard let parts = try? JWSParts(compact: token) else { return nil }
        return parts.header["kid"]?.stringValue
    }
}
