import Foundation
import Testing
import TokenCrypto
import TokenStore
import TokenTestSupport

/// Loading the key-encryption key from its file (`TOKEND_KEY_ENCRYPTION_KEY_FILE`) or the
/// systemd credential: the contents rules of `KeyEncryptionKey` plus the file's mode.
@Suite("Key-encryption key files")
struct KeyEncryptionKeyFileTests {
    static let raw: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }

    /// Writes `contents` to `name` in `directory` with `mode`.
    static func write(
        _ contents: [UInt8],
        _ name: String,
        in directory: TemporaryDirectory,
        mode: mode_t
    ) throws -> String {
        let path = try directory.write(name, contents)
        #expect(chmod(path, mode) == 0)
        return path
    }

    @Test("a 0600 file of raw bytes and one of base64 give the same KEK")
    func loads() throws {
        let directory = try TemporaryDirectory()
        let rawFile = try Self.write(Self.raw, "kek", in: directory, mode: 0o600)
        let textFile = try Self.write(
            Array((Base64URL.encode(Self.raw) + "\n").utf8),
            "kek.b64",
            in: directory,
            mode: 0o400
        )
        let fromRaw = try KeyEncryptionKey.load(file: rawFile)
        let fromText = try KeyEncryptionKey.load(file: textFile)
        #expect(fromRaw.fingerprint == fromText.fingerprint)
        #expect(fromRaw.fingerprint == (try KeyEncryptionKey(bytes: Self.raw)).fingerprint)
    }

    @Test(
        "a KEK file group or others may read or write is refused, naming it and the chmod",
        arguments: [0o640, 0o604, 0o660, 0o644, 0o620, 0o602]
    )
    func looseMode(mode: Int) throws {
        let directory = try TemporaryDirectory()
        let file = try Self.write(Self.raw, "kek", in: directory, mode: mode_t(mode))
        let error = try #require(throws: KeyEncryptionKey.FileFailure.self) { try KeyEncryptionKey.load(file: file) }
        #expect(error.description.contains(file))
        #expect(error.description.contains("mode \(String(mode, radix: 8))"))
        #expect(error.description.contains("chmod 600 \(file)"))
    }

    @Test(
        "a systemd credential (0400, or 0440 with the ACL systemd adds) is accepted, and only in the credentials directory"
    )
    func systemdCredential() throws {
        let credentials = try TemporaryDirectory()
        for mode in [0o400, 0o440] {
            let file = try Self.write(Self.raw, "kek", in: credentials, mode: mode_t(mode))
            let kek = try KeyEncryptionKey.load(file: file, credentialsDirectory: credentials.path)
            #expect(kek.fingerprint == (try KeyEncryptionKey(bytes: Self.raw)).fingerprint)
            // With a trailing slash too.
            _ = try KeyEncryptionKey.load(file: file, credentialsDirectory: credentials.path + "/")
        }
        // Group-readable outside it; others or group-writable even inside it.
        let file = try Self.write(Self.raw, "kek", in: credentials, mode: 0o440)
        #expect(throws: KeyEncryptionKey.FileFailure.self) { try KeyEncryptionKey.load(file: file) }
        let elsewhere = try TemporaryDirectory()
        #expect(throws: KeyEncryptionKey.FileFailure.self) {
            try KeyEncryptionKey.load(file: file, credentialsDirectory: elsewhere.path)
        }
        for mode in [0o444, 0o460, 0o404] {
            #expect(chmod(file, mode_t(mode)) == 0)
            #expect(throws: KeyEncryptionKey.FileFailure.self) {
                try KeyEncryptionKey.load(file: file, credentialsDirectory: credentials.path)
            }
        }
    }

    @Test("weak contents, a missing file and a directory are refused, naming the file and never the key")
    func refused() throws {
        let directory = try TemporaryDirectory()
        let passphrase = try Self.write(
            Array("correct horse battery staple 123".utf8),
            "pass",
            in: directory,
            mode: 0o600
        )
        let zero = try Self.write([UInt8](repeating: 0, count: 32), "zero", in: directory, mode: 0o600)
        let short = try Self.write(
            Array((Base64URL.encode(Self.raw.prefix(24)) + "\n").utf8),
            "short",
            in: directory,
            mode: 0o600
        )
        let missing = directory.file("missing")
        for (file, says) in [
            (passphrase, "passphrase"), (zero, "equal bytes"), (short, "base64 of 24 bytes"),
            (missing, "cannot read"), (directory.path, "not a regular file"),
        ] {
            let error = try #require(throws: KeyEncryptionKey.FileFailure.self) {
                try KeyEncryptionKey.load(file: file)
            }
            #expect(error.description.contains(file), "\(error)")
            #expect(error.description.contains(says), "\(error)")
            #expect(!error.description.contains("correct horse"), "\(error)")
            #expect(!error.description.contains(Base64URL.encode(Self.raw.prefix(24))), "\(error)")
        }
    }
}
