public import TokenCrypto

/// The three decoded parts of a JWS in compact serialization, before any header rule.
/// Structural checks only: size, segment count, strict base64url, strict JSON object header.
public struct JWSParts: Sendable {
    public let header: JSONObject
    public let payload: [UInt8]
    public let signature: [UInt8]
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the bytes that were signed.
    public let signingInput: [UInt8]

    /// The largest token accepted by default (bytes). Far above any real access token,
    /// far below what could hurt.
    public static let defaultMaxLength = 16 * 1024

    public init(
        compact token: String,
        maxLength: Int = JWSParts.defaultMaxLength,
        parser: JSONParser = JSONParser()
    ) throws {
        var token = token
        self = try token.withUTF8 {
            try JWSParts(bytes: UnsafeRawBufferPointer($0), maxLength: maxLength, parser: parser)
        }
    }

    public init(
        bytes: UnsafeRawBufferPointer,
        maxLength: Int = JWSParts.defaultMaxLength,
        parser: JSONParser = JSONParser()
    ) throws {
        guard bytes.count <= maxLength else {
            throw JOSEError(.tooLarge, "token is \(bytes.count) bytes; the limit is \(maxLength)")
        }
        guard !bytes.isEmpty else { throw JOSEError(.segments, "token is empty") }
        // Count the separators before splitting anything.
        var dots = 0
        var first = -1
        var second = -1
        for i in 0..<bytes.count where bytes[i] == UInt8(ascii: ".") {
            dots += 1
            if dots == 1 { first = i } else if dots == 2 { second = i }
        }
        switch dots {
        case 2: break
        case 4:
            throw JOSEError(.encrypted, JWSParts.describeFiveSegments(bytes, firstDot: first))
        case 0 where JWSParts.looksOpaque(bytes):
            throw JOSEError(
                .opaque,
                "opaque token (\(bytes.count) characters, no JWS structure), e.g. a refresh token; only its issuer can check it"
            )
        default:
            throw JOSEError(.segments, "a compact JWS has 3 dot-separated segments; this has \(dots + 1)")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[0..<first])
        let payloadBytes = UnsafeRawBufferPointer(rebasing: bytes[(first + 1)..<second])
        let signatureBytes = UnsafeRawBufferPointer(rebasing: bytes[(second + 1)...])

        let headerJSON = try JWSParts.decode(headerBytes, segment: "header")
        let value: JSONValue
        do { value = try parser.parse(headerJSON) } catch let error as JSONParser.Error {
            throw JWSParts.jsonError(error, in: "header")
        }
        guard case .object(let header) = value else {
            throw JOSEError(.header, "header must be a JSON object, got \(value.typeName)")
        }
        self.header = header
        self.payload = try JWSParts.decode(payloadBytes, segment: "payload")
        self.signature = try JWSParts.decode(signatureBytes, segment: "signature")
        self.signingInput = Array(UnsafeRawBufferPointer(rebasing: bytes[0..<second]))
    }

    static func decode(_ segment: UnsafeRawBufferPointer, segment name: String) throws -> [UInt8] {
        do { return try Base64URL.decode(segment) } catch {
            throw JOSEError(.base64, "\(name) segment: \(error)")
        }
    }

    static func jsonError(_ error: JSONParser.Error, in part: String) -> JOSEError {
        switch error.kind {
        case .duplicateMember: JOSEError(.duplicateMember, "\(part): \(error)")
        case .tooDeep: JOSEError(.tooDeep, "\(part): \(error)")
        case .tooManyMembers: JOSEError(.tooManyMembers, "\(part): \(error)")
        case .syntax, .invalidUTF8: JOSEError(.json, "\(part) is not valid JSON: \(error)")
        }
    }

    /// A refresh token or other opaque handle: one run of URL-safe characters, long enough
    /// to be a credential.
    static func looksOpaque(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 16 else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~") || b == UInt8(ascii: "+")
                || b == UInt8(ascii: "/") || b == UInt8(ascii: "=")
        }
    }

    static func describeFiveSegments(_ bytes: UnsafeRawBufferPointer, firstDot: Int) -> String {
        let headerSegment = UnsafeRawBufferPointer(rebasing: bytes[0..<firstDot])
        if let header = try? Base64URL.decode(headerSegment), let json = try? JSONParser().parse(header),
            let object = json.objectValue
        {
            let alg = object["alg"]?.stringValue.map { JOSEHeader.printable($0) } ?? "?"
            let enc = object["enc"]?.stringValue.map { JOSEHeader.printable($0) } ?? "?"
            return
                "JWE (encrypted token, alg \(alg), enc \(enc)): its claims cannot be read without the recipient's decryption key, and tokend does not accept JWE"
        }
        return "5 segments, like a JWE (encrypted token), but its header does not decode; not a JWS"
    }
}

/// A compact JWS whose header passed RFC 8725's rules. The signature is not yet checked.
public struct CompactJWS: Sendable {
    public let parts: JWSParts
    public let header: JOSEHeader

    public init(_ token: String, maxLength: Int = JWSParts.defaultMaxLength) throws {
        let parts = try JWSParts(compact: token, maxLength: maxLength)
        self.parts = parts
        self.header = try JOSEHeader(json: parts.header)
    }

    public init(parts: JWSParts) throws {
        self.parts = parts
        self.header = try JOSEHeader(json: parts.header)
    }

    /// Verifies the signature with `key`. The key's algorithm must be the header's.
    public func verifySignature(with key: VerifyingKey) throws {
        guard key.algorithm == header.algorithm else {
            throw JOSEError(
                .algKeyMismatch,
                "token alg \(header.algorithm) does not match the key's alg \(key.algorithm)"
            )
        }
        let valid: Bool
        do {
            valid = try parts.signature.withUnsafeBytes { s in
                try parts.signingInput.withUnsafeBytes { m in try key.verify(signature: s, message: m) }
            }
        } catch let error as CryptoError {
            throw JOSEError(.signatureEncoding, "signature: \(error.reason)")
        }
        guard valid else { throw JOSEError(.signature, "signature does not verify with the \(key.algorithm) key") }
    }
}
