internal import COpenSSL

/// AES-256-GCM authenticated encryption (NIST SP 800-38D) through OpenSSL.
///
/// A sealed box is `nonce (12) ‖ ciphertext ‖ tag (16)`. tokend uses it to keep a refresh
/// token's successor readable only by whoever presents that token again.
public enum AES256GCM {
    public static let keySize = 32
    static let nonceSize = 12
    static let tagSize = 16

    /// Encrypts and authenticates `plaintext` (and `associatedData`) with a fresh random nonce.
    public static func seal(_ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8] = []) throws -> [UInt8] {
        guard key.count == keySize else { throw CryptoError.invalidKey("AES-256-GCM needs a 32-byte key") }
        let nonce = SecureRandom.bytes(nonceSize)
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openssl("cannot allocate a cipher context") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        var length: Int32 = 0
        var total = 0
        guard EVP_EncryptInit_ex(ctx, FetchedCipher.aes256GCM.pointer, nil, key, nonce) == 1 else {
            throw CryptoError.openssl("cannot start AES-256-GCM")
        }
        if !associatedData.isEmpty {
            guard EVP_EncryptUpdate(ctx, nil, &length, associatedData, Int32(associatedData.count)) == 1 else {
                throw CryptoError.openssl("AES-256-GCM associated data failed")
            }
        }
        let ok = out.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard EVP_EncryptUpdate(ctx, buffer.baseAddress, &length, plaintext, Int32(plaintext.count)) == 1 else {
                return false
            }
            total = Int(length)
            guard EVP_EncryptFinal_ex(ctx, buffer.baseAddress! + total, &length) == 1 else { return false }
            total += Int(length)
            return true
        }
        guard ok else { throw CryptoError.openssl("AES-256-GCM encryption failed") }
        var tag = [UInt8](repeating: 0, count: tagSize)
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagSize), &tag) == 1 else {
            throw CryptoError.openssl("cannot read the GCM tag")
        }
        return nonce + out[0..<total] + tag
    }

    /// Verifies and decrypts a sealed box; throws when it was altered or the key is wrong.
    public static func open(_ box: [UInt8], key: [UInt8], associatedData: [UInt8] = []) throws -> [UInt8] {
        guard key.count == keySize else { throw CryptoError.invalidKey("AES-256-GCM needs a 32-byte key") }
        guard box.count >= nonceSize + tagSize else { throw CryptoError.signatureEncoding("sealed box is too short") }
        let nonce = Array(box[0..<nonceSize])
        let ciphertext = Array(box[nonceSize..<(box.count - tagSize)])
        var tag = Array(box[(box.count - tagSize)...])
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openssl("cannot allocate a cipher context") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: ciphertext.count + 16)
        var length: Int32 = 0
        var total = 0
        guard EVP_DecryptInit_ex(ctx, FetchedCipher.aes256GCM.pointer, nil, key, nonce) == 1 else {
            throw CryptoError.openssl("cannot start AES-256-GCM")
        }
        if !associatedData.isEmpty {
            guard EVP_DecryptUpdate(ctx, nil, &length, associatedData, Int32(associatedData.count)) == 1 else {
                throw CryptoError.openssl("AES-256-GCM associated data failed")
            }
        }
        let ok = out.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard EVP_DecryptUpdate(ctx, buffer.baseAddress, &length, ciphertext, Int32(ciphertext.count)) == 1 else {
                return false
            }
            total = Int(length)
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagSize), &tag) == 1 else { return false }
            guard EVP_DecryptFinal_ex(ctx, buffer.baseAddress! + total, &length) == 1 else { return false }
            total += Int(length)
            return true
        }
        guard ok else {
            OpenSSL.clearErrors()
            throw CryptoError.signatureEncoding("sealed box does not authenticate")
        }
        return Array(out[0..<total])
    }
}
