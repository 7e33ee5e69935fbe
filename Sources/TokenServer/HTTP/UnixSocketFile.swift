import Glibc
import TokenClient

/// The device and inode of a file, to remove a socket file only if it is still ours.
struct FileIdentity: Sendable, Equatable {
    var device: UInt64
    var inode: UInt64
}

/// The file-system side of a Unix listening socket: the stale-socket check before binding,
/// the mode after binding, and the removal at shutdown.
enum UnixSocketFile {
    /// Makes `path` ready to bind: creates the parent directory if missing, removes a stale
    /// socket file, refuses a live socket or a file that is not a socket.
    static func prepare(_ path: String) throws(HTTPServerError) {
        guard !path.isEmpty else { throw HTTPServerError.socketDirectory("the socket path is empty") }
        let limit = UnixSocketAddress.maxPathBytes
        guard path.utf8.count <= limit else {
            throw HTTPServerError.socketPathTooLong(
                "socket path \(path) is \(path.utf8.count) bytes; Unix socket paths are limited to \(limit) bytes"
            )
        }
        try createParentDirectory(of: path)

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
            throw HTTPServerError.addressInUse("another tokend is serving \(path)")
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

    /// Sets the file mode of a freshly bound socket.
    static func setMode(_ path: String, _ mode: UInt32) throws(HTTPServerError) {
        guard chmod(path, mode_t(mode)) == 0 else {
            throw HTTPServerError.bindFailed(
                "cannot set mode \(String(mode, radix: 8)) on \(path): \(errnoDescription(errno))"
            )
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

    private static func createParentDirectory(of path: String) throws(HTTPServerError) {
        guard let slash = path.lastIndex(of: "/") else { return }
        let parent = String(path[..<slash])
        guard !parent.isEmpty else { return }
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
