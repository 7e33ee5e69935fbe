import Glibc

/// The address of systemd's notification socket, parsed from `NOTIFY_SOCKET`.
///
/// Accepted forms, as sd_notify(3) documents them for systemd 252: an absolute path to an
/// `AF_UNIX` datagram socket, or `@name` for a socket in the abstract namespace.
struct NotifySocketAddress: Sendable, Equatable {
    /// The bytes of `sun_path` that the address uses (an abstract name starts with NUL).
    let pathBytes: [UInt8]

    /// Capacity of `sockaddr_un.sun_path` (108 on Linux).
    static let pathCapacity = MemoryLayout<sockaddr_un>.size - MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!

    /// Parses `NOTIFY_SOCKET`; nil when the value is neither an absolute path nor an `@name` that fits.
    init?(_ value: String) {
        var bytes = Array(value.utf8)
        guard let first = bytes.first, !bytes.contains(0) else { return nil }
        switch first {
        case UInt8(ascii: "/"):
            // A path needs room for its terminating NUL.
            guard bytes.count < Self.pathCapacity else { return nil }
        case UInt8(ascii: "@"):
            guard bytes.count >= 2, bytes.count <= Self.pathCapacity else { return nil }
            bytes[0] = 0
        default:
            return nil
        }
        self.pathBytes = bytes
    }

    /// Calls `body` with a filled `sockaddr_un` and the length to pass to `sendto(2)`.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path.copyBytes(from: self.pathBytes)
        }
        let isAbstract = self.pathBytes.first == 0
        let length = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + self.pathBytes.count + (isAbstract ? 0 : 1)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
        }
    }
}

/// Sends one notification datagram without ever blocking.
enum NotifySocket {
    /// Outcome of one send: nil on success, else a description of the failure.
    static func send(_ message: String, to address: NotifySocketAddress) -> String? {
        let socketType = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = socket(AF_UNIX, socketType, 0)
        guard fd >= 0 else { return "socket(AF_UNIX, SOCK_DGRAM): \(SystemCall.describe(errno: errno))" }
        defer { close(fd) }

        var bytes = Array(message.utf8)
        let flags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
        let (sent, code) = address.withSockaddr { sockaddr, length in
            bytes.withUnsafeMutableBytes { buffer in
                SystemCall.retryingEINTR {
                    sendto(fd, buffer.baseAddress, buffer.count, flags, sockaddr, length)
                }
            }
        }
        if sent < 0 {
            return "sendto: \(SystemCall.describe(errno: code))"
        }
        if sent != bytes.count {
            return "sendto: short datagram (\(sent) of \(bytes.count) bytes)"
        }
        return nil
    }
}
