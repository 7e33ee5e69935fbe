/// Revoked access-token ids with the time each stops mattering, in little memory (issue 10,
/// finding 10: a `[String: Double]` cost 132 bytes of RSS per revoked jti).
///
/// tokend's own jtis are 128 random bits in base64url, 22 characters (`mintAccess`). Those are
/// kept as a `UInt128` and a `UInt32` expiry (whole seconds, rounded up) in a flat
/// open-addressing table with linear probing: 20 bytes a slot, at most 3/4 full and growing by
/// half, so 27 to 40 bytes per jti with no allocation per entry. Any other jti (a non-canonical or foreign
/// shape) goes to a dictionary, so every jti still round-trips exactly.
///
/// A value type, used under its shard's lock in `RevocationState`.
struct RevokedJTIs: Sendable {
    /// A jti as the set holds it: its 128 bits when it has tokend's shape, else the string.
    enum Key: Sendable {
        case packed(UInt128)
        case other(String)

        @inline(__always)
        init(_ jti: String) {
            self = RevokedJTIs.packed(jti).map(Key.packed) ?? .other(jti)
        }
    }

    /// Keys; a slot is empty when its expiry is 0.
    private var keys: [UInt128] = []
    private var expiries: [UInt32] = []
    private var packedCount = 0
    private var others: [String: Double] = [:]

    var count: Int { packedCount + others.count }

    /// Bytes the table's slots take (the dictionary of other shapes not counted): what a
    /// revoked jti of tokend's shape costs, for tests.
    var tableBytes: Int {
        keys.capacity * MemoryLayout<UInt128>.stride + expiries.capacity * MemoryLayout<UInt32>.stride
    }

    /// Revokes `key` until `expiresAt`, keeping the later time if it is revoked already.
    mutating func insert(_ key: Key, expiresAt: Double) {
        switch key {
        case .packed(let bits): insert(bits, expiry: Self.seconds(expiresAt))
        case .other(let jti): others[jti] = max(others[jti] ?? expiresAt, expiresAt)
        }
    }

    /// Whether `key` is revoked (until compaction drops it). No allocation.
    @inline(__always)
    func contains(_ key: Key) -> Bool {
        switch key {
        case .packed(let bits): contains(bits)
        case .other(let jti): others[jti] != nil
        }
    }

    /// Drops every jti whose expiry is at or before `now`; returns how many went. Rebuilds the
    /// table at the size the rest needs, so memory shrinks with it.
    mutating func removeExpired(now: Double) -> Int {
        var removed = others.count
        if others.contains(where: { $0.value <= now }) { others = others.filter { $0.value > now } }
        removed -= others.count
        // An expiry is rounded up: it is expired once `now` reaches it.
        let kept = expiries.reduce(into: 0) { count, expiry in
            if expiry != 0, Double(expiry) > now { count += 1 }
        }
        guard kept < packedCount else { return removed }
        removed += packedCount - kept
        let (oldKeys, oldExpiries) = (keys, expiries)
        keys = []
        expiries = []
        packedCount = 0
        guard kept > 0 else { return removed }
        reserve(kept)
        for index in oldExpiries.indices where oldExpiries[index] != 0 && Double(oldExpiries[index]) > now {
            insert(oldKeys[index], expiry: oldExpiries[index])
        }
        return removed
    }

    // MARK: - The table

    private mutating func insert(_ key: UInt128, expiry: UInt32) {
        if (packedCount + 1) * 4 > keys.count * 3 { reserve(packedCount + 1) }
        var slot = Self.slot(key, capacity: keys.count)
        while expiries[slot] != 0 {
            if keys[slot] == key {
                expiries[slot] = max(expiries[slot], expiry)
                return
            }
            slot = slot + 1 == keys.count ? 0 : slot + 1
        }
        keys[slot] = key
        expiries[slot] = expiry
        packedCount += 1
    }

    private func contains(_ key: UInt128) -> Bool {
        guard !keys.isEmpty else { return false }
        var slot = Self.slot(key, capacity: keys.count)
        while expiries[slot] != 0 {
            if keys[slot] == key { return true }
            slot = slot + 1 == keys.count ? 0 : slot + 1
        }
        return false
    }

    /// Sizes the table to hold `count` keys at most 3/4 full, growing by half at least (not
    /// doubling: a doubled table is only 3/8 full, which is what memory pays for).
    private mutating func reserve(_ count: Int) {
        let needed = max(16, count * 4 / 3 + 1)
        let capacity = keys.isEmpty ? needed : max(needed, keys.count + keys.count / 2)
        guard capacity != keys.count else { return }
        let (oldKeys, oldExpiries) = (keys, expiries)
        keys = [UInt128](repeating: 0, count: capacity)
        expiries = [UInt32](repeating: 0, count: capacity)
        packedCount = 0
        for index in oldExpiries.indices where oldExpiries[index] != 0 {
            insert(oldKeys[index], expiry: oldExpiries[index])
        }
    }

    /// The keys are random bits already; the multiply spreads them anyway, so even chosen
    /// jtis (which need a valid token of ours to be revoked) cannot pile up in one run. The
    /// slot is the high word of `mixed × capacity`, so any capacity works.
    @inline(__always)
    private static func slot(_ key: UInt128, capacity: Int) -> Int {
        let mixed = (UInt64(truncatingIfNeeded: key) ^ UInt64(truncatingIfNeeded: key >> 64)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed.multipliedFullWidth(by: UInt64(capacity)).high)
    }

    /// Whole seconds, rounded up so a jti is never dropped early; never 0 (the empty mark).
    private static func seconds(_ time: Double) -> UInt32 {
        guard time > 1 else { return 1 }
        guard time < Double(UInt32.max) else { return UInt32.max }
        return UInt32(time.rounded(.up))
    }

    // MARK: - jti shape

    /// The 128 bits of a canonical 22-character base64url jti (no padding, the last
    /// character's 4 unused bits zero), or nil for any other string.
    @inline(__always)
    static func packed(_ jti: String) -> UInt128? {
        guard jti.utf8.count == 22 else { return nil }
        // Native strings are contiguous; the copy is for the odd bridged one.
        if let packed = jti.utf8.withContiguousStorageIfAvailable({ packed($0) }) { return packed }
        return Array(jti.utf8).withUnsafeBufferPointer { packed($0) }
    }

    private static func packed(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt128? {
        guard bytes.count == 22 else { return nil }
        var value: UInt128 = 0
        for index in 0..<21 {
            guard let sextet = sextet(bytes[index]) else { return nil }
            value = value << 6 | UInt128(sextet)
        }
        guard let last = sextet(bytes[21]), last & 0x0F == 0 else { return nil }
        return value << 2 | UInt128(last >> 4)
    }

    @inline(__always)
    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}
