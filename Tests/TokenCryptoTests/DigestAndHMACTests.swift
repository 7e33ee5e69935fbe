import Testing
import TokenCrypto

/// Lower-case hex of `bytes`.
func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Bytes of a hex string (test literals only).
func bytes(hex text: String) -> [UInt8] {
    let chars = Array(text.utf8)
    return stride(from: 0, to: chars.count, by: 2).map {
        UInt8(String(decoding: chars[$0..<($0 + 2)], as: UTF8.self), radix: 16)!
    }
}

@Suite("SHA-2 digests, HMAC-SHA256 and constant-time comparison")
struct DigestAndHMACTests {
    /// FIPS 180-4 example messages (NIST CSRC examples).
    static let sha256Vectors: [(message: String, digest: String)] = [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ]

    @Test("SHA-256 matches the FIPS 180-4 examples", arguments: sha256Vectors)
    func sha256(message: String, digest: String) {
        #expect(hex(SHA256.hash(Array(message.utf8))) == digest)
        // A non-contiguous collection hashes the same as an array.
        #expect(hex(SHA256.hash(Array(message.utf8).lazy.map { $0 })) == digest)
    }

    @Test("SHA-384 matches the FIPS 180-4 examples")
    func sha384() {
        #expect(
            hex(SHA384.hash(Array("abc".utf8)))
                == "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
        )
        #expect(
            hex(SHA384.hash([UInt8]()))
                == "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
        )
    }

    /// RFC 4231 test cases 6 and 7: the ones whose key (131 bytes of 0xaa) is long enough for HS256.
    static let rfc4231: [(data: String, mac: String)] = [
        (
            "Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        ),
        (
            "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        ),
    ]

    @Test("HS256 signing is HMAC-SHA256 as in RFC 4231", arguments: rfc4231)
    func hmacKnownAnswer(data: String, mac: String) throws {
        let key = try SigningKey(secret: [UInt8](repeating: 0xAA, count: 131))
        #expect(key.algorithm == .hs256)
        let signature = try key.sign(Array(data.utf8))
        #expect(hex(signature) == mac)
        #expect(try key.verifyingKey.verify(signature: bytes(hex: mac), message: Array(data.utf8)))
        let verifier = try VerifyingKey(secret: [UInt8](repeating: 0xAA, count: 131))
        #expect(try verifier.verify(signature: bytes(hex: mac), message: Array(data.utf8)))
    }

    @Test("an HS256 key signs the same message the same way every time, and a different key differently")
    func hmacIsDeterministicPerKey() throws {
        let message = Array("eyJhbGciOiJIUzI1NiJ9.e30".utf8)
        let key = try SigningKey.generate(.hs256)
        #expect(try key.sign(message) == key.sign(message))
        let other = try SigningKey.generate(.hs256)
        #expect(try key.sign(message) != other.sign(message))
        #expect(try other.verifyingKey.verify(signature: key.sign(message), message: message) == false)
    }

    @Test("an HS256 signature of the wrong length is an encoding error, not a mismatch", arguments: [0, 31, 33, 64])
    func hmacSignatureLength(length: Int) throws {
        let key = try SigningKey.generate(.hs256).verifyingKey
        let error = #expect(throws: CryptoError.self) {
            try key.verify(signature: [UInt8](repeating: 0, count: length), message: [1, 2, 3])
        }
        #expect(error?.code == .signatureEncoding)
    }

    @Test("ConstantTime.equals compares content and length")
    func constantTime() {
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
        #expect(ConstantTime.equals([1, 2, 3] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(ConstantTime.equals([1, 2, 3] as [UInt8], [1, 2, 4] as [UInt8]) == false)
        #expect(ConstantTime.equals([0, 2, 3] as [UInt8], [1, 2, 3] as [UInt8]) == false)
        #expect(ConstantTime.equals([1, 2] as [UInt8], [1, 2, 3] as [UInt8]) == false)
        #expect(ConstantTime.equals([UInt8](), [0] as [UInt8]) == false)
        #expect(ConstantTime.equals(Array("abc".utf8), "abc".utf8))
    }

    @Test("SecureRandom returns the asked number of bytes, different each time")
    func secureRandom() {
        #expect(SecureRandom.bytes(0).isEmpty)
        #expect(SecureRandom.bytes(48).count == 48)
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
    }
}
