import JOSE
import Testing
import TokenCrypto

/// What is refused before any key is looked at: size, segments, JWE, opaque tokens,
/// non-canonical base64url, nesting.
@Suite("Token structure")
struct StructureTests {
    @Test("a token longer than the default limit is refused, and one at the limit is parsed")
    func tooLarge() throws {
        let padding = String(repeating: "x", count: JWSParts.defaultMaxLength)
        let big = try token(claims: claims([("pad", .string(padding))]))
        #expect(big.utf8.count > JWSParts.defaultMaxLength)
        expectTokenRefused(big, .tooLarge)

        let normal = try token()
        let exact = try JWSParts(compact: normal, maxLength: normal.utf8.count)
        #expect(exact.header["alg"] == "ES256")
        expectRefusal(.tooLarge) { _ = try JWSParts(compact: normal, maxLength: normal.utf8.count - 1) }
        // The verifier's own limit applies too.
        let options = ValidationOptions(maxTokenLength: normal.utf8.count - 1)
        expectTokenRefused(normal, .tooLarge, options: options)
    }

    @Test("an oversized token of dots or garbage is refused for its size before anything else")
    func tooLargeGarbage() {
        expectTokenRefused(String(repeating: ".", count: 20_000), .tooLarge)
        expectTokenRefused(String(repeating: "A", count: 20_000), .tooLarge)
    }

    @Test("claims nested 100 levels deep are refused")
    func deepClaims() throws {
        let nested = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let payload = claimsText(replacing: "deep", with: "\"deep\":\(nested)")
        let token = try rawToken(header: "{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload: payload, key: TestKeys.es256)
        expectTokenRefused(token, .tooDeep)
        let objects = String(repeating: "{\"a\":", count: 100) + "1" + String(repeating: "}", count: 100)
        let objectPayload = claimsText(replacing: "deep", with: "\"deep\":\(objects)")
        let objectToken = try rawToken(
            header: "{\"alg\":\"ES256\",\"kid\":\"k1\"}",
            payload: objectPayload,
            key: TestKeys.es256
        )
        expectTokenRefused(objectToken, .tooDeep)
    }

    @Test("a header nested 100 levels deep is refused")
    func deepHeader() throws {
        let nested = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let token = try rawToken(
            header: "{\"alg\":\"ES256\",\"kid\":\"k1\",\"x\":\(nested)}",
            payload: claimsText(),
            key: TestKeys.es256
        )
        expectTokenRefused(token, .tooDeep)
    }

    @Test("claims nested a few levels, as dialects do, are accepted")
    func modestNesting() throws {
        let payload = claimsText(replacing: "ext", with: "\"ext\":{\"roles\":[[\"a\",{\"b\":[1,2]}]]}")
        let token = try rawToken(header: "{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload: payload, key: TestKeys.es256)
        #expect(try verifier().verify(token, now: testNow).claims.json["ext"]?["roles"] != nil)
    }

    @Test("a token with 1, 2, 4 or 6 segments is refused", arguments: [1, 2, 4, 6])
    func segmentCount(count: Int) throws {
        let parts = segments(try token())
        let pieces = (0..<count).map { parts[$0 % 3] }
        let text = pieces.joined(separator: ".")
        if count == 1 {
            // A single base64url run is long enough to look like an opaque handle.
            expectTokenRefused(text, .opaque)
        } else {
            expectTokenRefused(text, .segments)
        }
    }

    @Test(
        "empty input, short words and two-part strings are not tokens",
        arguments: ["", "abc", "a.b", "Bearer", ".", "..."]
    )
    func notTokens(text: String) {
        expectTokenRefused(text, .segments, "\(text.debugDescription)")
    }

    @Test("a five-segment JWE is recognised and refused as encrypted")
    func jwe() throws {
        let header = Base64URL.encode(Array("{\"alg\":\"RSA-OAEP\",\"enc\":\"A256GCM\"}".utf8))
        let rest = (0..<4).map { _ in Base64URL.encode(SecureRandom.bytes(24)) }
        let jwe = ([header] + rest).joined(separator: ".")
        let error = expectRefusal(.encrypted) { _ = try verifier().verify(jwe, now: testNow) }
        #expect(error?.reason.contains("RSA-OAEP") == true)
        #expect(error?.reason.contains("A256GCM") == true)
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(jwe, now: testNow)
        #expect(report.kind == .jwe)
        #expect(report.exitCode == 4)
        // Five segments of garbage are refused the same way.
        expectTokenRefused("a.b.c.d.e", .encrypted)
    }

    @Test("an opaque refresh token is recognised as such and refused")
    func opaque() throws {
        let refresh = Base64URL.encode(SecureRandom.bytes(32))
        #expect(refresh.utf8.count == 43)
        let error = expectRefusal(.opaque) { _ = try verifier().verify(refresh, now: testNow) }
        #expect(error?.reason.contains(refresh) == false)
        let report = TokenInspector(keys: keySet(TestKeys.es256)).inspect(refresh, now: testNow)
        #expect(report.kind == .opaque)
        #expect(report.exitCode == 4)
    }

    // MARK: Non-canonical base64url

    /// The token with segment `index` replaced by `transform(segment)`.
    static func replacing(_ token: String, segment index: Int, _ transform: (String) -> String) -> String {
        var parts = segments(token)
        parts[index] = transform(parts[index])
        return parts.joined(separator: ".")
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    /// The segment with its last character changed so that only unused low bits differ.
    static func settingUnusedBits(_ segment: String) -> String? {
        let unusedBits: Int
        switch segment.utf8.count % 4 {
        case 2: unusedBits = 4
        case 3: unusedBits = 2
        default: return nil
        }
        guard let last = segment.last, let value = alphabet.firstIndex(of: last) else { return nil }
        let changed = alphabet[value | ((1 << unusedBits) - 1)]
        return changed == last ? nil : String(segment.dropLast()) + String(changed)
    }

    @Test("padding, +, /, whitespace and impossible lengths in any segment are refused", arguments: [0, 1, 2])
    func nonCanonicalCharacters(index: Int) throws {
        let original = try token()
        let variants: [(String, String)] = [
            ("padding", StructureTests.replacing(original, segment: index) { $0 + "==" }),
            ("single padding", StructureTests.replacing(original, segment: index) { $0 + "=" }),
            ("plus", StructureTests.replacing(original, segment: index) { "+" + $0.dropFirst() }),
            ("slash", StructureTests.replacing(original, segment: index) { "/" + $0.dropFirst() }),
            ("space", StructureTests.replacing(original, segment: index) { $0.prefix(4) + " " + $0.dropFirst(4) }),
            ("newline", StructureTests.replacing(original, segment: index) { $0.prefix(8) + "\n" + $0.dropFirst(8) }),
            ("CRLF", StructureTests.replacing(original, segment: index) { $0.prefix(8) + "\r\n" + $0.dropFirst(8) }),
            ("tab", StructureTests.replacing(original, segment: index) { $0 + "\t" }),
            ("trailing newline", StructureTests.replacing(original, segment: index) { $0 + "\n" }),
            ("non-ASCII", StructureTests.replacing(original, segment: index) { $0.prefix(4) + "é" + $0.dropFirst(5) }),
            (
                "length 4n+1",
                StructureTests.replacing(original, segment: index) {
                    var s = $0
                    while s.utf8.count % 4 != 1 { s += "A" }
                    return s
                }
            ),
        ]
        for (name, variant) in variants {
            #expect(variant != original)
            expectTokenRefused(variant, .base64, "segment \(index): \(name)")
        }
    }

    @Test(
        "a segment whose unused trailing bits are set is refused, though it decodes to the same bytes",
        arguments: SignatureAlgorithm.allCases
    )
    func nonCanonicalTrailingBits(algorithm: SignatureAlgorithm) throws {
        let original = try token(TestKeys.signing(algorithm))
        var tested = 0
        for index in 0..<3 {
            guard let changed = StructureTests.settingUnusedBits(segments(original)[index]) else { continue }
            let variant = StructureTests.replacing(original, segment: index) { _ in changed }
            expectTokenRefused(variant, .base64, key: TestKeys.signing(algorithm), "\(algorithm) segment \(index)")
            tested += 1
        }
        // ES256, ES384, EdDSA, HS256 and RSA-2048 signatures all leave unused bits.
        #expect(tested >= 1)
    }

    @Test("a one-byte segment: Q is canonical, R is not")
    func qVersusR() throws {
        // Header {"alg":"ES256","kid":"k1"} + payload "A" (one byte: "QQ"), signed.
        let header = "{\"alg\":\"ES256\",\"kid\":\"k1\"}"
        let input = Base64URL.encode(Array(header.utf8)) + ".QQ"
        let signature = Base64URL.encode(try TestKeys.es256.sign(Array(input.utf8)))
        let canonical = input + "." + signature
        let parts = try JWSParts(compact: canonical)
        #expect(parts.payload == [0x41])
        let nonCanonical = Base64URL.encode(Array(header.utf8)) + ".QR." + signature
        expectRefusal(.base64) { _ = try JWSParts(compact: nonCanonical) }
        expectTokenRefused(nonCanonical, .base64)
    }

    @Test("an empty payload or signature segment decodes to no bytes and fails later, not as base64")
    func emptySegments() throws {
        let parts = segments(try token())
        let noSignature = parts[0] + "." + parts[1] + "."
        expectTokenRefused(noSignature, .signatureEncoding)
        let noPayload = try rawToken(header: "{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload: "", key: TestKeys.es256)
        expectRefusal(.json) { _ = try verifier().verify(noPayload, now: testNow) }
    }
}
