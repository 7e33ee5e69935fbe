internal import COpenSSL
import Dispatch
import Synchronization

/// ECDSA nonces computed ahead of the signatures that use them. Almost all of an ECDSA
/// signature's cost is its nonce: a random k, r = (k·G).x mod n and k⁻¹ mod n (about 22 µs of
/// a 25 µs ES256 signature here), none of which depends on the message. With one taken from
/// here a signature is the rest, s = k⁻¹(z + r·d) mod n: under a microsecond.
///
/// - k comes from OpenSSL's private DRBG, uniform in [1, n-1]; the point multiplication and
///   the inversion are OpenSSL's constant-time ones. Unlike OpenSSL's own signing, k is not
///   also derived from the key and the message (it cannot be: the message is not known yet),
///   so two processes with one memory image, such as a running VM snapshotted and restored
///   twice, could sign different messages with one nonce and reveal the key. Where that can
///   happen, turn it off (`isEnabled`, TOKEND_ECDSA_PRECOMPUTE=0).
/// - A nonce is taken out under the lock and freed (cleared) once used: never twice, never
///   handed back. A child of `fork` never uses the pools: the parent uses the same nonces.
/// - The pool lives in memory only, beside the private key it serves, and goes with it.
/// - One thread fills every key's pool (`NonceFiller`), one nonce at a time, yielding the CPU
///   between them: it works while a request waits for its commit, and at tokend's own priority,
///   since a SCHED_IDLE filler stalled signatures for up to 1.5 s at 32 clients (waiting for a
///   lock it held, on a CPU it did not get). A signature never waits for it: with the pool
///   empty, or its lock busy, the signature makes its own nonce, as before; under full load
///   each nonce the filler makes is one a signature does not.
final class ECDSANonces: Sendable {
    /// Whether keys that have not signed yet precompute their nonces (on unless turned off).
    static let enabled = Atomic<Bool>(true)

    private struct Nonce: @unchecked Sendable {
        // Safe: a nonce is in the pool (touched under the mutex) or held by the one caller
        // that took it out; BIGNUMs may move between threads.
        let kinv: OpaquePointer
        let r: OpaquePointer

        func free() {
            BN_clear_free(kinv)
            BN_clear_free(r)
        }
    }

    private struct Pool {
        var nonces: [Nonce] = []
        /// The pool asked for nonces and is not full yet: the filler adds to it only then.
        var requested = false
        /// OpenSSL failed to make a nonce for this key: signatures make their own from now on.
        var failed = false
    }

    private struct ECKey: @unchecked Sendable {
        // Safe: OpenSSL allows concurrent signatures and nonce computations with one key, which
        // nothing changes after it is made.
        let pointer: OpaquePointer
    }

    /// How many nonces a pool holds, and the level below which it asks to be filled again.
    static let capacity = 64
    static let refillBelow = 32
    /// How many times a signature tries the pool's lock before it makes its own nonce.
    static let lockTries = 64

    /// The key's EC_KEY: OpenSSL's cached legacy copy of the key pair (a second copy of the
    /// private scalar, which lives as long as the key).
    private let key: ECKey
    /// Bytes of r and of s in a signature: 32 for P-256, 48 for P-384.
    let half: Int
    private let pool: Mutex<Pool>

    /// A pool for the EC key pair `key`, whose signatures have `half`-byte halves; nil when
    /// precomputation is off, when OpenSSL's low-level EC calls may not use the key (FIPS), or
    /// when OpenSSL cannot give its EC_KEY. It starts empty.
    init?(_ key: EVPKey, half: Int) {
        // Not in a child of `fork`: it has no filler, and the parent's may have held its locks.
        guard Self.enabled.load(ordering: .relaxed), !NonceFiller.forked, key.allowsLowLevelEC else { return nil }
        guard let ecKey = tokend_ec_key(key.pointer) else {
            OpenSSL.clearErrors()
            return nil
        }
        self.key = ECKey(pointer: ecKey)
        self.half = half
        self.pool = Mutex(Pool())
        NonceFiller.shared.add(self)
    }

    deinit {
        pool.withLock { pool in
            for nonce in pool.nonces { nonce.free() }
            pool.nonces = []
        }
        tokend_ec_key_free(key.pointer)
    }

    /// Signs the digest `digest` (`length` bytes) with a nonce from the pool, writing r‖s into
    /// `out` (room for `2 * half` bytes); false when the pool is empty or busy, or OpenSSL
    /// fails (the caller signs the ordinary way). Asks for a fill when the pool runs low.
    func sign(digest: UnsafePointer<UInt8>, length: Int, into out: UnsafeMutablePointer<UInt8>) -> Bool {
        // A child of `fork` holds a copy of nonces its parent uses too.
        guard !NonceFiller.forked else { return false }
        // Never blocks on the lock: its holder may be the filler, preempted. Other signers
        // hold it for a pop: a few tries pass them.
        var taken: (nonce: Nonce?, ask: Bool)?
        for _ in 0..<Self.lockTries where taken == nil {
            taken = pool.withLockIfAvailable { pool -> (nonce: Nonce?, ask: Bool) in
                let nonce = pool.nonces.popLast()
                guard !pool.failed, !pool.requested, pool.nonces.count < Self.refillBelow else {
                    return (nonce, false)
                }
                pool.requested = true
                return (nonce, true)
            }
        }
        guard let taken else { return false }
        if taken.ask { NonceFiller.shared.wake() }
        guard let nonce = taken.nonce else { return false }
        defer { nonce.free() }
        let signed = tokend_ecdsa_sign_with_nonce(
            key.pointer,
            digest,
            Int32(length),
            nonce.kinv,
            nonce.r,
            out,
            Int32(half)
        )
        if signed != 1 { OpenSSL.clearErrors() }
        return signed == 1
    }

    /// While the pool has asked, makes nonces until it is full, each outside the lock; stops
    /// for good when OpenSSL fails. Run by the filler thread (tests call it directly).
    func fill() {
        while pool.withLock({ $0.requested && !$0.failed }) {
            var kinv: OpaquePointer?
            var r: OpaquePointer?
            guard let made = NonceFiller.shared.unlessExiting({ tokend_ecdsa_nonce(key.pointer, &kinv, &r) }) else {
                return
            }
            guard made == 1, let kinv, let r else {
                OpenSSL.clearErrors()
                if let kinv { BN_clear_free(kinv) }
                if let r { BN_clear_free(r) }
                pool.withLock { pool in
                    pool.failed = true
                    pool.requested = false
                }
                return
            }
            let nonce = Nonce(kinv: kinv, r: r)
            let kept = pool.withLock { pool -> Bool in
                // Another fill may have filled it meanwhile.
                guard pool.requested, pool.nonces.count < Self.capacity else { return false }
                pool.nonces.append(nonce)
                if pool.nonces.count == Self.capacity { pool.requested = false }
                return true
            }
            if !kept { nonce.free() }
            // One nonce at a time: a thread with a request to serve waits for one at most.
            sched_yield()
        }
    }

    /// How many nonces the pool holds now (tests).
    var count: Int { pool.withLock { $0.nonces.count } }
}

/// The one thread that fills every `ECDSANonces` pool, started with the first pool and woken
/// when a pool runs low.
final class NonceFiller: Sendable {
    static let shared = NonceFiller()

    /// Whether this process is a child of `fork` (set by the child's fork handler): it has no
    /// filler thread, and holds a copy of nonces its parent uses too, so its signatures make
    /// their own nonces.
    private static let inChild = Atomic<Bool>(false)

    static var forked: Bool { inChild.load(ordering: .acquiring) }

    private struct Registered {
        weak var pool: ECDSANonces?
    }

    private let pools = Mutex<[Registered]>([])
    private let wakeUp = DispatchSemaphore(value: 0)

    /// Set once the process exits: OpenSSL's own exit handler frees the locks a nonce
    /// computation takes, so none may run after it (the filler would crash the exit).
    private let exiting = Mutex(false)

    private init() {
        pthread_atfork(nil, nil) { NonceFiller.inChild.store(true, ordering: .releasing) }
        // Exit handlers run last registered first: this one must run before OpenSSL's, which
        // OpenSSL registers when it first loads its configuration (done here if not yet).
        OPENSSL_init_crypto(UInt64(OPENSSL_INIT_LOAD_CONFIG), nil)
        atexit { NonceFiller.shared.stopForExit() }
        // Without the thread no pool is filled, and every signature makes its own nonce.
        _ = BackgroundThread.spawn(detached: true) { [self] in
            BackgroundThread.setName("tokend-nonces")
            run()
        }
    }

    fileprivate func add(_ pool: ECDSANonces) {
        pools.withLock { pools in
            pools.removeAll { $0.pool == nil }
            pools.append(Registered(pool: pool))
        }
    }

    fileprivate func wake() { wakeUp.signal() }

    /// Runs `body` (a call into OpenSSL) unless the process is exiting; nil once it is.
    fileprivate func unlessExiting<T>(_ body: () -> T) -> T? {
        exiting.withLock { exiting in exiting ? nil : body() }
    }

    /// Waits for a nonce computation in progress to end, and lets none start after it.
    private func stopForExit() {
        // A child of `fork` has no filler to wait for.
        guard !NonceFiller.forked else { return }
        exiting.withLock { $0 = true }
    }

    private func run() -> Never {
        while true {
            wakeUp.wait()
            let live = pools.withLock { pools -> [ECDSANonces] in
                pools.removeAll { $0.pool == nil }
                return pools.compactMap(\.pool)
            }
            for pool in live { pool.fill() }
        }
    }
}

/// Turns ECDSA nonce precomputation (`ECDSANonces`) on or off for the keys that have not
/// signed yet; on by default. tokend sets it from TOKEND_ECDSA_PRECOMPUTE before it signs.
public enum ECDSANoncePrecomputation {
    public static var isEnabled: Bool {
        get { ECDSANonces.enabled.load(ordering: .relaxed) }
        set { ECDSANonces.enabled.store(newValue, ordering: .relaxed) }
    }
}
