public import TokenCrypto

/// JSON Web Keys (RFC 7517) as JSON, over TokenCrypto's key parameters.
public enum JWK {
    /// The public JWK of `key` as a JSON object: `kty`, key members, then `kid`, `alg`, `use`.
    /// An HS256 secret has no public form and throws.
    public static func publicJSON(_ key: VerifyingKey, kid: String?) throws -> JSONObject {
        guard key.algorithm != .hs256 else {
            throw JOSEError(.header, "an HS256 secret is never published in a JWK set")
        }
        var object = JSONObject()
        for member in try key.jwkParameters().members { object[member.name] = .string(member.value) }
        if let kid { object["kid"] = .string(kid) }
        object["alg"] = .string(key.algorithm.rawValue)
        object["use"] = "sig"
        return object
    }

    /// The private JWK of `key`, for key files; write it only to a 0600 file.
    public static func privateJSON(_ key: SigningKey, kid: String?) throws -> JSONObject {
        var object = JSONObject()
        for member in try key.jwkParameters(includePrivate: true).members {
            object[member.name] = .string(member.value)
        }
        if let kid { object["kid"] = .string(kid) }
        object["alg"] = .string(key.algorithm.rawValue)
        return object
    }

    /// The string members of a JWK object as TokenCrypto parameters.
    static func parameters(_ object: JSONObject) throws -> JWKParameters {
        var members: [(name: String, value: String)] = []
        for (name, value) in object
        where ["kty", "crv", "x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi", "k"].contains(name) {
            guard case .string(let text) = value else {
                throw JOSEError(.header, "JWK member \(name) must be a string, got \(value.typeName)")
            }
            members.append((name, text))
        }
        return JWKParameters(members)
    }

    /// A verifying key from a JWK object. Its `alg` member, when present, decides the
    /// algorithm and must fit the key; without it the algorithm is inferred (RSA → RS256).
    public static func verifyingKey(from object: JSONObject) throws -> (kid: String?, key: VerifyingKey) {
        let kid = try JOSEHeader.optionalString(object, "kid")
        let algorithm = try declaredAlgorithm(object)
        do {
            return (kid, try VerifyingKey(jwk: parameters(object), algorithm: algorithm))
        } catch let error as CryptoError {
            throw JOSEError(.header, "JWK\(kid.map { " \($0)" } ?? ""): \(error.reason)")
        }
    }

    /// The JWK's `alg` member, binding when present; an unknown name is refused, never dropped.
    static func declaredAlgorithm(_ object: JSONObject) throws -> SignatureAlgorithm? {
        guard let name = try JOSEHeader.optionalString(object, "alg") else { return nil }
        guard let algorithm = SignatureAlgorithm(jwsName: name) else {
            throw JOSEError(.algUnsupported, "JWK alg \"\(JOSEHeader.printable(name))\" is not supported")
        }
        return algorithm
    }

    /// A signing key from a private JWK object.
    public static func signingKey(from object: JSONObject) throws -> (kid: String?, key: SigningKey) {
        let kid = try JOSEHeader.optionalString(object, "kid")
        let algorithm = try declaredAlgorithm(object)
        do {
            return (kid, try SigningKey(jwk: parameters(object), algorithm: algorithm))
        } catch let error as CryptoError {
            throw JOSEError(.header, "JWK\(kid.map { " \($0)" } ?? ""): \(error.reason)")
        }
    }
}
