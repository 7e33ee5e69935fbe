import Glibc
import TokenClient

/// Calls `body` with the `sockaddr_un` of `name` and its length: a filesystem path, or an
/// abstract name written `@name` (as NOTIFY_SOCKET writes it). Returns -1 with errno
/// ENAMETOOLONG when the name does not fit.
func withUnixSocketAddress(_ name: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    let isAbstract = name.hasPrefix("@")
    switch withUnixAddress(isAbstract ? String(name.dropFirst()) : name, abstract: isAbstract, body) {
    case .success(let result):
        return result
    case .failure:
        errno = ENAMETOOLONG
        return -1
    }
}

/// bind(2) of `fd` to the Unix socket `name` (a path, or `@abstract`): 0, or -1 with errno.
public func bindUnixSocket(_ fd: Int32, to name: String) -> Int32 {
    withUnixSocketAddress(name) { bind(fd, $0, $1) }
}

/// connect(2) of `fd` to the Unix socket `name` (a path, or `@abstract`): 0, or -1 with errno.
public func connectUnixSocket(_ fd: Int32, to name: String) -> Int32 {
    withUnixSocketAddress(name) { connect(fd, $0, $1) }
}

/// A Unix stream socket bound at `path` and listening, for tests that play the server.
public func listeningUnixSocket(at path: String, backlog: Int32 = 16) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
    guard bindUnixSocket(fd, to: path) == 0, listen(fd, backlog) == 0 else {
        let message = String(cString: strerror(errno))
        close(fd)
        throw HarnessError("bind/listen \(path): \(message)")
    }
    return fd
}

/// Sets the send and receive timeouts of a socket (SO_SNDTIMEO, SO_RCVTIMEO).
func setSocketTimeouts(_ fd: Int32, seconds: Double) {
    var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
}
