import Foundation
import Glibc

/// Plays systemd's side of NOTIFY_SOCKET: a SOCK_DGRAM listener bound to a path or an abstract name.
final class NotifyListener {
    let fd: Int32
    /// The value to put in NOTIFY_SOCKET.
    let address: String
    private let directory: String?

    enum Kind { case path, abstract }

    init(_ kind: Kind) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, socklen_t(MemoryLayout<Int32>.size))
        let name: String
        switch kind {
        case .path:
            let directory = try TemporaryDirectory.make(prefix: "sdn")
            self.directory = directory
            name = directory + "/notify.sock"
            self.address = name
        case .abstract:
            self.directory = nil
            name = "\0tokend-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            self.address = "@" + name.dropFirst()
        }
        guard Self.bind(fd, name) == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(.init(rawValue: code)!)
        }
    }

    deinit {
        close(self.fd)
        if let directory {
            unlink(directory + "/notify.sock")
            rmdir(directory)
        }
    }

    /// Binds `fd` to `name` (a leading NUL means the abstract namespace).
    static func bind(_ fd: Int32, _ name: String) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let isAbstract = bytes.first == 0
        let length = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (isAbstract ? 0 : 1)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(length)) }
        }
    }

    /// The next datagram and the sender's pid (from SCM_CREDENTIALS), or nil after `timeout`.
    func receive(timeout: Duration = .seconds(2)) -> (message: String, pid: Int32?)? {
        var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(
            timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        )
        guard poll(&descriptor, 1, milliseconds) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 256)
        let received: Int = buffer.withUnsafeMutableBytes { data in
            control.withUnsafeMutableBytes { control in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { vector in
                    var header = msghdr()
                    header.msg_iov = vector
                    header.msg_iovlen = 1
                    header.msg_control = control.baseAddress
                    header.msg_controllen = control.count
                    let count = recvmsg(self.fd, &header, Int32(MSG_DONTWAIT))
                    controlLength = header.msg_controllen
                    return count
                }
            }
        }
        guard received >= 0 else { return nil }
        // SCM_CREDENTIALS: cmsghdr (16 bytes on 64-bit) then struct ucred { pid, uid, gid }.
        var pid: Int32?
        if controlLength >= 16 + 12 {
            let level = control.withUnsafeBytes { $0.load(fromByteOffset: 8, as: Int32.self) }
            let type = control.withUnsafeBytes { $0.load(fromByteOffset: 12, as: Int32.self) }
            let scmCredentials: Int32 = 2
            if level == SOL_SOCKET && type == scmCredentials {
                pid = control.withUnsafeBytes { $0.load(fromByteOffset: 16, as: Int32.self) }
            }
        }
        return (String(decoding: buffer[..<received], as: UTF8.self), pid)
    }

    private var controlLength = 0

    /// Every datagram that arrives within `window`.
    func drain(window: Duration = .milliseconds(100)) -> [String] {
        var messages: [String] = []
        while let (message, _) = self.receive(timeout: window) { messages.append(message) }
        return messages
    }
}

enum TemporaryDirectory {
    static func make(prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno)!) }
        return String(cString: result)
    }
}
