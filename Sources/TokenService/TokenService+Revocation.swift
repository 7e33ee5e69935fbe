import CodedErrors
import CoreMetrics
public import JOSE
import Logging
import TokenCrypto
import TokenStore

extension TokenService {
    /// RFC 7009 revocation. An access token of ours is denied until its exp; a refresh
    /// token ends its family (and so the family's access tokens). Unknown, foreign and
    /// expired tokens are accepted silently, as §2.2 requires. Durable before returning.
    /// The hint is not needed to tell the kinds apart (a JWT has two dots, a refresh token
    /// none), as RFC 7009 §2.1 allows.
    public func revoke(token: String, hint: String?) async throws {
        let now = clock.now()
        let looksLikeJWT = token.utf8.lazy.filter { $0 == UInt8(ascii: ".") }.count == 2
        if looksLikeJWT {
            try await revokeAccessToken(token, now: now)
            return
        }
        guard RefreshSecret.plausible(token) else { return }
        let hash = RefreshSecret.key(of: token)
        let family: RefreshFamily?
        do {
            family = try await store.refreshToken(hash: hash).family
        } catch {
            throw noteStoreFailure(error, during: "revoke: read refresh token")
        }
        guard let family, family.revokedAt == nil else { return }
        try await endFamily(family.id, subject: family.subject, reason: "refresh token revoked", now: now)
    }

    func revokeAccessToken(_ token: String, now: Double) async throws {
        // Verify it is ours; expired tokens need nothing (they cannot verify any more).
        let options = ValidationOptions(
            leeway: configuration.leeway,
            issuer: configuration.issuer,
            requiredType: "at+jwt",
            requireExpiration: true
        )
        guard let verified = try? JWTVerifier(keys: keyring.snapshot.keySet, options: options).verify(token, now: now),
            let jti = verified.claims.jti, let exp = verified.claims.exp
        else { return }
        if revocations.isAccessTokenRevoked(jti: jti) { return }
        do {
            try await store.revokeAccessToken(
                jti: jti,
                subject: verified.claims.sub,
                expiresAt: exp.seconds + configuration.leeway,
                at: now,
                reason: "revoked by request"
            )
        } catch {
            throw noteStoreFailure(error, during: "revoke access token")
        }
        revocations.revokeAccessToken(jti: jti, expiresAt: exp.seconds + configuration.leeway)
        metrics.revokedAccess.increment()
        logger.info("access token revoked", metadata: ["jti": "\(jti)", "sub": "\(verified.claims.sub ?? "-")"])
    }

    func endFamily(_ id: String, subject: String, reason: String, now: Double) async throws {
        do {
            try await store.revokeRefreshFamily(id: id, at: now, reason: reason)
        } catch {
            throw noteStoreFailure(error, during: "revoke refresh family")
        }
        // Read once the family has ended: no rotation can move its newest access token any
        // more. Memory keeps it until then; if the read fails, until the next start (which
        // loads the exact end).
        let end = (try? await store.refreshFamily(id: id))?.coverageEnd ?? .infinity
        revocations.revokeFamily(id: id, until: end)
        metrics.revokedFamily.increment()
        logger.info("refresh family ended", metadata: ["family": "\(id)", "sub": "\(subject)", "reason": "\(reason)"])
    }

    /// Logout everywhere: every token of `subject` issued until now stops working, access
    /// and refresh alike. Durable before returning.
    public func logout(subject: String, reason: String = "logout") async throws {
        // Begun before its time is read: every token whose iat was fixed before is covered,
        // every issuance that started before and is not issued yet is refused.
        let now = revocations.beginCutoff(subject: subject, now: clock.now())
        do {
            try await store.setSubjectCutoff(subject: subject, notBefore: now, reason: reason)
        } catch {
            revocations.finishCutoff(subject: subject, notBefore: nil)
            throw noteStoreFailure(error, during: "subject cutoff")
        }
        revocations.finishCutoff(subject: subject, notBefore: now)
        metrics.revokedSubject.increment()
        logger.info("subject signed out everywhere", metadata: ["sub": "\(subject)", "reason": "\(reason)"])
    }
}

extension TokenService {
    /// The keyring as a list, newest first, for `GET /admin/keys`.
    public var keyList: [KeyringDocument.Entry] {
        keyring.snapshot.document.keys.sorted { $0.created > $1.created }
    }

    /// When rotating without force becomes possible, judged as `rotateKeys` judges it: the next
    /// key's JWKS max-age, counted on a fleet from the moment every live node published it.
    /// `waitingFor` names the live nodes that do not publish it yet (then `safeAt` is nil).
    /// Nil without a next key. When the fleet's heartbeats cannot be read, the node's own
    /// count, marked `fleetUnknown`.
    public func rotationReadiness() async -> (safeAt: Double?, waitingFor: [String], fleetUnknown: Bool)? {
        let lifecycle = KeyLifecycle(entries: keyring.snapshot.document.keys)
        guard let nextKid = lifecycle.next?.kid else { return nil }
        let maxAge = configuration.jwksMaxAge
        do {
            let publication = try await keyring.fleetPublication()
            let safeAt = lifecycle.safeRotationTime(jwksMaxAge: maxAge, fleet: publication, now: clock.now())
            return (safeAt, safeAt == nil ? publication?.lacking(nextKid) ?? [] : [], false)
        } catch {
            return (lifecycle.safeRotationTime(jwksMaxAge: maxAge), [], true)
        }
    }

    /// Rotates next → current; refused while the next key is younger than the JWKS max-age
    /// unless forced.
    public func rotateKeys(force: Bool) async throws -> KeyLifecycle.Change {
        let change: KeyLifecycle.Change
        do {
            change = try await keyring.rotate(force: force)
        } catch {
            logKeyChangeFailure(error, "key rotation", metadata: ["forced": "\(force)"])
            throw error
        }
        metrics.updateKeyStates(keyring.snapshot.document)
        try? await store.appendEvent(
            kind: "key_rotated",
            subject: nil,
            detail:
                "current \(change.promoted ?? "-"), previous \(change.demoted ?? "-"), next \(change.added.first ?? "-")\(force ? " (forced)" : "")",
            at: clock.now()
        )
        logger.notice(
            "signing key rotated",
            metadata: [
                "current_kid": "\(change.promoted ?? "-")", "previous_kid": "\(change.demoted ?? "-")",
                "forced": "\(force)",
            ]
        )
        return change
    }

    /// Emergency revocation of a key: every token it signed is refused at once.
    public func revokeKey(kid: String) async throws -> KeyLifecycle.Change {
        let change: KeyLifecycle.Change
        do {
            change = try await keyring.revoke(kid: kid)
        } catch {
            logKeyChangeFailure(error, "key revocation", metadata: ["kid": "\(kid)"])
            throw error
        }
        do {
            try await store.revokeKey(kid: kid, at: clock.now(), reason: "revoked by operator")
        } catch {
            throw noteStoreFailure(error, during: "revoke key")
        }
        cache.removeAll()
        metrics.revokedKey.increment()
        metrics.updateKeyStates(keyring.snapshot.document)
        logger.warning(
            "signing key revoked",
            metadata: ["kid": "\(kid)", "new_current_kid": "\(change.promoted ?? "unchanged")"]
        )
        return change
    }

    /// A refused key change (too early, an unknown kid) is the operator's to fix and logged
    /// as a warning; any other failure (the key directory cannot be written) is an error.
    private func logKeyChangeFailure(_ error: any Error, _ what: String, metadata: Logger.Metadata) {
        var metadata = metadata
        metadata["reason"] = "\(error)"
        if let refusal = error as? ServiceError, refusal.code == .rotationTooEarly || refusal.code == .notFound {
            logger.warning("\(what) refused", metadata: metadata)
        } else {
            logger.error("\(what) failed", metadata: metadata)
        }
    }

    /// Re-reads the key directory (SIGHUP).
    public func reloadKeys() async throws {
        do { try await keyring.reload() } catch {
            keyReloadFailure.withLock { $0 = "\(error)" }
            throw error
        }
        keyReloadFailure.withLock { $0 = nil }
        cache.removeAll()
        metrics.updateKeyStates(keyring.snapshot.document)
        try? await store.appendEvent(
            kind: "keys_reloaded",
            subject: nil,
            detail: "keyring reloaded",
            at: clock.now()
        )
    }
}
