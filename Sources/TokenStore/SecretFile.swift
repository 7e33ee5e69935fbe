#if canImport(Glibc)
import Glibc
#endif

/// Reading a file that holds a secret (the key-encryption key, the database password): the
/// same checks for every one, so a secret tokend reads is never readable by others.
package enum SecretFile {
    /// Why a secret file cannot be used; the description names the file and the fix, never
    /// the contents.
    package struct Failure: Error, CustomStringConvertible, Sendable {
        package enum Code: Sendable { case unreadable, notRegular, loose, foreignOwner, tooLarge }
        package let code: Code
        package let description: String
    }

    /// The bytes of `file`, read once through one descriptor (checked with `fstat`, so the
    /// file checked is the file read).
    ///
    /// Refuses a file others may read or write; a file group may read or write, except the
    /// read bit systemd shows on a credential (a file directly in `credentialsDirectory`:
    /// systemd makes it 0400 and opens it to the service's user with an ACL whose mask shows
    /// as the group bits, 0440); a file owned by neither tokend's user nor root; and a file
    /// larger than `maximumSize`. `what` names the secret in messages ("the key-encryption
    /// key").
    package static func read(
        _ file: String,
        what: String,
        credentialsDirectory: String?,
        maximumSize: Int
    ) throws(Failure) -> [UInt8] {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw Failure(code: .unreadable, description: "cannot read \(what) \(file): \(errorText())")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw Failure(code: .unreadable, description: "cannot inspect \(file): \(errorText())")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(code: .notRegular, description: "\(what) \(file) is not a regular file")
        }
        let mode = info.st_mode & 0o777
        let fromSystemd = credentialsDirectory.map { isDirectlyUnder(file, $0) } ?? false
        let allowed: mode_t = fromSystemd ? 0o040 : 0
        if mode & 0o077 & ~allowed != 0 {
            throw Failure(
                code: .loose,
                description:
                    "\(file) is readable or writable by group or others (mode \(String(mode, radix: 8))); run: chmod 600 \(file)"
            )
        }
        let user = geteuid()
        if info.st_uid != user && info.st_uid != 0 {
            throw Failure(
                code: .foreignOwner,
                description:
                    "\(what) \(file) belongs to uid \(info.st_uid), neither tokend's user (uid \(user)) nor root; run: chown \(user) \(file)"
            )
        }
        var contents: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        defer { for index in buffer.indices { buffer[index] = 0 } }
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(code: .unreadable, description: "cannot read \(file): \(errorText())")
            }
            contents += buffer[0..<n]
            if contents.count > maximumSize {
                for index in contents.indices { contents[index] = 0 }
                throw Failure(code: .tooLarge, description: "\(file) is larger than \(maximumSize) bytes; not \(what)")
            }
        }
        return contents
    }

    /// True when `file` names an entry directly inside `directory`.
    package static func isDirectlyUnder(_ file: String, _ directory: String) -> Bool {
        var base = directory
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        guard file.hasPrefix(base + "/") else { return false }
        let name = file.dropFirst(base.count + 1)
        return !name.isEmpty && !name.contains("/") && name != "." && name != ".."
    }

    private static func errorText() -> String { String(cString: strerror(errno)) }
}
