/// Conversion between JOSE's raw ECDSA signatures (R‖S, RFC 7518 §3.4) and the DER form
/// OpenSSL speaks, with the range checks that stop "psychic" signatures (r or s of zero).
enum ECDSASignature {
    /// The group order n of P-256 and P-384, big-endian.
    static let p256Order: [UInt8] = hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
    static let p384Order: [UInt8] = hex(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973"
    )

    static func order(for algorithm: SignatureAlgorithm) -> [UInt8] {
        algorithm == .es384 ? p384Order : p256Order
    }

    /// Checks a raw R‖S signature and encodes it as DER `SEQUENCE { INTEGER r, INTEGER s }`.
    /// Throws when the length is not exactly 2 × the coordinate size or when r or s is
    /// outside [1, n−1]: a DER signature, a truncated one and an all-zero one all fail here.
    static func der(fromRaw raw: UnsafeRawBufferPointer, algorithm: SignatureAlgorithm) throws -> [UInt8] {
        let order = order(for: algorithm)
        let size = order.count
        guard raw.count == 2 * size else {
            let hint = raw.first == 0x30 ? " (looks like DER; JWS requires raw R‖S)" : ""
            throw CryptoError.signatureEncoding(
                "\(algorithm) signature must be \(2 * size) bytes of raw R‖S, got \(raw.count)\(hint)"
            )
        }
        let r = UnsafeRawBufferPointer(rebasing: raw[0..<size])
        let s = UnsafeRawBufferPointer(rebasing: raw[size..<(2 * size)])
        for (name, value) in [("r", r), ("s", s)] where !inRange(value, order: order) {
            throw CryptoError.signatureEncoding("\(algorithm) signature's \(name) is outside [1, n-1]")
        }
        let rDER = integer(r)
        let sDER = integer(s)
        let body = rDER.count + sDER.count
        var out: [UInt8] = [0x30]
        out.reserveCapacity(body + 3)
        if body >= 0x80 { out.append(0x81) }
        out.append(UInt8(body))
        out += rDER
        out += sDER
        return out
    }

    /// The r and s halves of a raw R‖S signature, with the checks (and errors) of
    /// `der(fromRaw:algorithm:)`.
    static func checkedHalves(
        _ raw: UnsafeRawBufferPointer,
        algorithm: SignatureAlgorithm
    ) throws -> (r: UnsafeRawBufferPointer, s: UnsafeRawBufferPointer) {
        let size = algorithm == .es384 ? 48 : 32
        guard raw.count == 2 * size else {
            let hint = raw.first == 0x30 ? " (looks like DER; JWS requires raw R‖S)" : ""
            throw CryptoError.signatureEncoding(
                "\(algorithm) signature must be \(2 * size) bytes of raw R‖S, got \(raw.count)\(hint)"
            )
        }
        let r = UnsafeRawBufferPointer(rebasing: raw[0..<size])
        let s = UnsafeRawBufferPointer(rebasing: raw[size..<(2 * size)])
        let order = algorithm == .es384 ? p384Order : p256Order
        guard inRange(r, order: order) else {
            throw CryptoError.signatureEncoding("\(algorithm) signature's r is outside [1, n-1]")
        }
        guard inRange(s, order: order) else {
            throw CryptoError.signatureEncoding("\(algorithm) signature's s is outside [1, n-1]")
        }
        return (r, s)
    }

    /// Checks a raw R‖S signature like `der(fromRaw:algorithm:)` and passes its DER form to
    /// `body` from a stack buffer, without allocating.
    static func withDER<R>(
        fromRaw raw: UnsafeRawBufferPointer,
        algorithm: SignatureAlgorithm,
        _ body: (UnsafeRawBufferPointer) -> R
    ) throws -> R {
        let size = algorithm == .es384 ? 48 : 32
        let (r, s) = try checkedHalves(raw, algorithm: algorithm)
        // SEQUENCE header (≤ 3 bytes) + two INTEGERs of ≤ 2 + size + 1 bytes each.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 3 + 2 * (size + 3)) { buffer in
            let out = buffer.baseAddress!
            let rLength = integerLength(r)
            let sLength = integerLength(s)
            let contentLength = rLength + sLength
            var o = 0
            out[o] = 0x30
            o += 1
            if contentLength >= 0x80 {
                out[o] = 0x81
                o += 1
            }
            out[o] = UInt8(contentLength)
            o += 1
            o += writeInteger(r, to: out + o)
            o += writeInteger(s, to: out + o)
            return body(UnsafeRawBufferPointer(start: out, count: o))
        }
    }

    /// The encoded length (tag and length bytes included) of a DER INTEGER holding `value`.
    private static func integerLength(_ value: UnsafeRawBufferPointer) -> Int {
        var start = 0
        while start < value.count - 1, value[start] == 0 { start += 1 }
        return 2 + value.count - start + (value[start] & 0x80 != 0 ? 1 : 0)
    }

    /// Writes `value` as a DER INTEGER at `out`; returns the bytes written.
    private static func writeInteger(_ value: UnsafeRawBufferPointer, to out: UnsafeMutablePointer<UInt8>) -> Int {
        var start = 0
        while start < value.count - 1, value[start] == 0 { start += 1 }
        let needsPad = value[start] & 0x80 != 0
        let length = value.count - start + (needsPad ? 1 : 0)
        out[0] = 0x02
        out[1] = UInt8(length)
        var o = 2
        if needsPad {
            out[o] = 0
            o += 1
        }
        for i in start..<value.count {
            out[o] = value[i]
            o += 1
        }
        return o
    }

    /// Decodes OpenSSL's DER signature into raw R‖S of the algorithm's fixed size.
    static func raw(fromDER der: [UInt8], algorithm: SignatureAlgorithm) throws -> [UInt8] {
        let size = order(for: algorithm).count
        var index = 0
        func byte() throws -> UInt8 {
            guard index < der.count else { throw CryptoError.signatureEncoding("truncated DER signature") }
            defer { index += 1 }
            return der[index]
        }
        func length() throws -> Int {
            let first = try byte()
            if first < 0x80 { return Int(first) }
            guard first == 0x81 else { throw CryptoError.signatureEncoding("unexpected DER length form") }
            return Int(try byte())
        }
        guard try byte() == 0x30 else { throw CryptoError.signatureEncoding("DER signature is not a SEQUENCE") }
        _ = try length()
        var out: [UInt8] = []
        out.reserveCapacity(2 * size)
        for _ in 0..<2 {
            guard try byte() == 0x02 else { throw CryptoError.signatureEncoding("DER signature lacks an INTEGER") }
            let count = try length()
            guard index + count <= der.count else { throw CryptoError.signatureEncoding("truncated DER signature") }
            var value = Array(der[index..<(index + count)])
            index += count
            while value.count > size, value.first == 0 { value.removeFirst() }
            guard value.count <= size else { throw CryptoError.signatureEncoding("DER integer too long") }
            out += [UInt8](repeating: 0, count: size - value.count) + value
        }
        return out
    }

    /// 1 ≤ value ≤ n−1, comparing big-endian byte strings of equal length.
    static func inRange(_ value: UnsafeRawBufferPointer, order: [UInt8]) -> Bool {
        var nonZero = false
        var less = false
        var decided = false
        for i in 0..<order.count {
            let v = value[i]
            if v != 0 { nonZero = true }
            if !decided, v != order[i] {
                less = v < order[i]
                decided = true
            }
        }
        return nonZero && less
    }

    /// A DER INTEGER holding the unsigned big-endian `value`.
    private static func integer(_ value: UnsafeRawBufferPointer) -> [UInt8] {
        var start = 0
        while start < value.count - 1, value[start] == 0 { start += 1 }
        let needsPad = value[start] & 0x80 != 0
        let length = value.count - start + (needsPad ? 1 : 0)
        var out: [UInt8] = [0x02, UInt8(length)]
        if needsPad { out.append(0) }
        out += value[start...]
        return out
    }

    private static func hex(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var chars = Array(text.utf8)[...]
        while chars.count >= 2 {
            out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
            chars = chars.dropFirst(2)
        }
        return out
    }
}
