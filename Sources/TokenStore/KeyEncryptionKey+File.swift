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
        let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FileFailure(
                description:
                    "cannot read the key-encryption key \(file): \(String(cString: strerror(errno))); \(howToMake(file))"
            )
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw FileFailure(description: "cannot inspect \(file): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw FileFailure(description: "the key-encryption key \(file) is not a regular file")
        }
        let mode = info.st_mode & 0o777
        let fromSystemd = credentialsDirectory.map { isDirectlyUnder(file, $0) } ?? false
        let allowed: mode_t = fromSystemd ? 0o040 : 0
        if mode & 0o077 & ~allowed != 0 {
            throw FileFailure(
                description:
                    "\(file) is readable or writable by group or others (mode \(String(mode, radix: 8))); run: chmod 600 \(file)"
            )
        }
        let user = geteuid()
        if info.st_uid != user && info.st_uid != 0 {
            throw FileFailure(
                description:
                    "the key-encryption key \(file) belongs to uid \(info.st_uid), neither tokend's user (uid \(user)) nor root; run: chown \(user) \(file)"
            )
        }
        // A KEK is 32 bytes, or about 45 as base64 with a newline: anything much longer is not one.
        var contents: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileFailure(description: "cannot read \(file): \(String(cString: strerror(errno)))")
            }
            contents += buffer[0..<n]
            if contents.count > 1024 {
                throw FileFailure(
                    description:
                        "\(file) is larger than 1 KiB; a key-encryption key is 32 random bytes, raw or as one line of base64; \(howToMake(file))"
                )
            }
        }
        defer {
            for index in contents.indices { contents[index] = 0 }
            for index in buffer.indices { buffer[index] = 0 }
        }
        do {
            return try KeyEncryptionKey(contents: contents, file: file)
        } catch let error as CryptoError {
            throw FileFailure(description: error.reason)
        }
    }

    /// True when `file` names an entry directly inside `directory`.
    static func isDirectlyUnder(_ file: String, _ directory: String) -> Bool {
        var base = directory
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        guard file.hasPrefix(base + "/") else { return false }
        let name = file.dropFirst(base.count + 1)
        return !name.isEmpty && !name.contains("/") && name != "." && name != ".."
    }
}
