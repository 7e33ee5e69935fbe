import TokenCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The verifier's hot path: the same rules as `CompactJWS` + `JWTClaims` + the checks of
/// `verifyTree`, in one pass over the token's bytes and no `JSONValue` tree.
///
/// It is built to be exact rather than complete. Up to the signature it only ever says
/// "verified so far" or "not sure": for anything unusual — a malformed token, escapes in
/// the header, a `crit`, `b64`, `zip`, `enc` or key-reference member, a refused alg — it
/// returns nil *before any cryptography* and `verify` runs the tree-based path, which throws
/// the usual error. From the signature on it decides by itself, with the same error values:
/// the key comes from `KeySet.resolve`, the signature from the same `VerifyingKey.verify`,
/// a claim set the scanner is not sure about is parsed by `JWTClaims(payload:)`, and every
/// failing time, identity or policy check is reported by the same functions as before.
extension JWTVerifier {
    /// Verifies `token` on the hot path; nil means "run `verifyTree`" (nothing was verified).
    func verifyFast(_ token: UnsafeRawBufferPointer, now: Double) throws -> VerifiedJWT? {
        let count = token.count
        guard count > 0, count <= options.maxTokenLength, let base = token.baseAddress else { return nil }
        // Exactly two dots, found with memchr.
        guard let firstDot = memchr(base, Int32(UInt8(ascii: ".")), count) else { return nil }
        let first = base.distance(to: UnsafeRawPointer(firstDot))
        guard let secondDot = memchr(firstDot + 1, Int32(UInt8(ascii: ".")), count - first - 1) else { return nil }
        let second = base.distance(to: UnsafeRawPointer(secondDot))
        guard memchr(secondDot + 1, Int32(UInt8(ascii: ".")), count - second - 1) == nil else { return nil }

        let headerText = UnsafeRawBufferPointer(rebasing: token[0..<first])
        let payloadText = UnsafeRawBufferPointer(rebasing: token[(first + 1)..<second])
        let signatureText = UnsafeRawBufferPointer(rebasing: token[(second + 1)...])
        guard let headerLength = Base64URL.decodedLength(ofEncodedLength: headerText.count),
            let payloadLength = Base64URL.decodedLength(ofEncodedLength: payloadText.count),
            let signatureLength = Base64URL.decodedLength(ofEncodedLength: signatureText.count)
        else { return nil }

        // The three segments decoded into one stack buffer; header and payload are copied
        // once, into the object the lazy header and claims share, when they scan.
        let total = headerLength + payloadLength + signatureLength
        return try withUnsafeTemporaryAllocation(byteCount: max(total, 1), alignment: 8) { buffer in
            let payloadStart = headerLength
            let signatureStart = headerLength + payloadLength
            guard
                Base64URL.decode(headerText, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<payloadStart]))
                    != nil,
                Base64URL.decode(
                    payloadText,
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[payloadStart..<signatureStart])
                )
                    != nil,
                Base64URL.decode(
                    signatureText,
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[signatureStart...])
                )
                    != nil
            else { return nil }
            let decoded = UnsafeRawBufferPointer(buffer)
            return try verifyDecoded(
                header: UnsafeRawBufferPointer(rebasing: decoded[0..<payloadStart]),
                payload: UnsafeRawBufferPointer(rebasing: decoded[payloadStart..<signatureStart]),
                signature: UnsafeRawBufferPointer(rebasing: decoded[signatureStart..<total]),
                signingInput: UnsafeRawBufferPointer(rebasing: token[0..<second]),
                now: now
            )
        }
    }

    private func verifyDecoded(
        header headerBytes: UnsafeRawBufferPointer,
        payload: UnsafeRawBufferPointer,
        signature: UnsafeRawBufferPointer,
        signingInput: UnsafeRawBufferPointer,
        now: Double
    ) throws -> VerifiedJWT? {
        // The header: scanned, or left to the tree path. The claims are scanned here too (a
        // pure check of untrusted bytes, like the header's); what the scan found is used only
        // once the signature has verified.
        guard let scannedHeader = JWTVerifier.scanHeader(headerBytes) else { return nil }
        let scannedClaims = JWTVerifier.scanClaims(payload)
        let decoded = ScannedToken(
            copying: UnsafeRawBufferPointer(start: headerBytes.baseAddress, count: headerBytes.count + payload.count),
            headerLength: headerBytes.count,
            headerFields: scannedHeader.fields,
            registered: scannedClaims?.registered ?? .init()
        )
        let header = JOSEHeader(scanned: decoded, algorithm: scannedHeader.algorithm)

        // From here on, every outcome is final: the same errors, in the same order, as
        // verifyTree's (key, signature, claims, time, identity, policy).
        let entry = try keys.resolve(header)
        try JWTVerifier.checkSignature(signature, over: signingInput, with: entry.key, header: header)

        let claims: JWTClaims
        if let scannedClaims {
            claims = JWTClaims(scanned: scannedClaims, in: decoded)
        } else {
            claims = try JWTClaims(payload: Array(payload))
        }
        try JWTVerifier.checkTime(
            claims,
            now: now,
            leeway: options.leeway,
            requireExpiration: options.requireExpiration
        )
        if !identityCertainlyPasses(header, claims), let error = JWTVerifier.checkIdentity(header, claims, options) {
            throw error
        }
        if let policy = options.policy, let error = policy.violation(of: claims, now: now, leeway: options.leeway) {
            throw error
        }
        return VerifiedJWT(header: header, claims: claims, key: entry)
    }

    /// `CompactJWS.verifySignature`, over bytes already decoded.
    static func checkSignature(
        _ signature: UnsafeRawBufferPointer,
        over signingInput: UnsafeRawBufferPointer,
        with key: VerifyingKey,
        header: JOSEHeader
    ) throws {
        guard key.algorithm == header.algorithm else {
            throw JOSEError(
                .algKeyMismatch,
                "token alg \(header.algorithm) does not match the key's alg \(key.algorithm)"
            )
        }
        let valid: Bool
        do { valid = try key.verify(signature: signature, message: signingInput) } catch let error as CryptoError {
            throw JOSEError(.signatureEncoding, "signature: \(error.reason)")
        }
        guard valid else { throw JOSEError(.signature, "signature does not verify with the \(key.algorithm) key") }
    }

    // MARK: Header

    /// Header member names the scanner recognises by their bytes.
    private enum HeaderMember {
        case alg, kid, typ, cty
        /// A member whose rules live in `JOSEHeader.init(json:)` only: crit, b64, zip, enc,
        /// and the key references (jwk, jku, x5u, x5c, x5t, x5t#S256).
        case ruled
        case other

        @inline(__always)
        init(_ name: JSONScanner.MemberName) {
            switch (name.bytes.count, name.head) {
            case (3, 0x67_6C_61): self = .alg
            case (3, 0x64_69_6B): self = .kid
            case (3, 0x70_79_74): self = .typ
            case (3, 0x79_74_63): self = .cty
            case (4, 0x74_69_72_63),  // crit
                (3, 0x34_36_62),  // b64
                (3, 0x70_69_7A),  // zip
                (3, 0x63_6E_65),  // enc
                (3, 0x6B_77_6A),  // jwk
                (3, 0x75_6B_6A),  // jku
                (3, 0x75_35_78),  // x5u
                (3, 0x63_35_78),  // x5c
                (3, 0x74_35_78),  // x5t
                (8, 0x36_35_32_53_23_74_35_78):  // x5t#S256
                self = .ruled
            default: self = .other
            }
        }
    }

    /// A header's members as the scanner read them.
    struct ScannedHeader {
        var algorithm: SignatureAlgorithm
        var fields: JOSEHeader.ScannedFields
    }

    /// A header whose rules the scanner can settle, or nil for the tree path.
    static func scanHeader(_ bytes: UnsafeRawBufferPointer) -> ScannedHeader? {
        var visitor = HeaderVisitor()
        guard JSONScanner.scanObject(bytes, maxDepth: JSONParser().maxDepth, visitor: &visitor),
            let alg = visitor.alg, alg.isASCII,
            let algorithm = algorithm(UnsafeRawBufferPointer(rebasing: bytes[alg.start..<alg.end]))
        else { return nil }
        return ScannedHeader(algorithm: algorithm, fields: visitor.fields)
    }

    private struct HeaderVisitor: JSONMemberVisitor {
        var alg: JSONScanner.Value?
        var fields = JOSEHeader.ScannedFields()

        mutating func visit(_ name: JSONScanner.MemberName, _ value: JSONScanner.Value) -> Bool {
            switch HeaderMember(name) {
            case .alg:
                guard value.kind == .string else { return false }
                alg = value
            case .kid:
                guard value.kind == .string else { return false }
                fields.kid = value
            case .typ:
                guard value.kind == .string else { return false }
                fields.typ = value
            case .cty:
                guard value.kind == .string else { return false }
                fields.cty = value
            case .ruled:
                return false
            case .other:
                break
            }
            return true
        }
    }

    /// `SignatureAlgorithm(jwsName:)` on ASCII bytes (an exact, case-sensitive match): every
    /// JWS name tokend accepts is 5 bytes long.
    private static func algorithm(_ name: UnsafeRawBufferPointer) -> SignatureAlgorithm? {
        guard name.count == 5 else { return nil }
        var packed: UInt64 = 0
        for i in 0..<5 { packed |= UInt64(name[i]) << (8 * UInt64(i)) }
        switch packed {
        case 0x36_35_32_53_45: return .es256
        case 0x34_38_33_53_45: return .es384
        case 0x41_53_44_64_45: return .edDSA
        case 0x36_35_32_53_52: return .rs256
        case 0x36_35_32_53_50: return .ps256
        case 0x36_35_32_53_48: return .hs256
        default: return nil
        }
    }

    // MARK: Claims

    /// The registered claims, type-checked, of a payload the scanner accepts; nil when
    /// `JWTClaims(payload:)` must decide (it then accepts with the same values, or throws).
    static func scanClaims(_ bytes: UnsafeRawBufferPointer) -> JWTClaims.Scanned? {
        var visitor = ClaimsVisitor(bytes: bytes)
        return JSONScanner.scanObject(bytes, maxDepth: JSONParser().maxDepth, visitor: &visitor) ? visitor.claims : nil
    }

    private struct ClaimsVisitor: JSONMemberVisitor {
        let bytes: UnsafeRawBufferPointer
        var claims = JWTClaims.Scanned()

        @inline(__always)
        mutating func visit(_ name: JSONScanner.MemberName, _ value: JSONScanner.Value) -> Bool {
            // Most members are not registered claims: test that inline, record the others
            // out of line.
            guard let claim = JWTClaims.RegisteredName(count: name.bytes.count, head: name.head) else { return true }
            return claims.record(claim, value, in: bytes)
        }
    }

    // MARK: Identity

    /// True when iss, aud and typ certainly satisfy the options, decided on bytes when the
    /// strings are ASCII (where byte equality is exactly `String ==`). False means "ask
    /// `checkIdentity`", which also handles non-ASCII text by canonical equivalence.
    func identityCertainlyPasses(_ header: JOSEHeader, _ claims: JWTClaims) -> Bool {
        guard case .scanned(let token) = claims.storage else { return false }
        let registered = token.registered
        return token.payload.withBytes { payload in
            if let issuer = options.issuer {
                guard let iss = registered.iss, iss.isASCII,
                    JWTVerifier.asciiEquals(issuer, UnsafeRawBufferPointer(rebasing: payload[iss.start..<iss.end]))
                else { return false }
            }
            if let audience = options.audience {
                guard let aud = registered.aud, aud.isASCII,
                    JWTVerifier.containsASCII(audience, in: aud, payload)
                else { return false }
            }
            if let type = options.requiredType {
                guard let typ = header.typ, JWTVerifier.asciiTypeMatches(typ, type) else { return false }
            }
            return true
        }
    }

    /// `expected == String(bytes)` for ASCII `bytes`, when `expected` is ASCII too; false
    /// otherwise (the caller then compares as Strings).
    static func asciiEquals(_ expected: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var expected = expected
        return expected.withUTF8 { wanted in
            guard wanted.count == bytes.count, wanted.allSatisfy({ $0 < 0x80 }) else { return false }
            return wanted.isEmpty || memcmp(wanted.baseAddress!, bytes.baseAddress!, bytes.count) == 0
        }
    }

    /// Whether the ASCII string or array of ASCII strings `value` holds `expected`.
    static func containsASCII(
        _ expected: String,
        in value: JSONScanner.Value,
        _ payload: UnsafeRawBufferPointer
    ) -> Bool {
        if value.kind == .string {
            return asciiEquals(expected, UnsafeRawBufferPointer(rebasing: payload[value.start..<value.end]))
        }
        var i = value.start
        var open: Int?
        while i < value.end {
            if payload[i] == UInt8(ascii: "\"") {
                if let start = open {
                    if asciiEquals(expected, UnsafeRawBufferPointer(rebasing: payload[start..<i])) { return true }
                    open = nil
                } else {
                    open = i + 1
                }
            }
            i += 1
        }
        return false
    }

    /// `JOSEHeader.typ(typ, matches: expected)` for ASCII strings: case-insensitive, an
    /// `application/` prefix ignored. False when either is not ASCII (the caller then
    /// uses the String comparison).
    static func asciiTypeMatches(_ typ: String, _ expected: String) -> Bool {
        var typ = typ
        var expected = expected
        return typ.withUTF8 { a in
            expected.withUTF8 { b in
                // The same bytes match (the usual case).
                if a.count == b.count, a.isEmpty || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 { return true }
                guard a.allSatisfy({ $0 < 0x80 }), b.allSatisfy({ $0 < 0x80 }) else { return false }
                let x = stripApplicationPrefix(a)
                let y = stripApplicationPrefix(b)
                guard x.count == y.count else { return false }
                for i in 0..<x.count where lowercase(x[i]) != lowercase(y[i]) { return false }
                return true
            }
        }
    }

    @inline(__always) private static func lowercase(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    private static func stripApplicationPrefix(_ text: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        let prefix: StaticString = "application/"
        let length = prefix.utf8CodeUnitCount
        guard text.count >= length else { return text }
        for i in 0..<length where lowercase(text[i]) != prefix.utf8Start[i] { return text }
        return UnsafeBufferPointer(rebasing: text[length...])
    }
}

extension JWTClaims.Scanned {
    /// Type-checks one registered claim as `JWTClaims(json:)` does; false when the tree
    /// parser must decide (it will refuse the claim set with its usual error).
    @inline(never)
    mutating func record(
        _ claim: JWTClaims.RegisteredName,
        _ value: JSONScanner.Value,
        in bytes: UnsafeRawBufferPointer
    )
        -> Bool
    {
        switch claim {
        case .iss, .sub, .jti:
            guard value.kind == .string else { return false }
            switch claim {
            case .iss: registered.iss = value
            case .sub: registered.sub = value
            default: registered.jti = value
            }
        case .exp, .nbf, .iat:
            guard value.kind == .number else { return false }
            let seconds = JSONNumber.doubleValue(
                ofText: UnsafeRawBufferPointer(rebasing: bytes[value.start..<value.end])
            )
            guard let date = NumericDate(seconds: seconds) else { return false }
            switch claim {
            case .exp: exp = date
            case .nbf: nbf = date
            default: iat = date
            }
        case .aud, .scope:
            guard value.kind == .string || (value.kind == .array && value.isSimple) else { return false }
            if claim == .aud { registered.aud = value } else { registered.scope = value }
        }
        return true
    }
}
