package import Glibc

/// The address of a Unix stream socket, filled in one place for the client, the server's
/// stale-socket probe and the tests.
package enum UnixSocketAddress {
    /// `sizeof(sockaddr_un.sun_path)` minus the terminating NUL.
    package static let maxPathBytes = 107
}

/// A Unix socket path longer than ``UnixSocketAddress/maxPathBytes``.
package struct UnixPathTooLong: Error, Sendable {}

/// Calls `body` with a `sockaddr_un` for `path` and its length; fails when the path is too
/// long. With `abstract`, `path` is a name in Linux's abstract namespace (written `@name` by
/// NOTIFY_SOCKET and the tests), not a file.
package func withUnixAddress<R>(
    _ path: String,
    abstract: Bool = false,
    _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
) -> Result<R, UnixPathTooLong> {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    // An abstract name starts with a NUL; a path ends with one, which its length counts.
    let bytes = abstract ? [0] + Array(path.utf8) : Array(path.utf8) + [0]
    guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else { return .failure(UnixPathTooLong()) }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
    return .success(
        withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    )
}
