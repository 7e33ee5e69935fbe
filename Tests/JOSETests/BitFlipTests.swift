import JOSE
import Testing
import TokenCrypto

/// Every single-bit change to a signed token must make it fail, whatever the algorithm:
/// in the signature bytes, in a character of the header, in a character of the payload.
@Suite("Bit flips")
struct BitFlipTests {
    /// Positions spread over a segment of `count` units: both ends, the middle, thirds.
    static func positions(_ count: Int) -> [Int] {
        Array(
            Set([0, 1, 2, count / 3, count / 2, 2 * count / 3, count - 2, count - 1].filter { $0 >= 0 && $0 < count })
        )
        .sorted()
    }

    static func signedToken(_ algorithm: SignatureAlgorithm) throws -> String {
        try token(TestKeys.signing(algorithm))
    }

    /// Verifies `tampered` and expects a refusal in the signature or malformed category,
    /// from both the verifier and jwt-inspect.
    static func expectFails(_ tampered: String, _ algorithm: SignatureAlgorithm, _ what: String) {
        let verifier = verifier(TestKeys.signing(algorithm))
        let error = #expect(throws: JOSEError.self, "\(algorithm) \(what)") {
            _ = try verifier.verify(tampered, now: testNow)
        }
        if let error {
            #expect(error.category == .signature || error.category == .malformed, "\(algorithm) \(what): \(error.code)")
        }
        let report = TokenInspector(keys: verifier.keys).inspect(tampered, now: testNow)
        #expect(report.exitCode == 3 || report.exitCode == 4, "\(algorithm) \(what): exit \(report.exitCode)")
        #expect(report.signatureVerified == false, "\(algorithm) \(what)")
    }

    @Test("the untouched token verifies", arguments: SignatureAlgorithm.allCases)
    func untouched(algorithm: SignatureAlgorithm) throws {
        let token = try BitFlipTests.signedToken(algorithm)
        let verified = try verifier(TestKeys.signing(algorithm)).verify(token, now: testNow)
        #expect(verified.header.algorithm == algorithm)
        #expect(verified.claims.sub == "user-1")
        let report = TokenInspector(keys: keySet(TestKeys.signing(algorithm))).inspect(token, now: testNow)
        #expect(report.exitCode == 0)
        #expect(report.signatureVerified)
    }

    @Test("flipping any one bit of the signature bytes makes the token fail", arguments: SignatureAlgorithm.allCases)
    func signatureBits(algorithm: SignatureAlgorithm) throws {
        let parts = segments(try BitFlipTests.signedToken(algorithm))
        let signature = try Base64URL.decode(parts[2])
        for index in BitFlipTests.positions(signature.count) {
            for bit in [0, 1, 3, 6, 7] {
                var flipped = signature
                flipped[index] ^= 1 << bit
                let tampered = parts[0] + "." + parts[1] + "." + Base64URL.encode(flipped)
                BitFlipTests.expectFails(tampered, algorithm, "signature byte \(index) bit \(bit)")
            }
        }
    }

    @Test("flipping any one bit of a header character makes the token fail", arguments: SignatureAlgorithm.allCases)
    func headerBits(algorithm: SignatureAlgorithm) throws {
        let token = try BitFlipTests.signedToken(algorithm)
        let headerLength = segments(token)[0].utf8.count
        try BitFlipTests.flipCharacters(of: token, in: 0..<headerLength, algorithm: algorithm, what: "header")
    }

    @Test("flipping any one bit of a payload character makes the token fail", arguments: SignatureAlgorithm.allCases)
    func payloadBits(algorithm: SignatureAlgorithm) throws {
        let token = try BitFlipTests.signedToken(algorithm)
        let parts = segments(token)
        let start = parts[0].utf8.count + 1
        try BitFlipTests.flipCharacters(
            of: token,
            in: start..<(start + parts[1].utf8.count),
            algorithm: algorithm,
            what: "payload"
        )
    }

    static func flipCharacters(
        of token: String,
        in range: Range<Int>,
        algorithm: SignatureAlgorithm,
        what: String
    ) throws {
        let bytes = Array(token.utf8)
        for offset in positions(range.count) {
            let index = range.lowerBound + offset
            for bit in 0..<7 {
                var flipped = bytes
                flipped[index] ^= 1 << bit
                let tampered = String(decoding: flipped, as: UTF8.self)
                expectFails(tampered, algorithm, "\(what) character \(offset) bit \(bit)")
            }
        }
    }

    @Test(
        "a signature moved onto another token of the same key does not verify",
        arguments: SignatureAlgorithm.allCases
    )
    func transplantedSignature(algorithm: SignatureAlgorithm) throws {
        let key = TestKeys.signing(algorithm)
        let first = segments(try token(key, claims: claims([("sub", "alice")])))
        let second = segments(try token(key, claims: claims([("sub", "mallory")])))
        let spliced = second[0] + "." + second[1] + "." + first[2]
        expectTokenRefused(spliced, .signature, key: key)
    }
}
