internal import COpenSSL

/// Owns one `EVP_PKEY`. The only place such a handle is freed.
final class EVPKey: @unchecked Sendable {
    // Safe: the EVP_PKEY is never mutated after init (no set0/set1 calls after construction),
    // and OpenSSL documents concurrent read-only use of a key (sign/verify with separate
    // contexts) as thread-safe; its reference count is atomic.
    let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) { self.pointer = pointer }

    deinit { EVP_PKEY_free(pointer) }

    var bits: Int { Int(EVP_PKEY_get_bits(pointer)) }

    /// Whether OpenSSL's low-level EC calls may work with this key: not when OpenSSL runs in
    /// FIPS mode or the key comes from the FIPS provider, whose keys must stay inside it.
    var allowsLowLevelEC: Bool {
        guard EVP_default_properties_is_fips_enabled(nil) == 0 else { return false }
        if let provider = EVP_PKEY_get0_provider(pointer), let name = OSSL_PROVIDER_get0_name(provider),
            String(cString: name) == "fips"
        {
            return false
        }
        return true
    }

    /// OpenSSL's name for the key type: "EC", "RSA", "ED25519", "RSA-PSS", …
    var typeName: String {
        guard let name = EVP_PKEY_get0_type_name(pointer) else { return "unknown" }
        return String(cString: name)
    }

    /// The EC group name ("prime256v1", "P-256", "secp384r1", …) for an EC key.
    var groupName: String? {
        var buffer = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_utf8_string_param(pointer, tokend_param_group_name(), &buffer, buffer.count, &length) == 1
        else {
            OpenSSL.clearErrors()
            return nil
        }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True when the key holds its private half.
    var hasPrivate: Bool {
        switch typeName {
        case "ED25519":
            var length = 0
            let ok = EVP_PKEY_get_raw_private_key(pointer, nil, &length) == 1
            OpenSSL.clearErrors()
            return ok
        default:
            var bn: OpaquePointer?
            let name = typeName == "EC" ? tokend_param_priv_key() : tokend_param_rsa_d()
            let ok = EVP_PKEY_get_bn_param(pointer, name, &bn) == 1
            if let bn { BN_clear_free(bn) }
            OpenSSL.clearErrors()
            return ok
        }
    }

    func bignum(_ name: UnsafePointer<CChar>, length: Int? = nil) throws -> [UInt8] {
        var bn: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pointer, name, &bn) == 1, let bn else {
            throw CryptoError.openssl("cannot read key parameter \(String(cString: name))")
        }
        defer { BN_clear_free(bn) }
        return OpenSSL.bytes(of: bn, length: length)
    }

    /// The public half as a new key (SubjectPublicKeyInfo round trip).
    func publicOnly() throws -> EVPKey {
        var der: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(pointer, &der)
        guard length > 0, let der else { throw CryptoError.openssl("cannot encode the public key") }
        defer { tokend_openssl_free(der) }
        var cursor: UnsafePointer<UInt8>? = UnsafePointer(der)
        guard let key = d2i_PUBKEY(nil, &cursor, Int(length)) else {
            throw CryptoError.openssl("cannot decode the public key")
        }
        return EVPKey(taking: key)
    }

    func spkiDER() throws -> [UInt8] {
        var der: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(pointer, &der)
        guard length > 0, let der else { throw CryptoError.openssl("cannot encode the public key") }
        defer { tokend_openssl_free(der) }
        return Array(UnsafeBufferPointer(start: der, count: Int(length)))
    }
}
