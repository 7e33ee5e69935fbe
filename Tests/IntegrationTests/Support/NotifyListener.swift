import Foundation
import Synchronization
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One sd_notify datagram: its assignments and the sender's pid (SCM_CREDENTIALS).
struct NotifyMessage: Sendable, CustomStringConvertible {
    let fields: [String: String]
    let raw: String
    let senderPID: Int32?

    subscript(name: String) -> String? { fields[name] }

    var description: String { raw.replacingOccurrences(of: "\n", with: " | ") }
}

/// Plays systemd's side of `NOTIFY_SOCKET`: a SOCK_DGRAM socket bound at a path in the test's
/// directory, SO_PASSCRED on (like systemd, to see who sent what), read by a thread of its own.
final class NotifyListener: Sendable {
    let path: String
    private let fd: Int32
    private let state = Mutex<(messages: [NotifyMessage], stopped: Bool)>(([], false))
    private let finished = Mutex<Bool>(false)

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(AF_UNIX, SOCK_DGRAM): \(String(cString: strerror(errno)))") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw HarnessError("bind \(path): \(message)")
        }
        let thread = Thread { [self] in self.receiveLoop() }
        thread.start()
    }

    private func receiveLoop() {
        var data = [UInt8](repeating: 0, count: 4096)
        // cmsghdr (16 bytes on 64-bit Linux) + struct ucred (12 bytes, padded to 16).
        var control = [UInt8](repeating: 0, count: 64)
        while !state.withLock({ $0.stopped }) {
            let received: Int = data.withUnsafeMutableBytes { dataBuffer in
                control.withUnsafeMutableBytes { controlBuffer in
                    var vector = iovec(iov_base: dataBuffer.baseAddress, iov_len: dataBuffer.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var header = msghdr()
                        header.msg_iov = vectorPointer
                        header.msg_iovlen = 1
                        header.msg_control = controlBuffer.baseAddress
                        header.msg_controllen = controlBuffer.count
                        return recvmsg(fd, &header, 0)
                    }
                }
            }
            guard received > 0 else { continue }  // timeout (EAGAIN), EINTR: check `stopped` and go on
            let raw = String(decoding: data[0..<received], as: UTF8.self)
            var fields: [String: String] = [:]
            for line in raw.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            let message = NotifyMessage(fields: fields, raw: raw, senderPID: Self.senderPID(control))
            state.withLock { $0.messages.append(message) }
        }
        Glibc.close(fd)
        unlink(path)
        finished.withLock { $0 = true }
    }

    /// The pid of an SCM_CREDENTIALS control message at the start of `control`.
    private static func senderPID(_ control: [UInt8]) -> Int32? {
        let length = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: Int.self) }
        let level = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: Int32.self) }
        let type = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: Int32.self) }
        // SOL_SOCKET = 1, SCM_CREDENTIALS = 2
        guard length >= 16 + 12, level == SOL_SOCKET, type == 2 else { return nil }
        return control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: Int32.self) }
    }

    /// Every message received so far, oldest first.
    var messages: [NotifyMessage] { state.withLock { $0.messages } }

    /// Waits for the first message at index ≥ `start` that satisfies `predicate`; returns it
    /// and its index.
    func waitFor(
        _ what: String,
        after start: Int = 0,
        timeout: Duration = .seconds(20),
        _ predicate: @escaping @Sendable (NotifyMessage) -> Bool
    ) async throws -> (index: Int, message: NotifyMessage) {
        do {
            return try await eventually("\(what) on NOTIFY_SOCKET", timeout: timeout) {
                let all = self.messages
                guard start < all.count else { return nil }
                return all.indices[start...].first { predicate(all[$0]) }.map { ($0, all[$0]) }
            }
        } catch {
            throw HarnessError("\(error); received: \(messages.map(\.description))")
        }
    }

    /// Stops the reader thread, which closes the socket and removes its file.
    func close() async {
        state.withLock { $0.stopped = true }
        _ = try? await eventually("the notify listener to stop", timeout: .seconds(5), interval: .milliseconds(20)) {
            self.finished.withLock { $0 } ? true : nil
        }
    }
}
