import TokenCrypto

/// The text of a tokend refresh token, as far as anyone but its store can read it. It is
/// opaque to its holder, in one of two forms:
/// - 43 base64url characters: 32 random bytes;
/// - 51 characters: 6 bytes of issue time (milliseconds since 1970, big-endian), then 32
///   random bytes. Its first 8 characters are the time.
///
/// tokend makes and keys tokens through this (TokenService's `RefreshSecret`), and
/// jwt-inspect reads the issue time of the second form through it.
public enum RefreshTokenText {
    /// Characters of a token with its issue time, and of that time.
    static let timedLength = 51
    static let timeCharacters = 8

    /// A new token: 32 random bytes, after the issue time `issuedAt` when given.
    public static func make(issuedAt: Double?) -> String {
        var bytes: [UInt8] = []
        if let issuedAt {
            let milliseconds = UInt64(max(0, issuedAt) * 1000) & 0xFFFF_FFFF_FFFF
            bytes = (0..<6).map { UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * $0)) }
        }
        return Base64URL.encode(bytes + SecureRandom.bytes(32))
    }

    /// Whether `text` has one of the two forms (anything else is no token of tokend's).
    public static func isWellFormed(_ text: String) -> Bool {
        switch text.utf8.count {
        case 43: (try? Base64URL.decode(text))?.count == 32
        case timedLength: (try? Base64URL.decode(text))?.count == 38
        default: false
        }
    }

    /// The 6 bytes of issue time a token of the second form begins with; nil for the first.
    public static func timeBytes(of text: String) -> [UInt8]? {
        guard text.utf8.count == timedLength, let time = try? Base64URL.decode(text.prefix(timeCharacters)),
            time.count == 6
        else { return nil }
        return time
    }

    /// The issue time of a well-formed token of the second form, in seconds since 1970.
    public static func issueTime(of text: String) -> Double? {
        guard isWellFormed(text), let time = timeBytes(of: text) else { return nil }
        return Double(time.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) / 1000
    }
}
