public import TokenCrypto

#if canImport(Glibc)
import Glibc
#endif

extension KeyEncryptionKey {
    /// A KEK file that cannot be used, with a message that names it and says what to do.
    /// Never holds key material.
    public struct FileFailure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads the KEK from `file` (`TOKEND_KEY_ENCRYPTION_KEY_FILE`, or the systemd credential
    /// `$CREDENTIALS_DIRECTORY/kek`): 32 raw bytes or one line of base64 of 32 bytes.
    ///
    /// Refuses, naming the file: a file others may read or write; a file group may read or
    /// write, except the read bit systemd shows on a credential (a file in
    /// `credentialsDirectory`, which systemd makes 0400 and opens to the service's user with
    /// an ACL, whose mask appears as the group bits: 0440); a file owned by neither tokend's
    /// user nor root; and contents weaker than 32 random bytes.
    public static func load(file: String, credentialsDirectory: String? = nil) throws -> KeyEncryptionKey {
        var contents: [UInt8]
        do {
            // A KEK is 32 bytes, or about 45 as base64 with a newline: anything much longer is not one.
            contents = try SecretFile.read(
                file,
                what: "the key-encryption key",
                credentialsDirectory: credentialsDirectory,
                maximumSize: 1024
            )
        } catch {
            throw FileFailure(
                description: error.description
                    + (error.code == .tooLarge || error.code == .unreadable ? "; \(howToMake(file))" : "")
            )
        }
        defer { for index in contents.indices { contents[index] = 0 } }
        do {
            return try KeyEncryptionKey(contents: contents, file: file)
        } catch let error as CryptoError {
            throw FileFailure(description: error.reason)
        }
    }
}
