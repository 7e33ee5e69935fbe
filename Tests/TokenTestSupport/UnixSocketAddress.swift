#if canImport(Glibc)
import Glibc
#endif

/// Calls `body` with the `sockaddr_un` of `name` and its length: a filesystem path, or an
/// abstract name written `@name` (as NOTIFY_SOCKET writes it). Returns -1 with errno
/// ENAMETOOLONG when the name does not fit.
func withUnixSocketAddress(_ name: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let isAbstract = name.hasPrefix("@")
    let bytes = isAbstract ? [0] + Array(name.utf8.dropFirst()) : Array(name.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        errno = ENAMETOOLONG
        return -1
    }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    // A path's length counts its terminating NUL; an abstract name's is exactly its bytes.
    let length = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (isAbstract ? 0 : 1)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
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
