import Glibc
import TokenClient

/// The device and inode of a file, to remove a socket file only if it is still ours.
struct FileIdentity: Sendable, Equatable {
    var device: UInt64
    var inode: UInt64
}

/// The file-system side of a Unix listening socket: the directory and stale-socket checks
/// before binding, the bind in a private staging directory, and the removal at shutdown.
///
/// A socket is never reachable with a wider mode than its final one. `bind` creates the file
/// with the process umask, and `chmod` can only follow it: in between another user could
/// connect (to the admin socket, and be served as admin). Setting the umask around `bind` is
/// no cure: it is process-wide, and NIO binds on an event loop thread while other threads
/// create files (the store, the key directory). So the socket is bound inside a fresh 0700
/// directory next to its final path (`mkdtemp`; nobody else may even look up a name in it),
/// given its final mode there, and only then linked to its final name (`link`, which never
/// replaces a file, so a daemon that bound the same path meanwhile is not displaced).
enum UnixSocketFile {
    /// The staging directory (`.tdXXXXXX`) and the socket in it (`/s`) next to a final path:
    /// the bytes a staging path may be longer than the directory's own path.
    static let stagingOverhead = "/.tdXXXXXX/s".utf8.count

    /// Makes `path` ready to bind: creates the parent directory if missing, refuses one that
    /// group or others may write, removes a stale socket file, refuses a live socket or a file
    /// that is not a socket.
    static func prepare(_ path: String) throws(HTTPServerError) {
        guard !path.isEmpty else { throw HTTPServerError.socketDirectory("the socket path is empty") }
        let limit = UnixSocketAddress.maxPathBytes
        guard path.utf8.count <= limit else {
            throw HTTPServerError.socketPathTooLong(
                "socket path \(path) is \(path.utf8.count) bytes; Unix socket paths are limited to \(limit) bytes"
            )
        }
        let parent = parentDirectory(of: path)
        guard parent.utf8.count + stagingOverhead <= limit else {
            throw HTTPServerError.socketPathTooLong(
                "the directory of socket path \(path) is \(parent.utf8.count) bytes; it is bound in a private "
                    + "directory there first, which allows at most \(limit - stagingOverhead) bytes: choose a shorter path"
            )
        }
        try createParentDirectory(of: path)
        try checkDirectory(parent)

        var info = stat()
        guard lstat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT { return }
            throw HTTPServerError.socketDirectory("cannot inspect \(path): \(errnoDescription(code))")
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw HTTPServerError.notASocket(
                "\(path) exists and is not a socket; refusing to replace it (remove it or choose another path)"
            )
        }
        switch probe(path) {
        case .live:
            throw HTTPServerError.addressInUse(servedMessage(path))
        case .stale:
            guard unlink(path) == 0 || errno == ENOENT else {
                throw HTTPServerError.socketDirectory(
                    "cannot remove the stale socket \(path): \(errnoDescription(errno))"
                )
            }
        case .failed(let code):
            throw HTTPServerError.addressInUse(
                "cannot tell whether another process serves \(path): \(errnoDescription(code))"
            )
        }
    }

    /// What a start is told when a server accepts on `path`.
    static func servedMessage(_ path: String) -> String { "another tokend is serving \(path)" }

    /// Whether `path` is a socket a server accepts on, asked without changing anything (the
    /// bind check above also removes a stale one and refuses other files).
    static func isServed(_ path: String) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return false }
        return probe(path) == .live
    }

    enum ProbeResult: Equatable {
        case live
        case stale
        case failed(Int32)
    }

    /// Tries a non-blocking connect: accepted (or a full backlog) means a live server.
    static func probe(_ path: String) -> ProbeResult {
        let fd = socket(
            AF_UNIX,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
            0
        )
        guard fd >= 0 else { return .failed(errno) }
        defer { close(fd) }
        let result = withUnixAddress(path) { address, length in connect(fd, address, length) }
        switch result {
        case .success(0): return .live
        case .success:
            switch errno {
            case EAGAIN, EINPROGRESS: return .live
            case ECONNREFUSED, ENOENT: return .stale
            case let code: return .failed(code)
            }
        case .failure: return .failed(ENAMETOOLONG)
        }
    }

    /// Refuses a socket directory that group or others may write: whoever may write it may
    /// replace the socket with their own (and read what clients send) or remove it.
    static func checkDirectory(_ directory: String) throws(HTTPServerError) {
        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw HTTPServerError.socketDirectory("cannot inspect \(directory): \(errnoDescription(errno))")
        }
        let mode = info.st_mode & 0o7777
        let writers = [(0o020, "group"), (0o002, "others")].filter { mode & $0.0 != 0 }.map(\.1)
        guard writers.isEmpty else {
            throw HTTPServerError.socketDirectory(
                "the socket directory \(directory) is writable by \(writers.joined(separator: " and ")) "
                    + "(mode \(String(mode, radix: 8))), so another user could replace the socket; "
                    + "run: chmod go-w \(directory) (or choose a socket path in a directory only tokend's user may write)"
            )
        }
        let user = geteuid()
        guard info.st_uid == user || info.st_uid == 0 else {
            throw HTTPServerError.socketDirectory(
                "the socket directory \(directory) belongs to uid \(info.st_uid), neither tokend's user (uid \(user)) "
                    + "nor root, so that user could replace the socket; run: chown \(user) \(directory) "
                    + "(or choose a socket path in a directory of tokend's user or root)"
            )
        }
    }

    /// A fresh directory, mode 0700, beside a socket's final path, where the socket is bound
    /// and given its mode before it gets its final name.
    struct Staging {
        let directory: String
        var socketPath: String { directory + "/s" }

        init(beside path: String) throws(HTTPServerError) {
            var template = Array((UnixSocketFile.parentDirectory(of: path) + "/.tdXXXXXX").utf8CString)
            // mkdtemp fills in the Xs and creates the directory with mode 0700.
            let created = template.withUnsafeMutableBufferPointer {
                mkdtemp($0.baseAddress!).map { String(cString: $0) }
            }
            guard let created else {
                throw HTTPServerError.socketDirectory(
                    "cannot create a private directory beside \(path) to bind in: \(errnoDescription(errno))"
                )
            }
            directory = created
        }

        /// Gives the bound socket its final mode, then its final name (never replacing a file).
        func publish(as path: String, mode: UInt32) throws(HTTPServerError) {
            guard chmod(socketPath, mode_t(mode)) == 0 else {
                throw HTTPServerError.bindFailed(
                    "cannot set mode \(String(mode, radix: 8)) on the socket for \(path): \(errnoDescription(errno))"
                )
            }
            guard link(socketPath, path) == 0 else {
                let code = errno
                if code == EEXIST {
                    throw HTTPServerError.addressInUse("\(path) appeared while tokend was binding it: another tokend?")
                }
                throw HTTPServerError.bindFailed("cannot create the socket \(path): \(errnoDescription(code))")
            }
        }

        /// Removes the staging name and directory (the socket keeps its final name).
        func remove() {
            unlink(socketPath)
            rmdir(directory)
        }
    }

    static func identity(of path: String) -> FileIdentity? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Removes the socket file if it is still the one this process bound.
    static func remove(_ path: String, ifStill identity: FileIdentity?) {
        guard let identity, self.identity(of: path) == identity else { return }
        unlink(path)
    }

    /// The directory a path's file is in: `.` for a bare name, `/` for a file in the root.
    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    private static func createParentDirectory(of path: String) throws(HTTPServerError) {
        let parent = parentDirectory(of: path)
        guard parent != ".", parent != "/" else { return }
        var info = stat()
        if stat(parent, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw HTTPServerError.socketDirectory("\(parent) exists and is not a directory")
            }
            return
        }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in parent.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0, errno != EEXIST {
                throw HTTPServerError.socketDirectory(
                    "cannot create the socket directory \(prefix): \(errnoDescription(errno))"
                )
            }
            prefix += "/"
        }
    }
}

/// `strerror` text for an errno value.
func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}
