/// The fields of an Argon2 PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), as
/// libargon2 writes them, read only to decide whether a stored hash can and should be verified
/// and whether it needs a rehash; libargon2 decodes it again to verify.
struct PasswordPHC: Equatable {
    enum Variant: String {
        case argon2id, argon2i, argon2d
    }

    var variant: Variant
    var version: UInt32
    var parameters: PasswordHashingParameters
    var saltLength: Int
    var hashLength: Int

    /// Longer strings are refused without looking further.
    static let maximumLength = 512

    /// Parses the exact layout libargon2 produces; nil for anything else.
    init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count <= Self.maximumLength, bytes.first == UInt8(ascii: "$") else { return nil }
        let fields = bytes.dropFirst().split(separator: UInt8(ascii: "$"), omittingEmptySubsequences: false)
        guard fields.count == 5 else { return nil }
        guard let variant = Variant(rawValue: String(decoding: fields[0], as: UTF8.self)) else { return nil }
        guard let version = Self.keyed("v", fields[1]) else { return nil }
        let costs = fields[2].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard costs.count == 3, let m = Self.keyed("m", costs[0]), let t = Self.keyed("t", costs[1]),
            let p = Self.keyed("p", costs[2])
        else { return nil }
        guard let salt = Self.base64Length(fields[3]), let hash = Self.base64Length(fields[4]) else { return nil }
        self.variant = variant
        self.version = version
        self.parameters = PasswordHashingParameters(uncheckedMemoryKiB: m, iterations: t, parallelism: p)
        self.saltLength = salt
        self.hashLength = hash
    }

    /// True when tokend verifies this hash: Argon2id version 1.3 within the configured maxima
    /// and libargon2's minimums.
    var isVerifiable: Bool {
        let p = parameters
        return variant == .argon2id && version == 0x13
            && p.parallelism >= 1 && p.parallelism <= PasswordHashingParameters.maximumParallelism
            && p.iterations >= 1 && p.iterations <= PasswordHashingParameters.maximumIterations
            && p.memoryKiB >= 8 * p.parallelism && p.memoryKiB <= PasswordHashingParameters.maximumMemoryKiB
            && (8...64).contains(saltLength) && (4...64).contains(hashLength)
    }

    /// True when a new hash at `current` would be stronger: lower m, t or p, or a shorter salt
    /// or hash than tokend makes.
    func isWeaker(than current: PasswordHashingParameters) -> Bool {
        parameters.isWeaker(than: current) || saltLength < PasswordHashingParameters.saltLength
            || hashLength < PasswordHashingParameters.hashLength
    }

    /// `key=decimal` with 1…10 digits and no leading zero, as a UInt32.
    private static func keyed(_ key: Character, _ field: ArraySlice<UInt8>) -> UInt32? {
        guard field.count >= 3, field.first == key.asciiValue, field[field.startIndex + 1] == UInt8(ascii: "=") else {
            return nil
        }
        let digits = field.dropFirst(2)
        guard digits.count <= 10, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        guard digits.count == 1 || digits.first != UInt8(ascii: "0") else { return nil }
        return UInt32(String(decoding: digits, as: UTF8.self))
    }

    /// Decoded length of unpadded standard base64, or nil if it is not that.
    private static func base64Length(_ field: ArraySlice<UInt8>) -> Int? {
        guard !field.isEmpty, field.count % 4 != 1 else { return nil }
        let valid = field.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                true
            default: false
            }
        }
        return valid ? field.count * 3 / 4 : nil
    }
}
