import CodedErrors
import Logging
import Synchronization
import TokenStore

/// Following the shared store's event log (DESIGN §10, issue 12): what another node revoked,
/// signed out, ended or changed in the keyring is applied to this node's memory, in log order,
/// from this node's own cursor.
extension TokenService {
    /// Behind for longer than this, a node reloads the whole revocation state instead of
    /// reading the events it missed: compaction may have deleted some of them (events are
    /// kept at least an hour, `TOKEND_EVENT_RETENTION`).
    static let resyncAfter: Double = 30 * 60

    /// Reads every followed event the follower's position does not cover yet and applies it
    /// to memory, then records that this node has caught up (as of when the read began).
    /// Applying an event this node wrote itself, or one applied before, changes nothing.
    ///
    /// Throws when the store cannot be read (or the keyring cannot be reloaded after the fleet
    /// changed it): the node is then not caught up, and once that lasts longer than
    /// `TOKEND_MAX_STALENESS` it refuses to check tokens. The next call goes on from where
    /// this one stopped. Returns the number of events applied. One caller at a time.
    @discardableResult
    public func catchUp() async throws -> Int {
        guard let follower else { return 0 }
        let began = freshness.uptime()
        if let staleness = freshness.staleness, staleness > Self.resyncAfter {
            try await resync(follower)
        }
        var applied = 0
        // Where the next page starts. It is the position, except on a standby, where the
        // position cannot pass transactions at or above the snapshot's xmin: then the pages
        // go on past the events read (applied, and read again next time), or a full page
        // above a held-back xmin would be read over and over.
        var scan = follower.position
        while true {
            let position = follower.position
            let read = try await follower.store.followedEvents(after: scan, limit: follower.pageSize)
            for item in read.events { try await apply(item.event, follower) }
            // A key change is in force only once the keyring is reloaded: the position, which
            // the heartbeat publishes and `--wait` trusts, moves past it only then.
            if follower.state.withLock({ $0.keyringPending }) {
                try await followKeyring()
                follower.state.withLock { $0.keyringPending = false }
            }
            applied += read.events.count
            let advanced = position.advanced(by: read)
            follower.state.withLock { state in
                state.position = advanced
                state.applied += UInt64(read.events.count)
            }
            if read.complete { break }
            scan = FollowPosition(
                high: max(advanced.high, read.events.last?.position ?? scan.high),
                pending: advanced.pending
            )
        }
        freshness.caughtUp(at: began)
        return applied
    }

    /// Applies one followed event to memory.
    func apply(_ event: TokenEvent, _ follower: EventFollower) async throws {
        guard let change = FollowedChange(event) else { return }
        logger.debug(
            "applying a change from the fleet",
            metadata: ["kind": "\(event.kind)", "sequence": "\(event.sequence)"]
        )
        switch change {
        case .accessToken(let jti, let expiresAt):
            if !revocations.isAccessTokenRevoked(jti: jti) {
                revocations.revokeAccessToken(jti: jti, expiresAt: expiresAt)
            }
        case .subjectCutoff(let subject, let notBefore):
            if (revocations.cutoff(subject: subject) ?? -.infinity) < notBefore {
                revocations.setCutoff(subject: subject, notBefore: notBefore)
            }
        case .family(let id):
            if revocations.isFamilyRevoked(id) { return }
            // The family's end is not in the event: read it (it is final once the family ended).
            guard let family = try await store.refreshFamily(id: id), family.revokedAt != nil else {
                // Compacted (every token it covered has expired) or never ended: nothing to hold.
                return
            }
            revocations.revokeFamily(id: id, until: family.coverageEnd)
        case .keyring:
            follower.state.withLock { $0.keyringPending = true }
        case .unreadable:
            logger.warning(
                "a change from the fleet has a detail this node cannot read; reloading every revocation",
                metadata: ["kind": "\(event.kind)", "sequence": "\(event.sequence)"]
            )
            merge(try await store.loadRevocations(now: clock.now() - configuration.leeway))
            follower.state.withLock { $0.keyringPending = true }
        }
    }

    /// Reloads the whole revocation state and follows on from its snapshot.
    func resync(_ follower: EventFollower) async throws {
        let (snapshot, position) = try await follower.store.loadRevocationsToFollow(
            now: clock.now() - configuration.leeway
        )
        merge(snapshot)
        follower.state.withLock { state in
            // The snapshot holds everything committed before it, pending transactions included.
            if position.high > state.position.high { state.position = position }
            state.keyringPending = true
        }
        logger.notice("reloaded every revocation from the store after a long time behind the fleet")
    }

    /// Adds what `snapshot` holds and memory does not (memory only ever gains revocations here).
    func merge(_ snapshot: RevocationSnapshot) {
        for (jti, expiresAt) in snapshot.revokedAccessTokens where !revocations.isAccessTokenRevoked(jti: jti) {
            revocations.revokeAccessToken(jti: jti, expiresAt: expiresAt)
        }
        for (subject, notBefore) in snapshot.subjectCutoffs
        where (revocations.cutoff(subject: subject) ?? -.infinity) < notBefore {
            revocations.setCutoff(subject: subject, notBefore: notBefore)
        }
        for (id, end) in snapshot.revokedFamilies where !revocations.isFamilyRevoked(id) {
            revocations.revokeFamily(id: id, until: end)
        }
    }

    /// Reloads the keyring another node changed; the verified-token cache answers nothing
    /// from before. A keyring this node cannot load (its KEK does not open a new key) keeps
    /// the node behind, so it refuses once the bound passes rather than keep accepting a key
    /// the fleet revoked.
    func followKeyring() async throws {
        do {
            try await keyring.reload()
        } catch {
            if (error as? TokenStoreError)?.code == .unavailable { throw error }
            let reason = "\(error)"
            let previous = keyReloadFailure.withLock { failure -> String? in
                defer { failure = reason }
                return failure
            }
            if previous != reason {
                logger.error(
                    "the fleet changed the keyring and this node cannot load it; it stays behind the fleet",
                    metadata: ["reason": "\(reason)"]
                )
            }
            throw error
        }
        keyReloadFailure.withLock { $0 = nil }
        cache.removeAll()
        metrics.updateKeyStates(keyring.snapshot.document)
    }

    /// Logs when this node falls behind the fleet beyond the bound, and when it has caught up
    /// again, once each; returns whether it is behind.
    @discardableResult
    public func noteFreshness() -> Bool {
        let refusal = freshness.refusal
        let wasBehind = fleetBehind.withLock { behind -> Bool in
            defer { behind = refusal != nil }
            return behind
        }
        if let refusal, !wasBehind {
            logger.error("this node is behind the fleet; token checks answer 503", metadata: ["reason": "\(refusal)"])
        } else if refusal == nil, wasBehind {
            logger.notice("caught up with the fleet; token checks are answered again")
        }
        return refusal != nil
    }
}
