package import Glibc

/// The address of a Unix stream socket, filled in one place for the client, the server's
/// stale-socket probe and the tests.
package enum UnixSocketAddress {
    /// `sizeof(sockaddr_un.sun_path)` minus the terminating NUL.
    package static let maxPathBytes = 107
}

/// A Unix socket path longer than ``UnixSocketAddress/maxPathBytes``.
package struct UnixPathTooLong: Error, Sendable {}

/// Calls `body` with a `sockaddr_un` for `path`; fails when the path is too long.
package func withUnixAddress<R>(
    _ path: String,
    _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
) -> Result<R, UnixPathTooLong> {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else { return .failure(UnixPathTooLong()) }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + 1)
    return .success(
        withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    )
}
