public import TokenCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The lifecycle state of a key, as tokend's keyring records it (DESIGN §4).
public enum KeyState: String, Sendable, CaseIterable {
    case next, current, previous, retired, revoked

    /// Whether tokens signed by a key in this state may still verify.
    public var verifies: Bool { self == .next || self == .current || self == .previous }
}

/// A preloaded set of verifying keys. A token's `kid` is looked up by exact match; nothing
/// in the token (jwk, jku, x5u, x5c) can add a key.
public struct KeySet: Sendable {
    public struct Entry: Sendable {
        /// The key id; nil for a key given without one (a lone PEM or secret file).
        public let kid: String?
        public private(set) var key: VerifyingKey
        /// The keyring state, when the key came from tokend's key directory.
        public let state: KeyState?
        /// Where the key came from, for messages ("--key pub.pem", "jwks.json").
        public let source: String
        /// Whether the key's algorithm was declared (a JWK `alg`, a keyring entry, `--alg`)
        /// rather than inferred from the key. A declared algorithm must match a token's
        /// exactly; an inferred one gives way to the token's within the key's family (an
        /// RSA key verifies RS256 or PS256), see `resolve(_:)`.
        public let algorithmIsDeclared: Bool
        /// Set by `resolve(_:)` when the key had no declared algorithm and verifies with the
        /// token's: the algorithm it took, for reports to say so.
        public private(set) var assumedAlgorithm: SignatureAlgorithm?

        public init(
            kid: String?,
            key: VerifyingKey,
            state: KeyState? = nil,
            source: String,
            algorithmIsDeclared: Bool = true
        ) {
            self.kid = kid
            self.key = key
            self.state = state
            self.source = source
            self.algorithmIsDeclared = algorithmIsDeclared
        }

        /// Whether this entry may verify tokens of `algorithm`: exactly its key's algorithm,
        /// or, without a declared algorithm, another of its family. Only RSA keys have a
        /// family (RS256, PS256): an EC key's algorithm is its curve's, an Ed25519 key's is
        /// EdDSA, a secret's is HS256. So never `none` (not a `SignatureAlgorithm`) and never
        /// HS256 with a public key (RFC 8725 §3.1).
        func fits(_ algorithm: SignatureAlgorithm) -> Bool {
            if key.algorithm == algorithm { return true }
            return !algorithmIsDeclared && Entry.hasFamily(key.algorithm) && Entry.hasFamily(algorithm)
                && algorithm.keyType == key.algorithm.keyType
        }

        /// An algorithm whose keys can serve more than one algorithm: RSA's.
        static func hasFamily(_ algorithm: SignatureAlgorithm) -> Bool { algorithm.keyType == "RSA" }

        /// This entry with its key bound to the token's `algorithm` (which `fits`); when the
        /// key had no declared algorithm and has a family, `assumedAlgorithm` records it.
        func bound(to algorithm: SignatureAlgorithm) throws -> Entry {
            guard !algorithmIsDeclared, Entry.hasFamily(algorithm) else { return self }
            var entry = self
            if key.algorithm != algorithm {
                do {
                    entry.key = try VerifyingKey(spki: key.spkiDER(), algorithm: algorithm)
                } catch let error as CryptoError {
                    throw JOSEError(
                        .algKeyMismatch,
                        "token alg \(algorithm) does not fit key \(kid.map { "\"\($0)\" " } ?? "")from \(source): \(error.reason)"
                    )
                }
            }
            entry.assumedAlgorithm = algorithm
            return entry
        }
    }

    public private(set) var entries: [Entry]
    private var byKid: [String: Int]

    public init(_ entries: [Entry] = []) {
        self.entries = []
        self.byKid = [:]
        for entry in entries { add(entry) }
    }

    public mutating func add(_ entry: Entry) {
        if let kid = entry.kid { byKid[kid] = entries.count }
        entries.append(entry)
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The entry a kid names: the last one added with it, as `byKid` records. A keyring
    /// holds a handful of keys, where comparing kids (short strings, equal when their bytes
    /// are) beats hashing one; larger sets use the dictionary. Both compare as Strings do.
    private func index(ofKid kid: String) -> Int? {
        guard entries.count <= 8 else { return byKid[kid] }
        return entries.lastIndex { $0.kid == kid }
    }

    /// The entry the header's kid names, nil without a kid or match. A header the verifier
    /// scanned has its kid as bytes: an ASCII kid is compared with each ASCII kid of a small
    /// set as bytes (for ASCII text, equal bytes is exactly String ==); anything else goes
    /// through a String.
    private func index(ofKidIn header: JOSEHeader) -> Int? {
        let scanned = header.withScannedKid { bytes -> Int?? in
            guard let bytes else { return .some(nil) }  // no kid
            guard entries.count <= 8, bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
            var index = entries.count
            while index > 0 {
                index -= 1
                guard var kid = entries[index].kid else { continue }
                let same = kid.withUTF8 { candidate -> Bool? in
                    guard candidate.allSatisfy({ $0 < 0x80 }) else { return nil }
                    return candidate.count == bytes.count
                        && (bytes.isEmpty || memcmp(candidate.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
                }
                guard let same else { return nil }  // a non-ASCII kid in the set: compare Strings
                if same { return .some(index) }
            }
            return .some(nil)
        }
        if let scanned, let answer = scanned { return answer }
        return header.kid.flatMap { index(ofKid: $0) }
    }

    /// Parses a JWK Set document (`{"keys":[…]}`); a single JWK object is accepted too.
    /// Keys marked `"use":"enc"` are skipped; a key that cannot be used is an error.
    public static func parse(jwks bytes: [UInt8], source: String) throws -> KeySet {
        let value: JSONValue
        do { value = try JSONParser(maxDepth: 8).parse(bytes) } catch let error as JSONParser.Error {
            throw JOSEError(.json, "\(source) is not valid JSON: \(error)")
        }
        guard case .object(let object) = value else { throw JOSEError(.json, "\(source) must be a JSON object") }
        let keyObjects: [JSONValue]
        if let keys = object["keys"] {
            guard case .array(let list) = keys else { throw JOSEError(.json, "\(source): keys must be an array") }
            keyObjects = list
        } else if object["kty"] != nil {
            keyObjects = [value]
        } else {
            throw JOSEError(.json, "\(source) has neither a keys array nor a kty")
        }
        var set = KeySet()
        for (index, item) in keyObjects.enumerated() {
            guard case .object(let jwk) = item else {
                throw JOSEError(.json, "\(source): keys[\(index)] is not an object")
            }
            if jwk["use"]?.stringValue == "enc" { continue }
            let (kid, key) = try JWK.verifyingKey(from: jwk)
            let declared = try JWK.declaredAlgorithm(jwk) != nil
            set.add(Entry(kid: kid, key: key, source: source, algorithmIsDeclared: declared))
        }
        return set
    }

    /// The key for a token's header: an exact `kid` match, or, when the set holds keys
    /// without ids, the one of those whose algorithm fits. Refuses revoked and retired keys
    /// and a key whose algorithm differs from the header's. A key without a declared
    /// algorithm takes the header's when it is of the key's family (an RSA key: RS256 or
    /// PS256); the returned entry's `assumedAlgorithm` says so.
    public func resolve(_ header: JOSEHeader) throws -> Entry {
        let entry: Entry
        if let index = index(ofKidIn: header) {
            entry = entries[index]
        } else {
            let anonymous = entries.filter { $0.kid == nil }
            let candidates: [Entry]
            if !anonymous.isEmpty {
                candidates = anonymous
            } else if header.kid == nil {
                candidates = entries.filter { $0.fits(header.algorithm) }
            } else {
                throw JOSEError(
                    .unknownKid,
                    "kid \"\(JOSEHeader.printable(header.kid!))\" is not in the key set (\(entries.count) key\(entries.count == 1 ? "" : "s"): \(entries.compactMap(\.kid).prefix(5).joined(separator: ", ")))"
                )
            }
            guard candidates.count == 1 else {
                throw JOSEError(
                    .unknownKid,
                    candidates.isEmpty
                        ? "no key in the set fits a token without kid and alg \(header.algorithm)"
                        : "token has no kid and \(candidates.count) keys could match; refusing to guess"
                )
            }
            entry = candidates[0]
        }
        if let state = entry.state, !state.verifies {
            throw JOSEError(
                .keyRevoked,
                "key \(entry.kid ?? "?") is \(state.rawValue); its tokens are no longer accepted"
            )
        }
        guard entry.fits(header.algorithm) else {
            throw JOSEError(
                .algKeyMismatch,
                "token alg \(header.algorithm) does not match key \(entry.kid.map { "\"\($0)\" " } ?? "")alg \(entry.key.algorithm) (from \(entry.source)\(entry.algorithmIsDeclared ? "" : "; a key without a declared alg takes the token's only within its family"))"
            )
        }
        return try entry.bound(to: header.algorithm)
    }
}
