public import TokenCrypto

/// `keyring.json`, the index of a tokend key directory (DESIGN §4, keys/README.md).
///
/// It names every key, its algorithm, its lifecycle state and times, and carries each
/// asymmetric key's public JWK so offline verifiers (jwt-inspect --keys-dir) need no
/// access to the 0600 private key files.
public struct KeyringDocument: Sendable {
    public struct Entry: Sendable {
        public var kid: String
        public var algorithm: SignatureAlgorithm
        public var state: KeyState
        public var created: NumericDate
        /// When it became `current`.
        public var activated: NumericDate?
        /// When it stopped signing (became `previous`, or was revoked while current).
        public var deactivated: NumericDate?
        /// When it left the JWKS (`retired` or `revoked`).
        public var retired: NumericDate?
        /// The public JWK; nil for HS256 secrets, which have no public form.
        public var publicJWK: JSONObject?

        public init(
            kid: String,
            algorithm: SignatureAlgorithm,
            state: KeyState,
            created: NumericDate,
            activated: NumericDate? = nil,
            deactivated: NumericDate? = nil,
            retired: NumericDate? = nil,
            publicJWK: JSONObject? = nil
        ) {
            self.kid = kid
            self.algorithm = algorithm
            self.state = state
            self.created = created
            self.activated = activated
            self.deactivated = deactivated
            self.retired = retired
            self.publicJWK = publicJWK
        }
    }

    public static let version = 1
    public var keys: [Entry]

    public init(keys: [Entry]) { self.keys = keys }

    /// Parses keyring.json, with messages that name the entry and member at fault.
    public static func parse(_ bytes: [UInt8]) throws -> KeyringDocument {
        let value: JSONValue
        do { value = try JSONParser(maxDepth: 8).parse(bytes) } catch let error as JSONParser.Error {
            throw JOSEError(.json, "keyring.json is not valid JSON: \(error)")
        }
        guard let root = value.objectValue, let list = root["keys"]?.arrayValue else {
            throw JOSEError(.json, "keyring.json must be an object with a keys array")
        }
        if let version = root["version"]?.numberValue?.int64Value, version != Int64(KeyringDocument.version) {
            throw JOSEError(
                .json,
                "keyring.json version \(version) is not supported (expected \(KeyringDocument.version))"
            )
        }
        var entries: [Entry] = []
        for (index, item) in list.enumerated() {
            guard let object = item.objectValue else {
                throw JOSEError(.json, "keyring.json keys[\(index)] is not an object")
            }
            func string(_ name: String) throws -> String {
                guard let s = object[name]?.stringValue, !s.isEmpty else {
                    throw JOSEError(.json, "keyring.json keys[\(index)] needs a string \(name)")
                }
                return s
            }
            func date(_ name: String) throws -> NumericDate? {
                guard let v = object[name], v != .null else { return nil }
                if let s = v.stringValue, let d = NumericDate(parsing: s) { return d }
                if let n = v.numberValue, let d = NumericDate(seconds: n.doubleValue) { return d }
                throw JOSEError(.json, "keyring.json keys[\(index)].\(name) must be an ISO 8601 time")
            }
            let kid = try string("kid")
            guard KeyringDocument.isSafeKid(kid) else {
                throw JOSEError(
                    .json,
                    "keyring.json keys[\(index)].kid may hold only A-Z a-z 0-9 - _ (it names a file)"
                )
            }
            let algName = try string("alg")
            guard let algorithm = SignatureAlgorithm(jwsName: algName) else {
                throw JOSEError(.json, "keyring.json key \(kid): alg \(JOSEHeader.printable(algName)) is not supported")
            }
            let stateName = try string("state")
            guard let state = KeyState(rawValue: stateName) else {
                let accepted = KeyState.allCases.map(\.rawValue).joined(separator: ", ")
                throw JOSEError(
                    .json,
                    "keyring.json key \(kid): state \(JOSEHeader.printable(stateName)) is not one of \(accepted)"
                )
            }
            guard let created = try date("created") else {
                throw JOSEError(.json, "keyring.json key \(kid) needs created")
            }
            entries.append(
                Entry(
                    kid: kid,
                    algorithm: algorithm,
                    state: state,
                    created: created,
                    activated: try date("activated"),
                    deactivated: try date("deactivated"),
                    retired: try date("retired"),
                    publicJWK: object["jwk"]?.objectValue
                )
            )
        }
        return KeyringDocument(keys: entries)
    }

    /// keyring.json text, pretty-printed, ending in a newline.
    public func serialized() -> String {
        var list: [JSONValue] = []
        for entry in keys {
            var object = JSONObject()
            object["kid"] = .string(entry.kid)
            object["alg"] = .string(entry.algorithm.rawValue)
            object["state"] = .string(entry.state.rawValue)
            object["created"] = .string(entry.created.iso8601)
            object["activated"] = entry.activated.map { .string($0.iso8601) } ?? .null
            object["deactivated"] = entry.deactivated.map { .string($0.iso8601) } ?? .null
            object["retired"] = entry.retired.map { .string($0.iso8601) } ?? .null
            if let jwk = entry.publicJWK { object["jwk"] = .object(jwk) }
            list.append(.object(object))
        }
        let root: JSONValue = .object(
            JSONObject([("version", .number(JSONNumber(KeyringDocument.version))), ("keys", .array(list))])
        )
        return root.prettyText() + "\n"
    }

    /// A kid names a file in the key directory, so it is restricted to base64url characters.
    public static func isSafeKid(_ kid: String) -> Bool {
        !kid.isEmpty && kid.utf8.count <= 128
            && kid.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
                    || b == 0x5F
            }
    }
}
