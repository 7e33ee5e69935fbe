internal import COpenSSL

/// The members of a JSON Web Key (RFC 7517/7518/8037) as base64url strings, in the order
/// they are written. JOSE turns these into and out of JSON; TokenCrypto turns them into and
/// out of keys.
public struct JWKParameters: Sendable, Equatable {
    /// Members in output order: `kty` first, then the key type's members.
    public var members: [(name: String, value: String)]

    public init(_ members: [(name: String, value: String)]) { self.members = members }

    public subscript(name: String) -> String? { members.first { $0.name == name }?.value }

    public static func == (lhs: JWKParameters, rhs: JWKParameters) -> Bool {
        lhs.members.elementsEqual(rhs.members) { $0.name == $1.name && $0.value == $1.value }
    }

    /// The members RFC 7638 §3.2 hashes for a thumbprint, for this key type.
    static func requiredMembers(kty: String) -> [String]? {
        switch kty {
        case "EC": ["crv", "kty", "x", "y"]
        case "RSA": ["e", "kty", "n"]
        case "OKP": ["crv", "kty", "x"]
        case "oct": ["k", "kty"]
        default: nil
        }
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256(canonical JSON of the required members)).
    /// All values are base64url or fixed names, so no JSON escaping is ever needed.
    public func thumbprint() throws -> String {
        guard let kty = self["kty"], let required = JWKParameters.requiredMembers(kty: kty) else {
            throw CryptoError.invalidKey("JWK has no supported kty")
        }
        var json = "{"
        for (index, name) in required.enumerated() {
            guard let value = self[name] else { throw CryptoError.invalidKey("JWK lacks required member \(name)") }
            json += (index == 0 ? "" : ",") + "\"\(name)\":\"\(value)\""
        }
        json += "}"
        return Base64URL.encode(SHA256.hash(Array(json.utf8)))
    }
}

private let privateMemberNames: Set<String> = ["d", "p", "q", "dp", "dq", "qi", "k"]

extension VerifyingKey {
    /// The public JWK members of this key (`k` for an HS256 secret, which is secret).
    public func jwkParameters() throws -> JWKParameters {
        switch material {
        case .asymmetric(let key): try JWKCodec.parameters(of: key, includePrivate: false)
        case .secret(let secret): JWKParameters([("kty", "oct"), ("k", Base64URL.encode(secret.secret))])
        }
    }

    /// A key from JWK members. Private members, if present, are ignored.
    public init(jwk: JWKParameters, algorithm: SignatureAlgorithm? = nil) throws {
        if jwk["kty"] == "oct" {
            guard let k = jwk["k"], let secret = try? Base64URL.decode(k) else {
                throw CryptoError.invalidKey("oct JWK needs a base64url k")
            }
            try self.init(secret: secret)
            if let algorithm, algorithm != .hs256 {
                throw CryptoError.algorithmMismatch("an oct JWK cannot be used for \(algorithm)")
            }
            return
        }
        let publicOnly = JWKParameters(jwk.members.filter { !privateMemberNames.contains($0.name) })
        let key = try JWKCodec.key(from: publicOnly, selection: tokend_selection_public())
        self.init(material: .asymmetric(try AsymmetricKey(key: key, algorithm: algorithm)))
    }

    /// The RFC 7638 thumbprint of the public key: a stable, content-derived kid.
    public func thumbprint() throws -> String { try jwkParameters().thumbprint() }
}

extension SigningKey {
    /// The JWK members of this key; private members only when asked for.
    public func jwkParameters(includePrivate: Bool = false) throws -> JWKParameters {
        switch material {
        case .asymmetric(let key): try JWKCodec.parameters(of: key, includePrivate: includePrivate)
        case .secret(let secret): JWKParameters([("kty", "oct"), ("k", Base64URL.encode(secret.secret))])
        }
    }

    /// A signing key from JWK members, which must include the private ones.
    public init(jwk: JWKParameters, algorithm: SignatureAlgorithm? = nil) throws {
        if jwk["kty"] == "oct" {
            guard let k = jwk["k"], let secret = try? Base64URL.decode(k) else {
                throw CryptoError.invalidKey("oct JWK needs a base64url k")
            }
            if let algorithm, algorithm != .hs256 {
                throw CryptoError.algorithmMismatch("an oct JWK cannot be used for \(algorithm)")
            }
            try self.init(secret: secret)
            return
        }
        guard jwk["d"] != nil else { throw CryptoError.notPrivate("the JWK has no private member d") }
        let key = try JWKCodec.key(from: jwk, selection: tokend_selection_keypair())
        self.init(material: .asymmetric(try AsymmetricKey(key: key, algorithm: algorithm)))
    }

    /// The RFC 7638 thumbprint of the public key.
    public func thumbprint() throws -> String { try verifyingKey.thumbprint() }
}

enum JWKCodec {
    static func parameters(of asymmetric: AsymmetricKey, includePrivate: Bool) throws -> JWKParameters {
        let key = asymmetric.key
        var members: [(name: String, value: String)] = []
        switch asymmetric.algorithm {
        case .es256, .es384:
            let size = asymmetric.algorithm == .es256 ? 32 : 48
            members = [
                ("kty", "EC"), ("crv", asymmetric.algorithm == .es256 ? "P-256" : "P-384"),
                ("x", Base64URL.encode(try key.bignum(tokend_param_ec_pub_x(), length: size))),
                ("y", Base64URL.encode(try key.bignum(tokend_param_ec_pub_y(), length: size))),
            ]
            if includePrivate, key.hasPrivate {
                members.append(("d", Base64URL.encode(try key.bignum(tokend_param_priv_key(), length: size))))
            }
        case .edDSA:
            members = [("kty", "OKP"), ("crv", "Ed25519"), ("x", Base64URL.encode(try raw(key, private: false)))]
            if includePrivate, key.hasPrivate {
                members.append(("d", Base64URL.encode(try raw(key, private: true))))
            }
        case .rs256, .ps256:
            members = [
                ("kty", "RSA"),
                ("n", Base64URL.encode(try key.bignum(tokend_param_rsa_n()))),
                ("e", Base64URL.encode(try key.bignum(tokend_param_rsa_e()))),
            ]
            if includePrivate, key.hasPrivate {
                let names: [(String, UnsafePointer<CChar>)] = [
                    ("d", tokend_param_rsa_d()), ("p", tokend_param_rsa_p()), ("q", tokend_param_rsa_q()),
                    ("dp", tokend_param_rsa_dp()), ("dq", tokend_param_rsa_dq()), ("qi", tokend_param_rsa_qi()),
                ]
                for (name, param) in names {
                    members.append((name, Base64URL.encode(try key.bignum(param))))
                }
            }
        case .hs256:
            preconditionFailure("not an asymmetric key")
        }
        return JWKParameters(members)
    }

    private static func raw(_ key: EVPKey, private wantPrivate: Bool) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length = 32
        let ok = out.withUnsafeMutableBufferPointer {
            wantPrivate
                ? EVP_PKEY_get_raw_private_key(key.pointer, $0.baseAddress, &length)
                : EVP_PKEY_get_raw_public_key(key.pointer, $0.baseAddress, &length)
        }
        guard ok == 1, length == 32 else { throw CryptoError.openssl("cannot read the Ed25519 key") }
        return out
    }

    private static func member(_ jwk: JWKParameters, _ name: String, length: Int? = nil) throws -> [UInt8] {
        guard let text = jwk[name] else { throw CryptoError.invalidKey("JWK lacks member \(name)") }
        let bytes: [UInt8]
        do { bytes = try Base64URL.decode(text) } catch {
            throw CryptoError.invalidKey("JWK member \(name) is not base64url: \(error)")
        }
        if let length, bytes.count != length {
            throw CryptoError.invalidKey("JWK member \(name) must be \(length) bytes, got \(bytes.count)")
        }
        if bytes.isEmpty { throw CryptoError.invalidKey("JWK member \(name) is empty") }
        return bytes
    }

    static func key(from jwk: JWKParameters, selection: Int32) throws -> EVPKey {
        let wantPrivate = selection == tokend_selection_keypair()
        switch jwk["kty"] {
        case "OKP":
            guard jwk["crv"] == "Ed25519" else {
                throw CryptoError.invalidKey("OKP JWK curve \(jwk["crv"] ?? "missing") is not supported; use Ed25519")
            }
            let bytes = try member(jwk, wantPrivate ? "d" : "x", length: 32)
            let pointer = bytes.withUnsafeBufferPointer {
                wantPrivate
                    ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
                    : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
            }
            guard let pointer else { throw CryptoError.openssl("invalid Ed25519 JWK") }
            let key = EVPKey(taking: pointer)
            if wantPrivate, let x = jwk["x"] {
                let derived = try Base64URL.encode(raw(key, private: false))
                guard derived == x else { throw CryptoError.invalidKey("Ed25519 JWK x does not match d") }
            }
            return key
        case "EC":
            let (group, size): (String, Int)
            switch jwk["crv"] {
            case "P-256": (group, size) = ("P-256", 32)
            case "P-384": (group, size) = ("P-384", 48)
            case let other:
                throw CryptoError.invalidKey("EC JWK curve \(other ?? "missing") is not supported; use P-256 or P-384")
            }
            let point = [0x04] + (try member(jwk, "x", length: size)) + (try member(jwk, "y", length: size))
            let d = wantPrivate ? try member(jwk, "d", length: size) : nil
            return try fromData(type: "EC", selection: selection) { builder, keep in
                let groupName = keep.copy(Array(group.utf8))
                let pointCopy = keep.copy(point)
                return OSSL_PARAM_BLD_push_utf8_string(
                    builder,
                    tokend_param_group_name(),
                    groupName.baseAddress!.assumingMemoryBound(to: CChar.self),
                    0
                ) == 1
                    && OSSL_PARAM_BLD_push_octet_string(
                        builder,
                        tokend_param_pub_key(),
                        pointCopy.baseAddress,
                        point.count
                    )
                        == 1
                    && (d.map { pushBignum(builder, tokend_param_priv_key(), $0, keep) } ?? true)
            }
        case "RSA":
            var names: [(String, UnsafePointer<CChar>)] = [("n", tokend_param_rsa_n()), ("e", tokend_param_rsa_e())]
            if wantPrivate {
                names += [
                    ("d", tokend_param_rsa_d()), ("p", tokend_param_rsa_p()), ("q", tokend_param_rsa_q()),
                    ("dp", tokend_param_rsa_dp()), ("dq", tokend_param_rsa_dq()), ("qi", tokend_param_rsa_qi()),
                ]
            }
            let values = try names.map { (try member(jwk, $0.0), $0.1) }
            return try fromData(type: "RSA", selection: selection) { builder, keep in
                values.allSatisfy { pushBignum(builder, $0.1, $0.0, keep) }
            }
        case let other:
            throw CryptoError.invalidKey("JWK kty \(other ?? "missing") is not supported; use EC, OKP, RSA or oct")
        }
    }

    /// Owns what a param builder references (BIGNUMs, strings, octets): the builder only
    /// copies them in `OSSL_PARAM_BLD_to_param`, so they must outlive that call.
    private final class Bignums {
        var items: [OpaquePointer] = []
        var buffers: [UnsafeMutableRawBufferPointer] = []
        deinit {
            for item in items { BN_clear_free(item) }
            for buffer in buffers {
                buffer.initializeMemory(as: UInt8.self, repeating: 0)
                buffer.deallocate()
            }
        }

        /// A stable copy of `bytes` (plus a NUL, so it also serves as a C string).
        func copy(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count + 1, alignment: 1)
            buffer.copyBytes(from: bytes + [0])
            buffers.append(buffer)
            return buffer
        }
    }

    private static func pushBignum(
        _ builder: OpaquePointer,
        _ name: UnsafePointer<CChar>,
        _ bytes: [UInt8],
        _ keep: Bignums
    ) -> Bool {
        guard let bn = bytes.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
            return false
        }
        guard OSSL_PARAM_BLD_push_BN(builder, name, bn) == 1 else {
            BN_clear_free(bn)
            return false
        }
        keep.items.append(bn)
        return true
    }

    private static func fromData(
        type: String,
        selection: Int32,
        _ push: (OpaquePointer, Bignums) -> Bool
    ) throws -> EVPKey {
        let keep = Bignums()
        do {
            guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoError.openssl("cannot allocate params") }
            defer { OSSL_PARAM_BLD_free(builder) }
            guard push(builder, keep), let params = OSSL_PARAM_BLD_to_param(builder) else {
                throw CryptoError.openssl("invalid \(type) JWK parameters")
            }
            defer { OSSL_PARAM_free(params) }
            guard let ctx = EVP_PKEY_CTX_new_from_name(nil, type, nil) else {
                throw CryptoError.openssl("cannot create a \(type) key context")
            }
            defer { EVP_PKEY_CTX_free(ctx) }
            var pointer: OpaquePointer?
            guard EVP_PKEY_fromdata_init(ctx) == 1, EVP_PKEY_fromdata(ctx, &pointer, selection, params) == 1,
                let pointer
            else {
                throw CryptoError(
                    .invalidKey,
                    "the \(type) JWK does not describe a valid key (\(OpenSSL.drainErrors().joined(separator: "; ")))"
                )
            }
            let key = EVPKey(taking: pointer)
            // Reject points off the curve and inconsistent RSA values before the key is used.
            guard let check = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else {
                throw CryptoError.openssl("cannot check the key")
            }
            defer { EVP_PKEY_CTX_free(check) }
            let valid =
                selection == tokend_selection_keypair() ? EVP_PKEY_pairwise_check(check) : EVP_PKEY_public_check(check)
            guard valid == 1 else {
                OpenSSL.clearErrors()
                throw CryptoError(
                    .invalidKey,
                    "the \(type) JWK does not describe a valid key (failed OpenSSL's key check)"
                )
            }
            return key
        }
    }
}
