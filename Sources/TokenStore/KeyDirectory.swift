import Dispatch
package import JOSE
package import TokenCrypto

#if canImport(Glibc)
import Glibc
#endif

/// tokend's key directory on disk (DESIGN §4, keys/README.md): `keyring.json` and one
/// `<kid>.pem` per key, all 0600 in a 0700 directory, every write atomic
/// (temporary file, fsync, rename, fsync of the directory). Readers and writers take an
/// `flock` on `keyring.lock`, so changes are transactions (`KeyringStorage`).
public struct KeyDirectory: KeyringStorage {
    /// A failure with a message that names the file and what to do.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let path: String

    public init(path: String) { self.path = path }

    public var indexPath: String { path + "/keyring.json" }

    public func keyPath(_ kid: String) -> String { "\(path)/\(kid).pem" }

    /// Creates the directory (0700) when missing.
    public func prepare() throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw Failure(description: "\(path) exists and is not a directory")
            }
            return
        }
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw Failure(description: "cannot create the key directory \(path): \(KeyDirectory.errorText())")
        }
    }

    /// The lock file every reader and writer of this directory takes (`flock`): shared to
    /// load, exclusive to update, so two tokend processes, or tokend and an offline tool,
    /// never interleave a change nor read half of one.
    public var lockPath: String { path + "/keyring.lock" }

    /// The keyring and its private keys, read under the directory's shared lock, off the
    /// caller's thread. An empty or missing directory gives an empty keyring. Refuses
    /// group- or world-readable key files, and a directory that group or others may write
    /// or others may read, naming them.
    public func load() async throws -> StoredKeyring {
        try await KeyDirectory.offload {
            try checkDirectory()
            guard KeyDirectory.exists(path) else { return .empty }
            let lock = try FileLock(lockPath, exclusive: false)
            defer { lock.release() }
            return try readStored()
        }
    }

    /// Runs `change` on the stored keyring under the directory's exclusive lock and writes
    /// what it returns (new key files first, then `keyring.json`, each atomically, then the
    /// removed keys' files go), all off the caller's thread. Creates the directory (0700)
    /// when missing.
    public func update(
        _ change: @escaping @Sendable (StoredKeyring) throws -> KeyringChange?
    ) async throws -> StoredKeyring {
        try await KeyDirectory.offload {
            try checkDirectory()
            try prepare()
            let lock = try FileLock(lockPath, exclusive: true)
            defer { lock.release() }
            let stored = try readStored()
            guard let change = try change(stored) else { return stored }
            try writeChange(change)
            return stored.applying(change)
        }
    }

    /// Reads `keyring.json` and the key files; the caller holds the lock.
    func readStored() throws -> StoredKeyring {
        guard KeyDirectory.exists(indexPath) else { return .empty }
        try checkPrivate(indexPath)
        let document: KeyringDocument
        do { document = try KeyringDocument.parse(try KeyDirectory.read(indexPath)) } catch let error as JOSEError {
            throw Failure(description: "\(indexPath): \(error.reason)")
        }
        var keys: [String: SigningKey] = [:]
        for entry in document.keys where entry.state != .retired && entry.state != .revoked {
            let file = keyPath(entry.kid)
            try checkPrivate(file)
            let text = String(decoding: try KeyDirectory.read(file), as: UTF8.self)
            let key: SigningKey
            do {
                key = try SigningKey(pem: text, algorithm: entry.algorithm)
            } catch let error as CryptoError {
                throw Failure(description: "\(file): \(error.reason)")
            }
            try KeyDirectory.checkThumbprint(key, entry: entry, file: file)
            keys[entry.kid] = key
        }
        return StoredKeyring(document: document, keys: keys)
    }

    /// Refuses a key file whose public key is not the one its kid names (RFC 7638
    /// thumbprint): tokend would sign with a key its JWKS does not publish. HS256 kids are
    /// random (a shared secret has no public thumbprint) and are not checked.
    package static func checkThumbprint(_ key: SigningKey, entry: KeyringDocument.Entry, file: String) throws {
        guard entry.algorithm != .hs256 else { return }
        let thumbprint: String
        do { thumbprint = try key.thumbprint() } catch let error as CryptoError {
            throw Failure(description: "\(file): cannot compute the key's thumbprint: \(error.reason)")
        }
        guard thumbprint == entry.kid else {
            throw Failure(
                description:
                    "\(file) does not hold the key of kid \(entry.kid): its RFC 7638 thumbprint is \(thumbprint); restore the key file for \(entry.kid) (a key file must match its kid)"
            )
        }
    }

    /// Writes new key files first, then the index, each atomically; then removes the files of
    /// the removed kids (retired or revoked keys never sign again). The caller holds the
    /// exclusive lock.
    func writeChange(_ change: KeyringChange) throws {
        for (kid, key) in change.newKeys {
            let pem: String
            do { pem = try key.pemEncoded() } catch let error as CryptoError {
                throw Failure(description: "cannot encode key \(kid): \(error.reason)")
            }
            try writeAtomically(keyPath(kid), Array(pem.utf8))
        }
        try writeAtomically(indexPath, Array(change.document.serialized().utf8))
        for kid in change.removedKids where KeyDirectory.exists(keyPath(kid)) {
            if unlink(keyPath(kid)) != 0 {
                throw Failure(description: "cannot remove \(keyPath(kid)): \(KeyDirectory.errorText())")
            }
        }
        try syncDirectory()
    }

    /// Refuses a key directory that group or others may write (they could swap a key file or
    /// the keyring for their own) or others may read (they learn the kids, and a key file
    /// created with a wider mode by mistake is theirs). A missing directory is not checked: it
    /// is created 0700.
    func checkDirectory() throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw Failure(description: "cannot inspect the key directory \(path): \(KeyDirectory.errorText())")
        }
        let mode = info.st_mode & 0o7777
        let problems = [(0o004, "readable by others"), (0o020, "writable by group"), (0o002, "writable by others")]
            .filter { mode & $0.0 != 0 }.map(\.1)
        if !problems.isEmpty {
            throw Failure(
                description:
                    "the key directory \(path) is \(problems.joined(separator: " and ")) (mode \(String(mode, radix: 8))); run: chmod 700 \(path)"
            )
        }
        let user = geteuid()
        if info.st_uid != user && info.st_uid != 0 {
            throw Failure(
                description:
                    "the key directory \(path) belongs to uid \(info.st_uid), neither tokend's user (uid \(user)) nor root, so that user could replace the keys; run: chown \(user) \(path)"
            )
        }
    }

    /// Refuses a file that group or others may read or write.
    func checkPrivate(_ file: String) throws {
        var info = stat()
        guard stat(file, &info) == 0 else {
            throw Failure(description: "cannot read \(file): \(KeyDirectory.errorText())")
        }
        let mode = info.st_mode & 0o777
        if mode & 0o077 != 0 {
            throw Failure(
                description:
                    "\(file) is readable or writable by group or others (mode \(String(mode, radix: 8))); run: chmod 600 \(file)"
            )
        }
    }

    func writeAtomically(_ file: String, _ bytes: [UInt8]) throws {
        let temporary = "\(file).tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot create \(temporary): \(KeyDirectory.errorText())") }
        var closed = false
        defer {
            if !closed { close(fd) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = KeyDirectory.errorText()
                unlink(temporary)
                throw Failure(description: "cannot write \(temporary): \(reason)")
            }
            offset += n
        }
        guard fchmod(fd, 0o600) == 0, fsync(fd) == 0 else {
            let reason = KeyDirectory.errorText()
            unlink(temporary)
            throw Failure(description: "cannot sync \(temporary): \(reason)")
        }
        close(fd)
        closed = true
        guard rename(temporary, file) == 0 else {
            let reason = KeyDirectory.errorText()
            unlink(temporary)
            throw Failure(description: "cannot rename \(temporary) to \(file): \(reason)")
        }
        try syncDirectory()
    }

    func syncDirectory() throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path): \(KeyDirectory.errorText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Failure(description: "cannot sync \(path): \(KeyDirectory.errorText())") }
    }

    static func exists(_ file: String) -> Bool { access(file, F_OK) == 0 }

    static func read(_ file: String) throws -> [UInt8] {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot read \(file): \(errorText())") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot read \(file): \(errorText())")
            }
            out += buffer[0..<n]
            if out.count > 1 << 20 { throw Failure(description: "\(file) is larger than 1 MiB") }
        }
        return out
    }

    static func errorText() -> String { String(cString: strerror(errno)) }

    /// Runs blocking file work (and the lock wait) on a global dispatch queue, never on the
    /// cooperative pool or an event loop.
    static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// An `flock` held on an open lock file until `release`. Locks belong to the open file,
    /// so two `KeyDirectory` values in one process exclude each other as two processes do.
    struct FileLock {
        let fd: Int32

        /// Opens (creating, 0600) `file` and waits for the lock.
        init(_ file: String, exclusive: Bool) throws {
            let fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { throw Failure(description: "cannot open the lock file \(file): \(errorText())") }
            while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
                if errno == EINTR { continue }
                let reason = errorText()
                close(fd)
                throw Failure(description: "cannot lock \(file): \(reason)")
            }
            self.fd = fd
        }

        /// Unlocks by closing the file.
        func release() { close(fd) }
    }
}
