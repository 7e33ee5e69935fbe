import Foundation
import Testing
import TokenCrypto

@testable import JOSE

/// The verifier's hot path (`JSONScanner`, `JWTVerifier.verifyFast`) against the tree-based
/// reference (`JSONParser`, `JWTClaims`, `CompactJWS`, `verifyTree`, `TokenInspector`) on
/// corpora of generated and randomly mutated documents and tokens. The two must accept the
/// same tokens, refuse the others with the same error code, and read the same values.
@Suite("Fast path against the tree parser")
struct FastPathDifferentialTests {
    // MARK: JSON documents

    @Test("the scanner accepts a document only when JSONParser does, and every simple one it does")
    func scannerAgreesWithParser() {
        var random = SplitMix64(seed: 0x5EED_0001)
        var accepted = 0
        for round in 0..<12_000 {
            var document = Corpus.document(&random)
            if round % 4 != 0 { document = Corpus.mutate(document, &random) }
            if expectScannerAgrees(document) { accepted += 1 }
        }
        // The corpus must exercise acceptance as well as refusal.
        #expect(accepted > 2_000, "only \(accepted) documents accepted")
    }

    @Test("hand-picked documents: escapes, duplicates, nesting, numbers, UTF-8", arguments: Corpus.handPicked)
    func handPickedDocuments(text: String) {
        expectScannerAgrees(Array(text.utf8))
    }

    @Test("hand-picked byte sequences inside a string: overlong, surrogates, truncation, > U+10FFFF")
    func handPickedBytes() {
        let sequences: [[UInt8]] = [
            [0xC0, 0x80], [0xC1, 0xBF], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
            [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xEE, 0x80, 0x80],
            [0xEF, 0xBF, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xFE], [0x80], [0xBF], [0xC2], [0xE2, 0x82],
            [0xF0, 0x9F, 0x98], [0xEF, 0xBB, 0xBF], [0x7F], [0x1F], [0x00],
        ]
        for sequence in sequences {
            for prefix in [[], Array("abcdefgh".utf8), Array("abc".utf8)] {
                let document = Array("{\"a\":\"".utf8) + prefix + sequence + Array("x\",\"b\":1}".utf8)
                expectScannerAgrees(document)
                let name = Array("{\"".utf8) + prefix + sequence + Array("\":1}".utf8)
                expectScannerAgrees(name)
            }
        }
    }

    @Test("the UTF-8 check is String(validating:)'s, for every 1- and 2-byte sequence and many longer ones")
    func utf8Validation() {
        func fastValid(_ bytes: [UInt8]) -> Bool {
            bytes.withUnsafeBufferPointer { buffer in
                var i = 0
                while i < buffer.count {
                    if buffer[i] < 0x80 {
                        i += 1
                        continue
                    }
                    guard let next = JSONScanner.endOfUTF8Sequence(buffer.baseAddress!, at: i, count: buffer.count)
                    else {
                        return false
                    }
                    i = next
                }
                return true
            }
        }
        func check(_ bytes: [UInt8]) {
            let expected = String(validating: bytes, as: UTF8.self) != nil
            #expect(fastValid(bytes) == expected, "\(bytes.map { String($0, radix: 16) })")
        }
        for a in 0...255 {
            check([UInt8(a)])
            for b in 0...255 { check([UInt8(a), UInt8(b)]) }
        }
        var random = SplitMix64(seed: 0x5EED_0002)
        let leads: [UInt8] = [0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xC2, 0xDF]
        for _ in 0..<60_000 {
            let length = Int.random(in: 3...6, using: &random)
            var bytes = [leads.randomElement(using: &random)!]
            for _ in 1..<length {
                bytes.append(
                    Bool.random(using: &random)
                        ? UInt8.random(in: 0x80...0xBF, using: &random) : UInt8.random(in: 0...255, using: &random)
                )
            }
            check(bytes)
        }
    }

    @Test("Base64URL.decode(_:into:) decodes and refuses exactly what decode(_:) does")
    func base64IntoBuffer() {
        var random = SplitMix64(seed: 0x5EED_0006)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for round in 0..<40_000 {
            var text: [UInt8]
            if round % 2 == 0 {
                text = Array(
                    Base64URL.encode(
                        (0..<Int.random(in: 0...90, using: &random)).map { _ in
                            UInt8.random(in: 0...255, using: &random)
                        }
                    ).utf8
                )
            } else {
                text = (0..<Int.random(in: 0...90, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
            }
            if round % 3 == 0, !text.isEmpty {
                text[Int.random(in: 0..<text.count, using: &random)] = Array("=+/ .\n\u{0}\u{80}\u{FF}A_".utf8)
                    .randomElement(using: &random)!
            }
            let reference = text.withUnsafeBytes { try? Base64URL.decode($0) }
            let slack = Int.random(in: 0...9, using: &random)
            let decoded: [UInt8]? = text.withUnsafeBytes { input in
                guard let length = Base64URL.decodedLength(ofEncodedLength: input.count) else { return nil }
                var out = [UInt8](repeating: 0xAA, count: length + slack)
                let written = out.withUnsafeMutableBytes { Base64URL.decode(input, into: $0) }
                return written.map { Array(out[..<$0]) }
            }
            #expect(decoded == reference, "\(String(decoding: text, as: UTF8.self).debugDescription)")
        }
    }

    @Test("the registered claim names are recognised by their exact bytes, length included")
    func registeredNames() {
        for name in JWTClaims.RegisteredName.allCases {
            let text = "\(name)"
            var copy = text
            let recognised = copy.withUTF8 { JWTClaims.RegisteredName(bytes: UnsafeRawBufferPointer($0)) }
            #expect(recognised == name, "\(text)")
            #expect(JWTClaims.RegisteredName(text) == name)
        }
        for miss in ["\u{0}iss", "iss\u{0}", "is", "issx", "Iss", "scopes", "scop", "ex p", "sub ", "k"] {
            #expect(JWTClaims.RegisteredName(miss) == nil, "\(miss.debugDescription)")
        }
    }

    // MARK: Claim sets

    @Test("scanned claims have the values JWTClaims(payload:) has, or the scanner leaves them to it")
    func claimsAgree() throws {
        var random = SplitMix64(seed: 0x5EED_0003)
        var scannedCount = 0
        for round in 0..<10_000 {
            var payload = Corpus.claims(&random)
            if round % 3 != 0 { payload = Corpus.mutate(payload, &random) }
            if try expectClaimsAgree(payload) { scannedCount += 1 }
        }
        #expect(scannedCount > 1_500, "only \(scannedCount) claim sets scanned")
    }

    // MARK: Tokens

    @Test("verify and verifyTree accept the same tokens and refuse the others with the same code")
    func tokensAgree() throws {
        var random = SplitMix64(seed: 0x5EED_0004)
        var accepted = 0
        var decidedFast = 0
        for round in 0..<6_000 {
            var header = Corpus.header(&random)
            var payload = Corpus.claims(&random)
            switch round % 5 {
            case 0: header = Corpus.mutate(header, &random)
            case 1, 2: payload = Corpus.mutate(payload, &random)
            default: break
            }
            let token = try FastPathDifferentialTests.signed(header: header, payload: payload)
            for verifier in FastPathDifferentialTests.verifiers {
                if try expectVerifiersAgree(token, verifier) { accepted += 1 }
                var text = token
                if (try? text.withUTF8({ try verifier.verifyFast(UnsafeRawBufferPointer($0), now: testNow) })) != nil {
                    decidedFast += 1
                }
            }
        }
        #expect(accepted > 1_000, "only \(accepted) tokens accepted")
        #expect(decidedFast > 800, "only \(decidedFast) tokens accepted on the fast path")
    }

    @Test("mutated token text (dots, base64url, padding, length, signature) is judged alike")
    func tokenTextAgrees() throws {
        var random = SplitMix64(seed: 0x5EED_0005)
        let base = try FastPathDifferentialTests.signed(
            header: Array(#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#.utf8),
            payload: Array(claimsText().utf8)
        )
        for _ in 0..<4_000 {
            var bytes = Array(base.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let alphabet = Array("AZaz09-_.=+/ \n~\"".utf8)
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[index] = alphabet.randomElement(using: &random)!
                case 1: bytes.remove(at: index)
                case 2: bytes.insert(alphabet.randomElement(using: &random)!, at: index)
                default: bytes = Array(bytes[..<index])
                }
                if bytes.isEmpty { break }
            }
            let token = String(decoding: bytes, as: UTF8.self)
            for verifier in FastPathDifferentialTests.verifiers { try expectVerifiersAgree(token, verifier) }
        }
    }

    @Test(
        "every header member the rules look at sends the header to the tree parser, with the same verdict",
        arguments: [
            #""crit":["exp"]"#, #""crit":[]"#, #""b64":true"#, #""b64":false"#, #""zip":"DEF""#, #""enc":"A256GCM""#,
            #""jwk":{"kty":"oct"}"#, #""jku":"https://x""#, #""x5u":"https://x""#, #""x5c":["AA"]"#, #""x5t":"AA""#,
            #""x5t#S256":"AA""#, #""kid":1"#, #""typ":null"#, #""cty":[]"#, #""alg":"none""#, #""Alg":"HS256""#,
            #""cty":"JWT""#, #""x5t#S25":"AA""#, #""crits":1"#,
        ]
    )
    func headerMembers(member: String) throws {
        let header = "{\"alg\":\"HS256\",\"kid\":\"k1\",\(member)}"
        let token = try FastPathDifferentialTests.signed(header: Array(header.utf8), payload: Array(claimsText().utf8))
        for verifier in FastPathDifferentialTests.verifiers { try expectVerifiersAgree(token, verifier) }
    }

    @Test("every signature algorithm, a flipped bit, a wrong key, a revoked or unknown kid: the same verdict")
    func signaturesAgree() throws {
        for algorithm in SignatureAlgorithm.allCases {
            let key = TestKeys.signing(algorithm)
            let good = try JWSSigner(key: key, kid: "k1").sign(claims: claims())
            let flipped = try flip(good)
            let keys = [
                KeySet([KeySet.Entry(kid: "k1", key: key.verifyingKey, state: .current, source: "test")]),
                KeySet([KeySet.Entry(kid: "k1", key: key.verifyingKey, state: .revoked, source: "test")]),
                KeySet([KeySet.Entry(kid: "k2", key: key.verifyingKey, source: "test")]),
                KeySet([KeySet.Entry(kid: nil, key: key.verifyingKey, source: "test")]),
                KeySet([KeySet.Entry(kid: "k1", key: TestKeys.attackerES256.verifyingKey, source: "test")]),
            ]
            for set in keys {
                for token in [good, flipped] {
                    try expectVerifiersAgree(token, JWTVerifier(keys: set, options: ValidationOptions(leeway: 30)))
                }
            }
            #expect(try JWTVerifier(keys: keys[0]).verify(good, now: testNow).claims.sub == "user-1")
        }
    }

    @Test("RS256 accepts exactly the PKCS#1 v1.5 encodings OpenSSL's RSA_verify accepts")
    func rs256Encodings() throws {
        // Signatures made with the raw private key over hand-built encoded messages; the
        // fixture records what `openssl pkeyutl -verify -pkeyopt digest:sha256` said of each.
        let fixture = try Fixtures.json("rs256-pkcs1-cases.json")
        let pem = try #require(fixture["publicKeyPEM"]?.stringValue)
        let key = try VerifyingKey(pem: pem, algorithm: .rs256)
        let verifier = JWTVerifier(keys: KeySet([KeySet.Entry(kid: nil, key: key, source: "fixture")]))
        let cases = try #require(fixture["cases"]?.arrayValue)
        #expect(cases.count >= 8)
        for item in cases {
            let name = item["name"]?.stringValue ?? "?"
            let token = try #require(item["token"]?.stringValue)
            let expected = try #require(item["opensslRSAVerify"]?.boolValue as Bool?)
            let accepted = (try? verifier.verify(token, now: testNow)) != nil
            #expect(accepted == expected, "\(name)")
            try expectVerifiersAgree(token, verifier)
        }
    }

    @Test(
        "escaped names that decode to a registered name are duplicates, as in the tree parser",
        arguments: [
            #"{"sub":"a","\u0073ub":"b","exp":1700000600}"#, #"{"\u0069ss":"x","iss":"y","exp":1700000600}"#,
            #"{"exp":1700000600,"ex\u0070":1}"#, #"{"aud":"api","a\u0075d":"api","exp":1700000600}"#,
            #"{"exp":1700000600,"n":{"k":1,"\u006b":2}}"#,
        ]
    )
    func escapedDuplicates(payload: String) throws {
        let token = try FastPathDifferentialTests.signed(
            header: Array(#"{"alg":"HS256","kid":"k1"}"#.utf8),
            payload: Array(payload.utf8)
        )
        let verifier = JWTVerifier(keys: keySet(TestKeys.hs256))
        expectRefusal(.duplicateMember) { _ = try verifier.verify(token, now: testNow) }
        try expectVerifiersAgree(token, verifier)
    }

    @Test("names equal by canonical equivalence are duplicates; iss and aud compare as Strings do")
    func canonicalEquivalence() throws {
        let header = Array(#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#.utf8)
        let precomposed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        let duplicate = "{\"\(precomposed)\":1,\"\(decomposed)\":2,\"exp\":1700000600}"
        let token = try FastPathDifferentialTests.signed(header: header, payload: Array(duplicate.utf8))
        expectRefusal(.duplicateMember) {
            _ = try JWTVerifier(keys: keySet(TestKeys.hs256)).verify(token, now: testNow)
        }

        let claims = "{\"iss\":\"\(decomposed)\",\"aud\":[\"\(decomposed)\"],\"exp\":1700000600}"
        let signed = try FastPathDifferentialTests.signed(header: header, payload: Array(claims.utf8))
        let options = ValidationOptions(issuer: precomposed, audience: precomposed, requiredType: "AT+JWT")
        let verifier = JWTVerifier(keys: keySet(TestKeys.hs256), options: options)
        #expect(try verifier.verify(signed, now: testNow).claims.iss == decomposed)
        try expectVerifiersAgree(signed, verifier)
        // A kid in the token that equals a kid in the key set only as Strings do.
        let kidToken = try FastPathDifferentialTests.signed(
            header: Array(#"{"alg":"HS256","kid":"K"}"#.utf8),
            payload: Array(#"{"exp":1700000600}"#.utf8)
        )
        for kid in ["\u{212A}", "K", "k", "KK"] {
            let set = KeySet([KeySet.Entry(kid: kid, key: TestKeys.hs256.verifyingKey, source: "test")])
            try expectVerifiersAgree(kidToken, JWTVerifier(keys: set))
        }
        #expect(
            try JWTVerifier(
                keys: KeySet([KeySet.Entry(kid: "\u{212A}", key: TestKeys.hs256.verifyingKey, source: "test")])
            )
            .verify(kidToken, now: testNow).key.kid == "\u{212A}"
        )
        let kelvin = "{\"iss\":\"\u{212A}\",\"exp\":1700000600}"  // KELVIN SIGN, canonically "K"
        let kelvinToken = try FastPathDifferentialTests.signed(header: header, payload: Array(kelvin.utf8))
        try expectVerifiersAgree(
            kelvinToken,
            JWTVerifier(keys: keySet(TestKeys.hs256), options: ValidationOptions(issuer: "K"))
        )
    }

    @Test("empty strings: iss, aud and typ compare like any other text")
    func emptyStrings() throws {
        let claims = #"{"iss":"","aud":["","api"],"sub":"","exp":1700000600}"#
        for header in [#"{"alg":"HS256","kid":"k1","typ":""}"#, #"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#] {
            let token = try FastPathDifferentialTests.signed(header: Array(header.utf8), payload: Array(claims.utf8))
            for (issuer, audience, type) in [("", "", ""), ("x", "api", "at+jwt"), ("", "api", "AT+JWT")] {
                let options = ValidationOptions(issuer: issuer, audience: audience, requiredType: type)
                try expectVerifiersAgree(token, JWTVerifier(keys: keySet(TestKeys.hs256), options: options))
            }
        }
    }

    @Test("nesting up to the limit is scanned; one level more is refused as too deep")
    func nesting() throws {
        for depth in [15, 16, 17, 40] {
            let nested = String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1)
            let payload = "{\"exp\":1700000600,\"n\":\(nested.isEmpty ? "1" : nested)}"
            expectScannerAgrees(Array(payload.utf8))
            let objects =
                String(repeating: "{\"a\":", count: depth - 1) + "1" + String(repeating: "}", count: depth - 1)
            let objectPayload = "{\"exp\":1700000600,\"n\":\(objects)}"
            expectScannerAgrees(Array(objectPayload.utf8))
            for text in [payload, objectPayload] {
                let token = try FastPathDifferentialTests.signed(
                    header: Array(#"{"alg":"HS256","kid":"k1"}"#.utf8),
                    payload: Array(text.utf8)
                )
                let verifier = JWTVerifier(keys: keySet(TestKeys.hs256))
                try expectVerifiersAgree(token, verifier)
                if depth > 16 { expectRefusal(.tooDeep) { _ = try verifier.verify(token, now: testNow) } }
            }
        }
    }

    @Test("claims read lazily: json, member(_:) and the registered claims match the tree's")
    func lazyClaims() throws {
        let text =
            #"{"iss":"https://issuer.example","sub":"user-1","aud":["api","other"],"exp":1700000600,"iat":1699999940,"#
            + #""nbf":1699999940,"jti":"j","scope":"read  write","client_id":"c","sid":"s-1","n":{"a":[1,2.5e3,null]},"#
            + #""username":"Jos\#u{E9}","amr":["pwd","otp"]}"#
        let token = try FastPathDifferentialTests.signed(
            header: Array(#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#.utf8),
            payload: Array(text.utf8)
        )
        let verifier = JWTVerifier(keys: keySet(TestKeys.hs256))
        let fast = try verifier.verify(token, now: testNow)
        let tree = try verifier.verifyTree(token, now: testNow)
        for name in ["client_id", "sid", "n", "username", "amr", "aud", "exp", "missing", "caf\u{E9}", ""] {
            #expect(fast.claims.member(name) == tree.claims.json[name], "\(name)")
        }
        #expect(fast.claims.json == tree.claims.json)
        #expect(fast.claims.member("sid") == .string("s-1"), "member after json uses the built tree")
        #expect(fast.claims.scope == ["read", "write"])
        #expect(fast.header.json == tree.header.json)
    }

    // MARK: Helpers

    static let now = testNow

    /// Verifiers with and without identity checks, so claim sets reach every check.
    static let verifiers: [JWTVerifier] = [
        JWTVerifier(keys: keySet(TestKeys.hs256), options: ValidationOptions(requireExpiration: false)),
        JWTVerifier(
            keys: keySet(TestKeys.hs256),
            options: ValidationOptions(
                leeway: 30,
                issuer: "https://issuer.example",
                audience: "api",
                requiredType: "at+jwt",
                policy: .oneHour
            )
        ),
    ]

    static func signed(header: [UInt8], payload: [UInt8]) throws -> String {
        let input = Base64URL.encode(header) + "." + Base64URL.encode(payload)
        return input + "." + Base64URL.encode(try TestKeys.hs256.sign(Array(input.utf8)))
    }

    func flip(_ token: String) throws -> String {
        var parts = segments(token)
        var signature = try Base64URL.decode(parts[2])
        signature[signature.count / 2] ^= 0x01
        parts[2] = Base64URL.encode(signature)
        return parts.joined(separator: ".")
    }

    /// Checks the scanner against the parser; returns whether the scanner accepted.
    @discardableResult
    func expectScannerAgrees(_ document: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let scanned = document.withUnsafeBytes { JSONScanner.scanObject($0, maxDepth: 16) { _, _ in true } }
        let parsed = try? JSONParser().parse(document)
        let shown = String(decoding: document.prefix(300), as: UTF8.self).debugDescription
        if scanned {
            #expect(
                parsed?.objectValue != nil,
                "scanner accepted what the parser refuses: \(shown)",
                sourceLocation: sourceLocation
            )
        } else if let value = parsed, case .object = value, !document.contains(UInt8(ascii: "\\")),
            Corpus.simpleNames(value)
        {
            Issue.record(
                "scanner refused a document without escapes that the parser accepts: \(shown)",
                sourceLocation: sourceLocation
            )
        }
        return scanned
    }

    /// Checks `scanClaims` against `JWTClaims(payload:)`; returns whether it scanned.
    @discardableResult
    func expectClaimsAgree(_ payload: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        let scanned = payload.withUnsafeBytes { JWTVerifier.scanClaims($0) }.map {
            JWTClaims(scanned: $0, in: ScannedToken.copying(payload, headerLength: 0, registered: $0.registered))
        }
        let reference = Result { try JWTClaims(payload: payload) }
        let shown = String(decoding: payload.prefix(300), as: UTF8.self).debugDescription
        guard let scanned else {
            if case .success = reference, !payload.contains(UInt8(ascii: "\\")),
                let value = try? JSONParser().parse(payload), Corpus.simpleNames(value)
            {
                Issue.record("scanClaims left a simple claim set to the tree: \(shown)", sourceLocation: sourceLocation)
            }
            return false
        }
        guard case .success(let tree) = reference else {
            Issue.record("scanned claims the tree refuses: \(shown)", sourceLocation: sourceLocation)
            return true
        }
        expectSameClaims(scanned, tree, shown, sourceLocation: sourceLocation)
        return true
    }

    func expectSameClaims(_ fast: JWTClaims, _ tree: JWTClaims, _ shown: String, sourceLocation: SourceLocation) {
        #expect(fast.iss == tree.iss, "iss of \(shown)", sourceLocation: sourceLocation)
        #expect(fast.sub == tree.sub, "sub of \(shown)", sourceLocation: sourceLocation)
        #expect(fast.jti == tree.jti, "jti of \(shown)", sourceLocation: sourceLocation)
        #expect(fast.aud == tree.aud, "aud of \(shown)", sourceLocation: sourceLocation)
        #expect(fast.scope == tree.scope, "scope of \(shown)", sourceLocation: sourceLocation)
        #expect(
            fast.scopeText == tree.scope.map { $0.joined(separator: " ") },
            "scope text of \(shown)",
            sourceLocation: sourceLocation
        )
        #expect(
            tree.scopeText == tree.scope.map { $0.joined(separator: " ") },
            "scope text of \(shown)",
            sourceLocation: sourceLocation
        )
        #expect(fast.exp == tree.exp, "exp of \(shown)", sourceLocation: sourceLocation)
        #expect(fast.nbf == tree.nbf, "nbf of \(shown)", sourceLocation: sourceLocation)
        #expect(fast.iat == tree.iat, "iat of \(shown)", sourceLocation: sourceLocation)
        #expect(fast.lifetime == tree.lifetime, "lifetime of \(shown)", sourceLocation: sourceLocation)
        for name in tree.json.keys + ["absent", "client_id"] {
            #expect(fast.member(name) == tree.json[name], "member \(name) of \(shown)", sourceLocation: sourceLocation)
        }
        #expect(fast.json == tree.json, "json of \(shown)", sourceLocation: sourceLocation)
    }

    /// `verify` (fast path), `verifyTree` and `TokenInspector` on one token: the same
    /// verdict, the same error code, the same values. Returns whether it was accepted.
    @discardableResult
    func expectVerifiersAgree(
        _ token: String,
        _ verifier: JWTVerifier,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Bool {
        let fast = Result { try verifier.verify(token, now: FastPathDifferentialTests.now) }
        let tree = Result { try verifier.verifyTree(token, now: FastPathDifferentialTests.now) }
        let report = TokenInspector(keys: verifier.keys, options: verifier.options).inspect(
            token,
            now: FastPathDifferentialTests.now
        )
        let shown = token.prefix(200).debugDescription
        switch (fast, tree) {
        case (.success(let f), .success(let t)):
            expectSameClaims(f.claims, t.claims, shown, sourceLocation: sourceLocation)
            #expect(f.header.algorithm == t.header.algorithm, sourceLocation: sourceLocation)
            #expect(
                f.header.kid == t.header.kid && f.header.typ == t.header.typ && f.header.cty == t.header.cty,
                sourceLocation: sourceLocation
            )
            #expect(f.header.embeddedKeyMembers == t.header.embeddedKeyMembers, sourceLocation: sourceLocation)
            #expect(f.header.json == t.header.json, sourceLocation: sourceLocation)
            #expect(f.key.kid == t.key.kid, sourceLocation: sourceLocation)
            #expect(
                report.failures.isEmpty,
                "the inspector refuses what verify accepts: \(report.verdict) \(shown)",
                sourceLocation: sourceLocation
            )
            return true
        case (.failure(let f), .failure(let t)):
            let fastError = f as? JOSEError
            let treeError = t as? JOSEError
            #expect(fastError != nil && treeError != nil, "\(f) / \(t)", sourceLocation: sourceLocation)
            #expect(
                fastError?.code == treeError?.code,
                "fast \(fastError?.code.name ?? "\(f)") (\(fastError?.reason ?? "")), tree \(treeError?.code.name ?? "\(t)") (\(treeError?.reason ?? "")) for \(shown)",
                sourceLocation: sourceLocation
            )
            #expect(fastError?.reason == treeError?.reason, "\(shown)", sourceLocation: sourceLocation)
            if let code = fastError?.code, !report.nonJSONPayload {
                #expect(
                    report.failures.contains { $0.code == code },
                    "the inspector does not report \(code.name): \(report.verdict) for \(shown)",
                    sourceLocation: sourceLocation
                )
            }
            return false
        case (.success, .failure(let t)):
            Issue.record("fast path accepted what the tree refuses (\(t)): \(shown)", sourceLocation: sourceLocation)
            return false
        case (.failure(let f), .success):
            Issue.record("fast path refused what the tree accepts (\(f)): \(shown)", sourceLocation: sourceLocation)
            return false
        }
    }
}

/// A small, seeded generator so a failing case can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Generators and mutators for the differential corpora.
enum Corpus {
    static let names = [
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "client_id", "azp", "amr", "sid", "a", "b", "",
        "alg", "kid", "typ", "cty", "crit", "b64", "zip", "enc", "jwk", "x5t#S256", "longer_member_name_here", "K",
    ]
    static let strings = [
        "", "api", "https://issuer.example", "user-1", "read write", " read  write ", "caf\u{E9}", "cafe\u{301}",
        "\u{1F600}", "\u{212A}", "HS256", "ES256", "none", "at+jwt", "application/AT+JWT", "\u{7F}", "a\u{2028}b",
    ]
    static let numbers = [
        "0", "-0", "1", "1700000600", "1699999940", "1700000000", "1.5", "1e3", "1E+3", "2e-3", "-1", "1e400",
        "253402300799", "253402300800", "123456789012345", "1234567890123456", "12345678901234567890", "0.0", "-0.0e0",
    ]
    /// Texts that are often wrong in instructive ways.
    static let handPicked: [String] = [
        "{}", "{ }", " {} ", "{\"a\":1}", "{\"a\":1,}", "{,}", "{\"a\" : 1 , \"b\" : [ ] }", "{\"a\":1}x", "{\"a\":1} ",
        "[]", "\"a\"", "1", "null", "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+}",
        "{\"a\":-01}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}", "{\"a\":NaN}", "{\"a\":Infinity}",
        "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud83d\\ude00\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}", "{\"a\":{\"b\":1,\"b\":2}}",
        "{\"a\":{\"b\":1},\"b\":{\"a\":1}}",
        "{\"a\":[{\"b\":1},{\"b\":2}]}", "{\"a\":\"\t\"}", "{\"a\":\"\n\"}", "{\"a\"\n:\n1\n}", "{\"a\":1}\u{0}",
        "\u{FEFF}{}", "{\"\u{E9}\":1,\"e\u{301}\":2}", "{\"\u{212A}\":1,\"K\":2}", "{\"a\":\"", "{\"a\":", "{\"a\"",
        "{",
        "{\"exp\":1,\"exp\":1}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":[1 2]}", "{\"a\":{\"b\"}}", "{\"a\":{1:2}}",
    ]

    static func document(_ random: inout SplitMix64) -> [UInt8] {
        Array(object(&random, depth: 1, top: true).utf8)
    }

    static func claims(_ random: inout SplitMix64) -> [UInt8] {
        var members: [String] = []
        func add(_ name: String, _ value: String) { members.append("\"\(name)\":\(value)") }
        // Half the claim sets are clean (every registered claim of the right type, in time),
        // half have a wrong type or value here and there.
        let clean = Bool.random(using: &random)
        let pick = { (random: inout SplitMix64) in clean ? 0 : Int.random(in: 0..<10, using: &random) }
        if pick(&random) < 9 { add("iss", pick(&random) < 8 ? "\"https://issuer.example\"" : value(&random, depth: 2)) }
        if pick(&random) < 9 { add("sub", pick(&random) < 8 ? "\"user-1\"" : value(&random, depth: 2)) }
        if pick(&random) < 9 {
            let auds = ["\"api\"", "[\"other\",\"api\"]", "[]", "[\"api\",1]", "\"other\"", "[\"caf\u{E9}\",\"api\"]"]
            add("aud", pick(&random) < 8 ? auds.randomElement(using: &random)! : value(&random, depth: 2))
        }
        for (name, base) in [("iat", -60), ("nbf", -60), ("exp", 600)] where pick(&random) < 9 {
            let skew =
                pick(&random) < 8
                ? Int.random(in: -20...20, using: &random) : Int.random(in: -4000...4000, using: &random)
            let fine = String(Int(testNow) + base + skew)
            add(
                name,
                pick(&random) < 8
                    ? fine : (pick(&random) < 5 ? numbers.randomElement(using: &random)! : value(&random, depth: 2))
            )
        }
        if pick(&random) < 8 { add("jti", pick(&random) < 8 ? "\"jti-\(pick(&random))\"" : value(&random, depth: 2)) }
        if pick(&random) < 8 {
            let scopes = [
                "\"read write\"", "[\"read\",\"write\"]", "\" read  write \"", "[]", "\"r\u{E9}ad w\"",
                "\"a \u{301}b\"",
            ]
            add("scope", pick(&random) < 8 ? scopes.randomElement(using: &random)! : value(&random, depth: 2))
        }
        let extras = ["client_id", "azp", "amr", "sid", "username", "n", "", "K", "longer_member_name_here"]
        for name in extras.shuffled(using: &random).prefix(Int.random(in: 0...4, using: &random)) {
            add(pick(&random) < 9 ? name : names.randomElement(using: &random)!, value(&random, depth: 2))
        }
        members.shuffle(using: &random)
        return Array(("{" + members.joined(separator: ",") + "}").utf8)
    }

    static func header(_ random: inout SplitMix64) -> [UInt8] {
        var members = ["\"alg\":\"HS256\""]
        if Int.random(in: 0..<10, using: &random) < 8 { members.append("\"kid\":\"k1\"") }
        if Int.random(in: 0..<10, using: &random) < 8 {
            members.append(
                "\"typ\":\(["\"at+jwt\"", "\"application/at+JWT\"", "\"JWT\"", "1"].randomElement(using: &random)!)"
            )
        }
        if Int.random(in: 0..<10, using: &random) < 2 {
            let extra = [
                "\"cty\":\"JWT\"", "\"crit\":[\"exp\"]", "\"b64\":true", "\"b64\":false", "\"zip\":\"DEF\"",
                "\"x5t#S256\":\"a\"",
                "\"jwk\":{}", "\"custom\":[1,{\"a\":null}]", "\"alg\":\"none\"", "\"kid\":\"k2\"",
            ]
            members.append(extra.randomElement(using: &random)!)
        }
        if Int.random(in: 0..<10, using: &random) < 1 {
            members[0] =
                "\"alg\":\(["\"none\"", "\"hs256\"", "\"ES256\"", "\"HS256 \"", "\"HS\u{E9}56\"", "null", "\"\""].randomElement(using: &random)!)"
        }
        members.shuffle(using: &random)
        return Array(("{" + members.joined(separator: ",") + "}").utf8)
    }

    static func object(_ random: inout SplitMix64, depth: Int, top: Bool = false) -> String {
        let count = Int.random(in: 0...(top ? 8 : 4), using: &random)
        var used = Set<String>()
        var members: [String] = []
        for _ in 0..<count {
            let name = names.randomElement(using: &random)!
            guard used.insert(name).inserted || Int.random(in: 0..<20, using: &random) == 0 else { continue }
            members.append("\"\(name)\":" + value(&random, depth: depth + 1))
        }
        return "{" + members.joined(separator: whitespace(&random) + "," + whitespace(&random)) + "}"
    }

    static func value(_ random: inout SplitMix64, depth: Int) -> String {
        let choice = Int.random(in: 0..<(depth > 18 ? 6 : 9), using: &random)
        switch choice {
        case 0, 1: return "\"" + strings.randomElement(using: &random)! + "\""
        case 2, 3: return numbers.randomElement(using: &random)!
        case 4: return ["true", "false", "null"].randomElement(using: &random)!
        case 5: return "\"" + String(repeating: "x", count: Int.random(in: 0...40, using: &random)) + "\""
        case 6, 7:
            let items = (0..<Int.random(in: 0...3, using: &random)).map { _ in value(&random, depth: depth + 1) }
            return "[" + items.joined(separator: ",") + "]"
        default: return object(&random, depth: depth)
        }
    }

    static func whitespace(_ random: inout SplitMix64) -> String {
        Int.random(in: 0..<8, using: &random) == 0 ? [" ", "\n", "\t", "\r", "  "].randomElement(using: &random)! : ""
    }

    /// One to three byte-level edits, biased towards JSON's structural characters, escapes
    /// and bytes that are invalid in UTF-8 or strings.
    static func mutate(_ document: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var bytes = document
        let interesting =
            Array("{}[],:\" \t\n\\u0123456789eE.+-tfnlsr".utf8) + [
                0x00, 0x1F, 0x7F, 0x80, 0xBF, 0xC3, 0xA9, 0xED, 0xF4, 0xFF,
            ]
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let byte =
                Bool.random(using: &random)
                ? interesting.randomElement(using: &random)! : UInt8.random(in: 0...255, using: &random)
            guard !bytes.isEmpty else {
                bytes = [byte]
                continue
            }
            let index = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<7, using: &random) {
            case 0: bytes[index] = byte
            case 1: bytes.remove(at: index)
            case 2: bytes.insert(byte, at: index)
            case 3:
                // Duplicate a slice (often a member) next to itself.
                let end = min(bytes.count, index + Int.random(in: 1...24, using: &random))
                bytes.insert(contentsOf: bytes[index..<end], at: end)
            case 4:
                // Escape a letter: "sub" → "\u0073ub".
                if let letter = bytes[index...].firstIndex(where: { $0 >= 0x61 && $0 <= 0x7A }) {
                    let hex = Array(String(format: "\\u%04x", bytes[letter]).utf8)
                    bytes.replaceSubrange(letter...letter, with: hex)
                }
            case 5:
                // Wrap a value in an array or an object.
                let open = Bool.random(using: &random)
                bytes.insert(contentsOf: Array((open ? "[" : "{\"w\":").utf8), at: index)
                let close = min(bytes.count, index + Int.random(in: 2...12, using: &random))
                bytes.insert(open ? UInt8(ascii: "]") : UInt8(ascii: "}"), at: close)
            default:
                bytes.insert(
                    contentsOf: Array(
                        ["\u{E9}", "e\u{301}", "\u{1F600}", "\u{212A}"].randomElement(using: &random)!.utf8
                    ),
                    at: index
                )
            }
        }
        return bytes
    }

    /// True when every member name is ASCII and no more than 64 names are open at once:
    /// the documents the scanner must accept whenever the parser does (no escapes assumed).
    static func simpleNames(_ value: JSONValue) -> Bool {
        func walk(_ value: JSONValue, open: Int) -> Bool {
            switch value {
            case .object(let object):
                guard open + object.count <= JSONScanner.nameCapacity else { return false }
                var i = 0
                for (key, member) in object {
                    guard key.utf8.allSatisfy({ $0 < 0x80 }), walk(member, open: open + i + 1) else { return false }
                    i += 1
                }
                return true
            case .array(let items): return items.allSatisfy { walk($0, open: open) }
            default: return true
            }
        }
        return walk(value, open: 0)
    }
}
