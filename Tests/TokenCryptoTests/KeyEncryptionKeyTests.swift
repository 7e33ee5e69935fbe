import Foundation
import Testing
import TokenCrypto

/// The key-encryption key (issue 11, item 4): what a KEK file may hold, and private keys
/// sealed under it with AES-256-GCM.
@Suite("Key-encryption key and sealed keys")
struct KeyEncryptionKeyTests {
    static let file = "/etc/tokend/kek"

    /// 32 bytes as random ones look: not all printable, not all equal.
    static let raw: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }

    static func standardBase64(_ bytes: [UInt8]) -> String {
        var text = Base64URL.encode(bytes).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return text
    }

    static func kek(_ bytes: [UInt8] = raw) throws -> KeyEncryptionKey {
        try KeyEncryptionKey(bytes: bytes)
    }

    @Test(
        "a KEK file holds 32 raw bytes or one line of base64 of them, in either alphabet, padded or not",
        arguments: [
            ("raw", raw),
            ("base64", Array(standardBase64(raw).utf8)),
            ("base64 and a newline", Array((standardBase64(raw) + "\n").utf8)),
            ("base64 and CRLF", Array((standardBase64(raw) + "\r\n").utf8)),
            ("base64 without padding", Array(standardBase64(raw).filter { $0 != "=" }.utf8)),
            ("base64url", Array(Base64URL.encode(raw).utf8)),
            ("base64url and a newline", Array((Base64URL.encode(raw) + "\n").utf8)),
        ]
    )
    func accepted(form: String, contents: [UInt8]) throws {
        let kek = try KeyEncryptionKey(contents: contents, file: Self.file)
        #expect(kek.fingerprint == (try Self.kek()).fingerprint, "\(form)")
    }

    @Test(
        "a KEK file weaker than 32 random bytes is refused, naming the file and how to make one",
        arguments: [
            ("31 raw bytes", Array(raw.prefix(31)), "holds 31 bytes"),
            ("33 raw bytes", raw + [0x80], "neither"),
            ("base64 of 16 bytes", Array(Base64URL.encode(raw.prefix(16)).utf8), "base64 of 16 bytes"),
            ("base64 of 24 bytes: 32 characters", Array(Base64URL.encode(raw.prefix(24)).utf8), "base64 of 24 bytes"),
            ("base64 of 48 bytes", Array(Base64URL.encode(raw + raw.prefix(16)).utf8), "base64 of 48 bytes"),
            ("a passphrase of 32 characters", Array("correct horse battery staple 123".utf8), "passphrase"),
            ("all zero", [UInt8](repeating: 0, count: 32), "equal bytes"),
            ("all zero in base64", Array((Base64URL.encode([UInt8](repeating: 0, count: 32)) + "\n").utf8), "equal"),
            ("all 0xFF", [UInt8](repeating: 0xFF, count: 32), "equal bytes"),
            ("two lines of base64", Array((Base64URL.encode(raw) + "\n\n").utf8), "neither"),
            ("base64 with a space", Array((" " + Base64URL.encode(raw)).utf8), "neither"),
            ("empty", [], "holds 0 bytes"),
        ]
    )
    func refused(form: String, contents: [UInt8], says: String) throws {
        let error = try #require(throws: CryptoError.self) {
            try KeyEncryptionKey(contents: contents, file: Self.file)
        }
        #expect(error.code == .weakKeyEncryptionKey, "\(form)")
        #expect(error.reason.contains(Self.file), "\(form): \(error.reason)")
        #expect(error.reason.contains(says), "\(form): \(error.reason)")
        #expect(error.reason.contains("head -c 32 /dev/urandom"), "\(form): \(error.reason)")
    }

    @Test("a KEK is named by its fingerprint and never printed")
    func fingerprint() throws {
        let kek = try Self.kek()
        #expect(kek.fingerprint.count == 16)
        #expect(kek.fingerprint.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        // SHA-256 over the domain-separated key, first 8 bytes.
        let digest = SHA256.hash(Array("tokend KEK fingerprint v1".utf8) + [0] + Self.raw)
        #expect(kek.fingerprint == digest.prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
        #expect(try Self.kek(Self.raw.reversed()).fingerprint != kek.fingerprint)
        // Not the plain SHA-256 of the key, which other tools would print for the same file.
        #expect(!SHA256.hash(Self.raw).prefix(8).map { String($0, radix: 16) }.joined().hasPrefix(kek.fingerprint))
        for text in [
            "\(kek)", String(reflecting: kek),
            {
                var out = ""
                dump(kek, to: &out)
                return out
            }(),
        ] {
            #expect(text.contains(kek.fingerprint))
            #expect(!text.contains(Base64URL.encode(Self.raw)))
            #expect(!text.contains("\(Self.raw)"))
            #expect(!text.contains("\(Self.raw.first!), \(Self.raw[1])"))
        }
    }

    @Test("every algorithm's key survives sealing and opening", arguments: SignatureAlgorithm.allCases)
    func roundTrip(algorithm: SignatureAlgorithm) throws {
        let kek = try Self.kek()
        let key = try SigningKey.generate(algorithm)
        let sealed = try kek.seal(key, kid: "kid-1")
        #expect(sealed.first == KeyEncryptionKey.sealedKeyVersion)
        let opened = try kek.open(sealed, kid: "kid-1", algorithm: algorithm)
        #expect(opened.algorithm == algorithm)
        #expect(try opened.pemEncoded() == key.pemEncoded())
        let message = Array("header.claims".utf8)
        #expect(try key.verifyingKey.verify(signature: opened.sign(message), message: message))
        // Nothing of the key is readable in the sealed form; two seals differ (fresh nonce).
        #expect(!String(decoding: sealed, as: UTF8.self).contains("PRIVATE KEY"))
        #expect(!String(decoding: sealed, as: UTF8.self).contains("HMAC SECRET"))
        #expect(try kek.seal(key, kid: "kid-1") != sealed)
    }

    @Test("a sealed key with any bit flipped does not open")
    func bitFlips() throws {
        let kek = try Self.kek()
        let sealed = try kek.seal(try SigningKey.generate(.es256), kid: "kid-1")
        for index in sealed.indices {
            for bit in [0, 7] {
                var altered = sealed
                altered[index] ^= UInt8(1 << bit)
                let error = try #require(throws: CryptoError.self) {
                    try kek.open(altered, kid: "kid-1", algorithm: .es256)
                }
                #expect([.sealedKey, .wrongKeyEncryptionKey].contains(error.code), "byte \(index) bit \(bit)")
            }
        }
        for length in [0, 1, 9, 20, 36, sealed.count - 1] {
            #expect(throws: CryptoError.self) {
                try kek.open(Array(sealed.prefix(length)), kid: "kid-1", algorithm: .es256)
            }
        }
    }

    @Test("a sealed key moved to another kid or algorithm does not open")
    func boundToKidAndAlgorithm() throws {
        let kek = try Self.kek()
        let sealed = try kek.seal(try SigningKey.generate(.rs256), kid: "kid-1")
        for (kid, algorithm) in [("kid-2", SignatureAlgorithm.rs256), ("kid-1", .ps256), ("kid-", .rs256)] {
            let error = try #require(throws: CryptoError.self) { try kek.open(sealed, kid: kid, algorithm: algorithm) }
            #expect(error.code == .sealedKey)
            #expect(error.reason.contains("sealed for another kid or algorithm"), "\(error.reason)")
        }
        #expect(try kek.open(sealed, kid: "kid-1", algorithm: .rs256).algorithm == .rs256)
    }

    @Test("a node with another KEK is told which KEK the key is sealed under")
    func wrongKEK() throws {
        let sealing = try Self.kek()
        let other = try Self.kek(Self.raw.reversed())
        let sealed = try sealing.seal(try SigningKey.generate(.edDSA), kid: "abc")
        let error = try #require(throws: CryptoError.self) { try other.open(sealed, kid: "abc", algorithm: .edDSA) }
        #expect(error.code == .wrongKeyEncryptionKey)
        #expect(
            error.reason
                == "key abc is sealed under KEK \(sealing.fingerprint), this node's KEK is \(other.fingerprint)"
        )
    }

    @Test("a sealed key of an unknown format version is refused, naming the version")
    func unknownVersion() throws {
        let kek = try Self.kek()
        var sealed = try kek.seal(try SigningKey.generate(.es384), kid: "abc")
        sealed[0] = 2
        let error = try #require(throws: CryptoError.self) { try kek.open(sealed, kid: "abc", algorithm: .es384) }
        #expect(error.code == .sealedKey)
        #expect(error.reason.contains("format version 2"))
    }
}
