import Foundation
import Testing
import TokenCrypto

@Suite("Base64URL")
struct Base64URLTests {
    /// RFC 4648 §10 test vectors, rewritten for the URL-safe alphabet without padding.
    static let rfc4648: [(plain: String, encoded: String)] = [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ]

    /// Foundation's standard base64, turned into unpadded base64url: an independent reference.
    static func reference(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    @Test("encodes and decodes the RFC 4648 test vectors", arguments: rfc4648)
    func rfc4648Vectors(plain: String, encoded: String) throws {
        #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        #expect(try Base64URL.decode(encoded) == Array(plain.utf8))
    }

    @Test("uses - and _ where standard base64 has + and /")
    func urlSafeAlphabet() throws {
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.encode([0xFF, 0xFF, 0xFF]) == "____")
        #expect(try Base64URL.decode("-_8") == [0xFB, 0xFF])
    }

    @Test("round-trips random bytes of every length from 0 to 100 and matches Foundation's encoder")
    func randomRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for length in 0...100 {
            for _ in 0..<4 {
                let bytes = (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
                let encoded = Base64URL.encode(bytes)
                #expect(encoded == Base64URLTests.reference(bytes), "length \(length)")
                #expect(encoded.utf8.count == (length * 4 + 2) / 3, "length \(length)")
                #expect(try Base64URL.decode(encoded) == bytes, "length \(length)")
            }
        }
    }

    @Test("decodes from raw bytes the same as from a string")
    func rawBufferDecoding() throws {
        let text = "Zm9vYmFy"
        let fromBuffer = try Array(text.utf8).withUnsafeBytes { try Base64URL.decode($0) }
        #expect(fromBuffer == Array("foobar".utf8))
    }

    @Test(
        "refuses characters outside the base64url alphabet",
        arguments: [
            "Zm9v=", "Zg==", "Zm8=", "Zm+v", "Zm/v", "Zm 9v", "Zm9\nv", "Zm9v\n", " Zm9v", "Zm9v\t", "Zm.v", "Zm9é",
            "Zm9v\0",
        ]
    )
    func refusesForeignCharacters(text: String) {
        #expect(throws: Base64URL.DecodingError.self) { try Base64URL.decode(text) }
    }

    @Test("reports the offset of the first foreign character")
    func offsetOfForeignCharacter() {
        #expect(throws: Base64URL.DecodingError.invalidCharacter(offset: 2)) { try Base64URL.decode("Zm+v") }
        #expect(throws: Base64URL.DecodingError.invalidCharacter(offset: 5)) { try Base64URL.decode("Zm9vY/E") }
    }

    @Test("refuses a length of 4n+1, which no byte string encodes to", arguments: ["Z", "Zm9vY", "Zm9vYmFyZ"])
    func refusesImpossibleLength(text: String) {
        #expect(throws: Base64URL.DecodingError.invalidLength) { try Base64URL.decode(text) }
    }

    @Test("refuses non-zero unused trailing bits: QQ is canonical for one byte, QR is not")
    func refusesNonCanonicalTrailingBits() throws {
        #expect(try Base64URL.decode("QQ") == [0x41])
        for text in ["QR", "QS", "QT", "QU", "QV", "QW", "QX", "QY", "QZ", "Qa", "Qf"] {
            #expect(throws: Base64URL.DecodingError.nonCanonical, "\(text)") { try Base64URL.decode(text) }
        }
        // Two leftover bytes leave two unused bits: "QUE" is canonical, "QUF".."QUH" are not.
        #expect(try Base64URL.decode("QUE") == [0x41, 0x41])
        for text in ["QUF", "QUG", "QUH"] {
            #expect(throws: Base64URL.DecodingError.nonCanonical, "\(text)") { try Base64URL.decode(text) }
        }
    }

    @Test("gives every byte string exactly one accepted encoding")
    func uniqueEncoding() throws {
        // For each one- and two-byte value, every alternative last character must be refused.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for bytes in [[0x00], [0x7F], [0xFF], [0x12, 0x34], [0xFF, 0xFE]] as [[UInt8]] {
            let canonical = Base64URL.encode(bytes)
            var accepted = 0
            for last in alphabet {
                let candidate = String(canonical.dropLast()) + String(last)
                if let decoded = try? Base64URL.decode(candidate), decoded == bytes { accepted += 1 }
            }
            #expect(accepted == 1, "\(canonical)")
        }
    }
}
