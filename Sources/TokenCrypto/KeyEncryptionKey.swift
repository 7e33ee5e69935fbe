/// The key-encryption key (KEK) that seals tokend's private signing keys when they are kept
/// in a shared database (DESIGN §10): 32 random bytes every node reads from a file or a
/// systemd credential, so the database alone never yields a usable private key.
///
/// A KEK is never printed: its `description` and mirror show only its fingerprint.
public struct KeyEncryptionKey: Sendable, CustomStringConvertible, CustomReflectable {
    /// The AES-256 key.
    let bytes: [UInt8]

    /// Names this KEK in messages without revealing it: 16 hex digits, the first 8 bytes of
    /// SHA-256 over a domain-separated input (`tokend KEK fingerprint v1`, NUL, the key).
    public let fingerprint: String

    /// The raw fingerprint bytes, as they are stored in a sealed key.
    let fingerprintBytes: [UInt8]

    static let fingerprintDomain = Array("tokend KEK fingerprint v1".utf8) + [0]

    /// How to make a good KEK file, for messages.
    public static func howToMake(_ file: String) -> String {
        "make one with: (umask 077 && head -c 32 /dev/urandom > \(file))"
    }

    /// A KEK from exactly 32 key bytes. Refuses other lengths, bytes that are all printable
    /// ASCII (a passphrase, not random bytes) and all-equal bytes (a zeroed or filled
    /// buffer); `source` names where they came from in the message.
    public init(bytes: [UInt8], source: String = "the key-encryption key") throws {
        guard bytes.count == AES256GCM.keySize else {
            throw CryptoError.weakKeyEncryptionKey(
                "\(source) must be 32 random bytes, raw or as one line of base64; it holds \(bytes.count) bytes; \(KeyEncryptionKey.howToMake(source))"
            )
        }
        if let first = bytes.first, bytes.allSatisfy({ $0 == first }) {
            throw CryptoError.weakKeyEncryptionKey(
                "\(source) holds 32 equal bytes, not random ones; \(KeyEncryptionKey.howToMake(source))"
            )
        }
        if bytes.allSatisfy({ (0x20...0x7E).contains($0) }) {
            throw CryptoError.weakKeyEncryptionKey(
                "\(source) holds 32 printable characters, a passphrase rather than random bytes; \(KeyEncryptionKey.howToMake(source))"
            )
        }
        self.bytes = bytes
        let digest = SHA256.hash(KeyEncryptionKey.fingerprintDomain + bytes)
        fingerprintBytes = Array(digest.prefix(8))
        fingerprint = KeyEncryptionKey.hex(fingerprintBytes)
    }

    /// A KEK from the contents of its file: exactly 32 raw bytes (`head -c 32 /dev/urandom`),
    /// or one line of base64 (standard or url-safe alphabet, padding optional, one trailing
    /// newline allowed) that decodes to 32 bytes. `file` names the file in messages.
    public init(contents: [UInt8], file: String) throws {
        // 32 characters of base64 are 24 bytes, and are told so rather than called a passphrase.
        let base64Text =
            contents.allSatisfy { (0x20...0x7E).contains($0) } && KeyEncryptionKey.decodeBase64(contents[...]) != nil
        if contents.count == AES256GCM.keySize && !base64Text {
            try self.init(bytes: contents, source: file)
            return
        }
        var line = contents[...]
        if line.last == UInt8(ascii: "\n") { line = line.dropLast() }
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        guard let decoded = KeyEncryptionKey.decodeBase64(line) else {
            throw CryptoError.weakKeyEncryptionKey(
                "\(file) must be 32 random bytes, raw or as one line of base64; it holds \(contents.count) bytes that are neither; \(KeyEncryptionKey.howToMake(file))"
            )
        }
        guard decoded.count == AES256GCM.keySize else {
            throw CryptoError.weakKeyEncryptionKey(
                "\(file) holds base64 of \(decoded.count) bytes; a key-encryption key is 32 random bytes; \(KeyEncryptionKey.howToMake(file))"
            )
        }
        try self.init(bytes: decoded, source: file)
    }

    /// Base64 in either alphabet, with or without `=` padding; nil when `text` is not that.
    static func decodeBase64(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var body = Array(text)
        var padding = 0
        while body.last == UInt8(ascii: "=") {
            body.removeLast()
            padding += 1
        }
        guard padding <= 2, padding == 0 || (body.count + padding) % 4 == 0, !body.isEmpty else { return nil }
        let urlSafe = body.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "+"): UInt8(ascii: "-")
            case UInt8(ascii: "/"): UInt8(ascii: "_")
            default: byte
            }
        }
        return try? urlSafe.withUnsafeBytes { try Base64URL.decode($0) }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// "KEK <fingerprint>": safe to log.
    public var description: String { "KEK \(fingerprint)" }

    /// Only the fingerprint, so `dump` and debuggers never show the key.
    public var customMirror: Mirror { Mirror(self, children: ["fingerprint": fingerprint]) }
}
