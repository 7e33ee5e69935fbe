internal import COpenSSL
import Synchronization

/// An EC, Ed25519 or RSA key bound to one JWS algorithm, with the sign and verify
/// operations of that algorithm. Shared by `SigningKey` and `VerifyingKey`.
final class AsymmetricKey: Sendable {
    let algorithm: SignatureAlgorithm
    let key: EVPKey
    /// For ECDSA and RSA: an `EVP_PKEY_CTX` initialised for verification with this key, and an
    /// `EVP_MD_CTX` to hash the signing input with, taken and given back together.
    private let verifiers = ContextPool<DigestContexts> {
        EVP_PKEY_CTX_free($0.pkey)
        EVP_MD_CTX_free($0.hash)
    }
    /// For ECDSA: an `EVP_PKEY_CTX` initialised for signing with this key, and an `EVP_MD_CTX`
    /// to hash the signing input with.
    private let ecdsaSigners = ContextPool<DigestContexts> {
        EVP_PKEY_CTX_free($0.pkey)
        EVP_MD_CTX_free($0.hash)
    }
    /// `EVP_MD_CTX`s initialised for Ed25519 verification with this key.
    private let edDSAVerifiers = ContextPool<OpaquePointer> { EVP_MD_CTX_free($0) }

    /// An `EVP_PKEY_CTX` initialised for one operation with this key (verify or sign), and an
    /// `EVP_MD_CTX` set up for the algorithm's digest, pooled together.
    struct DigestContexts {
        let pkey: OpaquePointer
        let hash: OpaquePointer

        /// Hashes `message` into `out` (room for the digest) with `hash`, re-initialised for
        /// the digest it was set up with (a NULL type skips OpenSSL's per-call digest and
        /// ENGINE lookup); the digest's length, or nil when OpenSSL fails.
        func digest(_ message: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) -> Int? {
            var length: UInt32 = 0
            guard EVP_DigestInit_ex2(hash, nil, nil) == 1,
                EVP_DigestUpdate(hash, message.baseAddress, message.count) == 1,
                EVP_DigestFinal_ex(hash, out, &length) == 1
            else {
                OpenSSL.clearErrors()
                return nil
            }
            return Int(length)
        }
    }
    /// ES256/ES384 keys that sign: nonces computed ahead (`ECDSANonces`), made at the first
    /// signature, so that a key that only verifies, or never signs, has none.
    private let nonces = Mutex<NonceState>(.unmade)

    enum NonceState {
        case unmade
        case made(ECDSANonces?)
    }

    /// Cleared if OpenSSL refuses to reuse an Ed25519 verify context.
    private let reuseEdDSAContexts = Atomic<Bool>(true)

    /// ES256: whether this key verifies with a precomputed table of its multiples
    /// (`P256FixedKeyVerifier`). The table costs tens of milliseconds and ~150 KB, so it is
    /// built (off the calling thread, one build at a time, at most
    /// `P256FixedKeyVerifier.maxTables` in the process) only once the key has verified
    /// `fixedKeyThreshold` valid signatures: a daemon's signing keys get it; a one-off check,
    /// or a stream of forged tokens, does not.
    private let fixedKey = Mutex<FixedKeyState>(.counting(0))
    static let fixedKeyThreshold = 256

    enum FixedKeyState {
        case counting(Int)
        case building
        case ready(P256FixedKeyVerifier)
        case unavailable
    }

    /// Binds `key` to `algorithm`, inferring the algorithm from the key when nil.
    init(key: EVPKey, algorithm requested: SignatureAlgorithm?) throws {
        let algorithm = try AsymmetricKey.algorithm(for: key, requested: requested)
        self.algorithm = algorithm
        self.key = key
    }

    static func algorithm(for key: EVPKey, requested: SignatureAlgorithm?) throws -> SignatureAlgorithm {
        let inferred: SignatureAlgorithm
        switch key.typeName {
        case "EC":
            switch key.groupName {
            case "prime256v1", "P-256", "secp256r1": inferred = .es256
            case "secp384r1", "P-384": inferred = .es384
            case let other:
                throw CryptoError.algorithmMismatch(
                    "EC curve \(other ?? "unknown") is not supported; use P-256 (ES256) or P-384 (ES384)"
                )
            }
        case "ED25519": inferred = .edDSA
        case "RSA", "RSA-PSS":
            guard key.bits >= 2048 else {
                throw CryptoError.weakKey("RSA keys must be at least 2048 bits, got \(key.bits)")
            }
            inferred = requested == .ps256 || key.typeName == "RSA-PSS" ? .ps256 : .rs256
        case let other:
            throw CryptoError.algorithmMismatch(
                "\(other) keys are not supported; use EC P-256/P-384, Ed25519 or RSA ≥ 2048"
            )
        }
        if let requested, requested != inferred {
            throw CryptoError.algorithmMismatch("a \(describe(key)) key cannot be used for \(requested)")
        }
        return inferred
    }

    static func describe(_ key: EVPKey) -> String {
        switch key.typeName {
        case "EC":
            switch key.groupName {
            case "prime256v1", "P-256", "secp256r1": "EC P-256"
            case "secp384r1", "P-384": "EC P-384"
            case let other: "EC \(other ?? "unknown curve")"
            }
        case "RSA", "RSA-PSS": "RSA \(key.bits)-bit"
        case "ED25519": "Ed25519"
        default: key.typeName
        }
    }

    private var digest: FetchedDigest? {
        switch algorithm {
        case .es384: .sha384
        case .edDSA: nil
        default: .sha256
        }
    }

    // MARK: Signing

    func sign(_ message: UnsafeRawBufferPointer) throws -> [UInt8] {
        if algorithm == .es256 || algorithm == .es384, let signature = signECDSA(message) { return signature }
        guard let md = EVP_MD_CTX_new() else { throw CryptoError.openssl("cannot allocate a digest context") }
        defer { EVP_MD_CTX_free(md) }
        var pctx: OpaquePointer?
        guard EVP_DigestSignInit_ex(md, &pctx, digest?.name, nil, nil, key.pointer, nil) == 1 else {
            throw CryptoError.openssl("cannot start \(algorithm) signing")
        }
        if algorithm == .ps256 {
            guard EVP_PKEY_CTX_set_rsa_padding(pctx, tokend_rsa_pss_padding()) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, tokend_rsa_pss_saltlen_digest()) == 1
            else { throw CryptoError.openssl("cannot set RSA-PSS padding") }
        } else if algorithm == .rs256 {
            guard EVP_PKEY_CTX_set_rsa_padding(pctx, tokend_rsa_pkcs1_padding()) == 1 else {
                throw CryptoError.openssl("cannot set PKCS#1 v1.5 padding")
            }
        }
        var length = 0
        let base = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard EVP_DigestSign(md, nil, &length, base, message.count) == 1 else {
            throw CryptoError.openssl("cannot size the \(algorithm) signature")
        }
        var signature = [UInt8](repeating: 0, count: length)
        let ok = signature.withUnsafeMutableBufferPointer {
            EVP_DigestSign(md, $0.baseAddress, &length, base, message.count)
        }
        guard ok == 1 else {
            if key.hasPrivate == false { throw CryptoError.notPrivate("signing needs the private key") }
            throw CryptoError.openssl("\(algorithm) signing failed")
        }
        signature.removeLast(signature.count - length)
        if algorithm == .es256 || algorithm == .es384 {
            return try ECDSASignature.raw(fromDER: signature, algorithm: algorithm)
        }
        return signature
    }

    /// ES256/ES384 on the hot path of minting: hashes `message` with a pooled digest context,
    /// then signs the digest with a nonce computed ahead (`ECDSANonces`) when one is ready, else
    /// with a pooled `EVP_PKEY_CTX` initialised once for this key (OpenSSL allows
    /// `EVP_PKEY_sign` again on a context after one `EVP_PKEY_sign_init`), so a signature skips
    /// the per-call algorithm fetch and context set-up of `EVP_DigestSignInit_ex`. Nil when
    /// OpenSSL fails here: the caller signs the one-shot way, which reports the error.
    private func signECDSA(_ message: UnsafeRawBufferPointer) -> [UInt8]? {
        let md = digest!
        let half = algorithm == .es384 ? 48 : 32
        let precomputed = ecdsaNonces(half: half)
        return withPooledContexts(ecdsaSigners, make: makeECDSASigner(md)) { contexts in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64 + 128) { buffer -> [UInt8]? in
                let hashed = buffer.baseAddress!
                let signed = hashed + 64
                guard let length = contexts.digest(message, into: hashed) else { return nil }
                if let precomputed, precomputed.sign(digest: hashed, length: length, into: signed) {
                    return Array(UnsafeBufferPointer(start: signed, count: 2 * half))
                }
                var signedLength = 128
                guard EVP_PKEY_sign(contexts.pkey, signed, &signedLength, hashed, length) == 1 else {
                    OpenSSL.clearErrors()
                    return nil
                }
                let der = Array(UnsafeBufferPointer(start: signed, count: signedLength))
                return try? ECDSASignature.raw(fromDER: der, algorithm: algorithm)
            }
        }
    }

    /// This key's nonce pool, made at its first signature; nil when OpenSSL cannot give one.
    private func ecdsaNonces(half: Int) -> ECDSANonces? {
        nonces.withLock { state in
            if case .made(let made) = state { return made }
            let made = ECDSANonces(key, half: half)
            state = .made(made)
            return made
        }
    }

    private func makeECDSASigner(_ md: FetchedDigest) -> DigestContexts? {
        guard let sign = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else {
            OpenSSL.clearErrors()
            return nil
        }
        guard EVP_PKEY_sign_init(sign) == 1, EVP_PKEY_CTX_set_signature_md(sign, md.pointer) == 1 else {
            OpenSSL.clearErrors()
            EVP_PKEY_CTX_free(sign)
            return nil
        }
        return pairWithDigest(sign, md)
    }

    // MARK: Verification

    /// True when `signature` is a valid JWS signature of `message` under this key.
    /// Throws only for a signature that is not even in the algorithm's encoding.
    func verify(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) throws -> Bool {
        switch algorithm {
        case .edDSA:
            guard signature.count == 64 else {
                throw CryptoError.signatureEncoding("EdDSA signature must be 64 bytes, got \(signature.count)")
            }
            return verifyEdDSA(signature: signature, message: message)
        case .es256, .es384:
            if algorithm == .es256, let fixed = readyFixedKeyVerifier() {
                let (r, s) = try ECDSASignature.checkedHalves(signature, algorithm: .es256)
                if let valid = verifyWithFixedKey(fixed, r: r, s: s, message: message) { return valid }
            }
            let valid = try ECDSASignature.withDER(fromRaw: signature, algorithm: algorithm) {
                verifyDigest(signature: $0, message: message)
            }
            if valid, algorithm == .es256 { countValidVerification() }
            return valid
        case .rs256, .ps256:
            guard signature.count == (key.bits + 7) / 8 else {
                throw CryptoError.signatureEncoding(
                    "\(algorithm) signature must be \((key.bits + 7) / 8) bytes for this key, got \(signature.count)"
                )
            }
            return verifyDigest(signature: signature, message: message)
        case .hs256:
            preconditionFailure("HS256 is not an asymmetric algorithm")
        }
    }

    /// Hashes `message` into a stack buffer with a pooled digest context, then checks the
    /// signature over the digest with a pooled, initialised `EVP_PKEY_CTX` — the same
    /// `EVP_PKEY_verify` call `openssl speed` times.
    private func verifyDigest(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        let md = digest!
        // RS256 verifies `DigestInfo(SHA-256) ‖ hash` with a context that has no digest set:
        // OpenSSL then checks the PKCS#1 v1.5 type-1 padding and compares the rest with these
        // bytes exactly — what RSA_verify does for SHA-256 (RFC 8017 §8.2.2), without its
        // two allocations per call.
        let prefix = algorithm == .rs256 ? AsymmetricKey.sha256DigestInfo.count : 0
        let outcome = withDigestVerifier(md) { contexts in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 96) { buffer -> Bool? in
                let out = buffer.baseAddress!
                for i in 0..<prefix { out[i] = AsymmetricKey.sha256DigestInfo[i] }
                guard let length = contexts.digest(message, into: out + prefix) else { return nil }
                let result = EVP_PKEY_verify(
                    contexts.pkey,
                    signature.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    signature.count,
                    out,
                    prefix + length
                )
                if result != 1 { OpenSSL.clearErrors() }
                return result == 1
            }
        }
        // Nil: OpenSSL could not hash (out of memory).
        return outcome ?? false
    }

    /// Runs `body` with pooled (or new) digest and verify contexts.
    private func withDigestVerifier<R>(_ md: FetchedDigest, _ body: (DigestContexts) -> R?) -> R? {
        withPooledContexts(verifiers, make: makeDigestVerifier(md), body)
    }

    /// Runs `body` with contexts taken from `pool` (or made), and gives them back. Nil from
    /// `body` means OpenSSL failed on them: they are freed rather than pooled again.
    private func withPooledContexts<R>(
        _ pool: ContextPool<DigestContexts>,
        make: @autoclosure () -> DigestContexts?,
        _ body: (DigestContexts) -> R?
    ) -> R? {
        guard let contexts = pool.take() ?? make() else { return nil }
        guard let result = body(contexts) else {
            EVP_PKEY_CTX_free(contexts.pkey)
            EVP_MD_CTX_free(contexts.hash)
            return nil
        }
        pool.give(contexts)
        return result
    }

    /// The table-backed ES256 verifier, once it is built.
    private func readyFixedKeyVerifier() -> P256FixedKeyVerifier? {
        fixedKey.withLock { state in
            if case .ready(let verifier) = state { return verifier }
            return nil
        }
    }

    /// Counts a valid ES256 signature verified without the table; at the threshold, starts
    /// building it in a detached task when no other build runs and the process is under its
    /// table limit (otherwise a later valid signature tries again).
    private func countValidVerification() {
        let start = fixedKey.withLock { state -> Bool in
            guard case .counting(let count) = state else { return false }
            guard count + 1 >= AsymmetricKey.fixedKeyThreshold else {
                state = .counting(count + 1)
                return false
            }
            guard P256FixedKeyVerifier.reserveBuild() else { return false }
            state = .building
            return true
        }
        if start {
            Task.detached(priority: .utility) {
                self.prepareFixedKeyVerifier()
                P256FixedKeyVerifier.endBuild()
            }
        }
    }

    /// Builds the ES256 table now (the detached build, and tests that want the table path).
    func prepareFixedKeyVerifier() {
        let verifier = algorithm == .es256 ? P256FixedKeyVerifier(publicKey: key) : nil
        fixedKey.withLock { $0 = verifier.map { .ready($0) } ?? .unavailable }
    }

    /// Valid ES256 signatures counted towards the table (0 once it is built or building).
    var validVerificationsCounted: Int {
        fixedKey.withLock { if case .counting(let count) = $0 { count } else { 0 } }
    }

    /// Whether the table path is in use.
    var usesFixedKeyVerifier: Bool { readyFixedKeyVerifier() != nil }

    /// SHA-256 of the message with a pooled digest context, then the table-backed check.
    /// Nil when OpenSSL fails (the caller falls back to `EVP_PKEY_verify`).
    private func verifyWithFixedKey(
        _ fixed: P256FixedKeyVerifier,
        r: UnsafeRawBufferPointer,
        s: UnsafeRawBufferPointer,
        message: UnsafeRawBufferPointer
    ) -> Bool? {
        withDigestVerifier(.sha256) { contexts in
            withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { digest -> Bool? in
                let out = digest.baseAddress!.assumingMemoryBound(to: UInt8.self)
                guard contexts.digest(message, into: out) == 32 else { return nil }
                return fixed.verify(r: r, s: s, digest: UnsafeRawBufferPointer(digest))
            }
        }
    }

    /// DER of `DigestInfo { AlgorithmIdentifier { id-sha256, NULL }, OCTET STRING (32) }`, the
    /// prefix of a PKCS#1 v1.5 SHA-256 signature's payload (RFC 8017 §9.2, note 1).
    static let sha256DigestInfo: [UInt8] = [
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ]

    private func makeDigestVerifier(_ md: FetchedDigest) -> DigestContexts? {
        guard let verify = makeVerifyContext(md) else { return nil }
        return pairWithDigest(verify, md)
    }

    /// `pkey` with a new digest context for `md`; frees `pkey` when none can be made.
    private func pairWithDigest(_ pkey: OpaquePointer, _ md: FetchedDigest) -> DigestContexts? {
        guard let hash = EVP_MD_CTX_new() else {
            EVP_PKEY_CTX_free(pkey)
            return nil
        }
        guard EVP_DigestInit_ex2(hash, md.pointer, nil) == 1 else {
            OpenSSL.clearErrors()
            EVP_MD_CTX_free(hash)
            EVP_PKEY_CTX_free(pkey)
            return nil
        }
        return DigestContexts(pkey: pkey, hash: hash)
    }

    private func makeVerifyContext(_ md: FetchedDigest) -> OpaquePointer? {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else {
            OpenSSL.clearErrors()
            return nil
        }
        var ok = EVP_PKEY_verify_init(ctx) == 1
        if ok, algorithm == .rs256 {
            // No signature digest: `verifyDigest` passes the DigestInfo itself.
            ok = EVP_PKEY_CTX_set_rsa_padding(ctx, tokend_rsa_pkcs1_padding()) == 1
        } else if ok {
            ok = EVP_PKEY_CTX_set_signature_md(ctx, md.pointer) == 1
        }
        if ok, algorithm == .ps256 {
            ok =
                EVP_PKEY_CTX_set_rsa_padding(ctx, tokend_rsa_pss_padding()) == 1
                && EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, tokend_rsa_pss_saltlen_digest()) == 1
                && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md.pointer) == 1
        }
        guard ok else {
            OpenSSL.clearErrors()
            EVP_PKEY_CTX_free(ctx)
            return nil
        }
        return ctx
    }

    /// Ed25519 with a pooled `EVP_MD_CTX` initialised once for this key, reused for every
    /// one-shot `EVP_DigestVerify` as `openssl speed` does (OpenSSL 3.0 allows it). Should
    /// an OpenSSL refuse a second one-shot on one context (EVP_R_FINAL_ERROR), the key stops
    /// pooling and verifies with a fresh context each time.
    private func verifyEdDSA(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == 64 else { return false }
        let pooled = reuseEdDSAContexts.load(ordering: .relaxed) ? edDSAVerifiers.take() : nil
        guard let ctx = pooled ?? makeEdDSAContext() else { return false }
        let result = EVP_DigestVerify(
            ctx,
            signature.baseAddress?.assumingMemoryBound(to: UInt8.self),
            signature.count,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self),
            message.count
        )
        let refusedReuse =
            result != 1 && pooled != nil && AsymmetricKey.errorQueueHolds(reason: EVP_R_FINAL_ERROR)
        if result != 1 { OpenSSL.clearErrors() }
        if refusedReuse {
            EVP_MD_CTX_free(ctx)
            reuseEdDSAContexts.store(false, ordering: .relaxed)
            edDSAVerifiers.drain()
            return verifyEdDSA(signature: signature, message: message)
        }
        if reuseEdDSAContexts.load(ordering: .relaxed) {
            edDSAVerifiers.give(ctx)
        } else {
            EVP_MD_CTX_free(ctx)
        }
        return result == 1
    }

    private func makeEdDSAContext() -> OpaquePointer? {
        guard let md = EVP_MD_CTX_new() else { return nil }
        guard EVP_DigestVerifyInit_ex(md, nil, nil, nil, nil, key.pointer, nil) == 1 else {
            OpenSSL.clearErrors()
            EVP_MD_CTX_free(md)
            return nil
        }
        return md
    }

    /// True when the oldest or newest error on OpenSSL's queue has `reason`.
    private static func errorQueueHolds(reason: Int32) -> Bool {
        let first = ERR_peek_error()
        let last = ERR_peek_last_error()
        return (first != 0 && ERR_GET_REASON(first) == reason) || (last != 0 && ERR_GET_REASON(last) == reason)
    }
}
