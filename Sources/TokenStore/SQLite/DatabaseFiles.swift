import CFileIdentity

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The database file and its WAL companions (`-wal`, `-shm`), and the rules for their
/// permissions: every file holding the database is 0600, its directory 0700 when tokend
/// creates it, and an existing file that group or others may access is refused rather than
/// silently fixed, so that an operator learns the data may have leaked.
struct DatabaseFiles: Sendable {
    /// Device and inode of the open database file: tells a deleted or replaced file apart.
    struct Identity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    let path: String
    // Derived once: `checkWritable` runs before and after every batch of writes.
    let walPath: String
    let shmPath: String
    /// The directory holding the database: `.` for a bare file name.
    let directory: String

    var all: [String] { [path, walPath, shmPath] }

    init(path: String) throws {
        guard !path.isEmpty, !path.hasSuffix("/") else {
            throw TokenStoreError.unavailable("the database path '\(path)' does not name a file")
        }
        self.path = path
        walPath = path + "-wal"
        shmPath = path + "-shm"
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
    }

    /// Creates the directory (0700) and the database file (0600) when missing, and refuses
    /// existing files that group or others can read or write. Returns whether the database
    /// file was created.
    func prepare() throws -> Bool {
        try createDirectory(directory)
        try refuseLoosePermissions()
        let fd = Self.retryingEINTR { open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600) }
        if fd < 0 {
            let error = errno
            if error == EEXIST { return false }
            throw TokenStoreError.permissions("cannot create database file \(path): \(Self.describe(error))")
        }
        defer { close(fd) }
        // The umask may have taken bits away; the owner must still read and write it.
        guard fchmod(fd, 0o600) == 0 else {
            throw TokenStoreError.permissions("cannot set mode 0600 on \(path): \(Self.describe(errno))")
        }
        return true
    }

    /// Refuses when the database or a companion file exists with any group or other bit.
    func refuseLoosePermissions() throws {
        var loose: [(path: String, mode: mode_t)] = []
        for file in all {
            guard let info = try Self.status(file) else { continue }
            if info.st_mode & 0o077 != 0 { loose.append((file, info.st_mode & 0o7777)) }
        }
        guard !loose.isEmpty else { return }
        let listed = loose.map { "\($0.path) has mode \(Self.octal($0.mode))" }.joined(separator: ", ")
        let paths = loose.map(\.path).joined(separator: " ")
        throw TokenStoreError.permissions(
            "refusing to open the token database: \(listed), so group or others can access it "
                + "(it must be 0600, readable and writable by its owner only); "
                + "check who could have read it, then fix with: chmod 600 \(paths)"
        )
    }

    /// Sets 0600 on every file of the database that exists (SQLite creates `-wal` and `-shm`
    /// with the database file's mode, this makes sure of it).
    func restrictModes() throws {
        for file in all {
            guard let info = try Self.status(file) else { continue }
            guard info.st_mode & 0o777 != 0o600 else { continue }
            guard chmod(file, 0o600) == 0 else {
                throw TokenStoreError.permissions("cannot set mode 0600 on \(file): \(Self.describe(errno))")
            }
        }
    }

    /// The database file and its write-ahead log as tokend opened them.
    struct Opened: Equatable, Sendable {
        var database: Identity
        /// Nil when SQLite had not created the WAL yet (it does when the pool opens).
        var wal: Identity?
    }

    /// The device and inode of the database file and its WAL now.
    func opened() throws -> Opened {
        guard let database = try Self.identity(path) else {
            throw TokenStoreError.unavailable("the database file \(path) does not exist")
        }
        return Opened(database: database.identity, wal: try Self.identity(walPath)?.identity)
    }

    /// Throws `.unavailable` when a commit made now might not be in the store tokend opens at
    /// its next start, or might fail: the database file or its WAL was deleted or replaced
    /// since `opened` (SQLite would keep writing to the open, unlinked inode), tokend may no
    /// longer write them, or their file system is read-only. Each reason says what to do.
    ///
    /// A few `statx`/`access` calls: cheap next to the fsync of a commit, as long as they ask
    /// for nothing that makes the next fsync write the inode (`tokend_file_identity`).
    func checkWritable(opened: Opened) throws {
        try checkInPlace(path, "database file", opened: opened.database)
        if let wal = opened.wal { try checkInPlace(walPath, "write-ahead log", opened: wal) }
        var fs = statvfs()
        if statvfs(directory, &fs) == 0, fs.f_flag & UInt(ST_RDONLY) != 0 {
            throw TokenStoreError.unavailable(
                "the file system holding \(path) is read-only: writes are refused; remount it read-write"
            )
        }
        for file in opened.wal == nil ? [path] : [path, walPath] where access(file, R_OK | W_OK) != 0 {
            let error = errno
            if error == EROFS {
                throw TokenStoreError.unavailable(
                    "\(file) is on a read-only file system or mount: writes are refused; make it writable again"
                )
            }
            throw TokenStoreError.unavailable(
                "tokend may no longer read and write \(file) (\(Self.describe(error))): writes are refused; "
                    + "give it back to tokend's user with mode 0600"
            )
        }
    }

    /// Throws `.unavailable` unless the file system holding the database has `needed` bytes
    /// free for `purpose` ("migrating PATH rebuilds its refresh token table"), naming both
    /// sizes. Passes when the file system cannot be asked.
    func checkRoom(_ needed: Int64, for purpose: String) throws {
        var fs = statvfs()
        guard statvfs(directory, &fs) == 0 else { return }
        let available = Int64(fs.f_bavail) * Int64(fs.f_frsize)
        guard available < needed else { return }
        let mebibytes = { (bytes: Int64) in "\((bytes + (1 << 20) - 1) >> 20) MiB" }
        throw TokenStoreError.unavailable(
            "\(purpose) and needs about \(mebibytes(needed)) free on its file system, where "
                + "\(mebibytes(available)) are free: free some space (or move the database), then start tokend "
                + "again; the database is unchanged"
        )
    }

    private func checkInPlace(_ file: String, _ what: String, opened: Identity) throws {
        guard let info = try? Self.identity(file) else {
            throw TokenStoreError.unavailable(
                "the \(what) \(file) was deleted while tokend had it open: writes are refused, since they "
                    + "would be lost at the next start; restore the database from a backup and restart tokend"
            )
        }
        guard info.identity == opened, info.links > 0 else {
            throw TokenStoreError.unavailable(
                "the \(what) \(file) was replaced while tokend had it open: writes are refused, since they "
                    + "would go to the old file; restart tokend to open the new one"
            )
        }
    }

    // MARK: - Helpers

    private func createDirectory(_ directory: String) throws {
        if try Self.status(directory) != nil { return }
        let parent = DatabaseFiles.parent(of: directory)
        if parent != directory { try createDirectory(parent) }
        if mkdir(directory, 0o700) != 0 {
            let error = errno
            if error == EEXIST { return }
            throw TokenStoreError.permissions("cannot create directory \(directory): \(Self.describe(error))")
        }
        guard chmod(directory, 0o700) == 0 else {
            throw TokenStoreError.permissions("cannot set mode 0700 on \(directory): \(Self.describe(errno))")
        }
    }

    private static func parent(of directory: String) -> String {
        var trimmed = Substring(directory)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// The identity and link count of the file at `path`, following symbolic links; nil when
    /// it does not exist.
    static func identity(_ path: String) throws -> (identity: Identity, links: UInt32)? {
        var device: UInt64 = 0
        var inode: UInt64 = 0
        var links: UInt32 = 0
        if tokend_file_identity(path, &device, &inode, &links) == 0 {
            return (Identity(device: device, inode: inode), links)
        }
        let error = errno
        if error == ENOENT { return nil }
        throw TokenStoreError.permissions("cannot inspect \(path): \(describe(error))")
    }

    /// `stat(2)`, following symbolic links; nil when the file does not exist.
    static func status(_ path: String) throws -> stat? {
        var info = stat()
        if stat(path, &info) == 0 { return info }
        let error = errno
        if error == ENOENT { return nil }
        throw TokenStoreError.permissions("cannot inspect \(path): \(describe(error))")
    }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(UInt32(mode), radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func describe(_ error: Int32) -> String {
        String(cString: strerror(error))
    }

    private static func retryingEINTR(_ body: () -> Int32) -> Int32 {
        while true {
            let result = body()
            if result >= 0 || errno != EINTR { return result }
        }
    }
}
