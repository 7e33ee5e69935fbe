import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One sd_notify datagram: its assignments and the sender's pid (SCM_CREDENTIALS).
public struct NotifyMessage: Sendable, CustomStringConvertible {
    public let fields: [String: String]
    /// The datagram as sent.
    public let raw: String
    public let senderPID: Int32?
    /// When the listener read it.
    public let receivedAt: ContinuousClock.Instant

    public subscript(name: String) -> String? { fields[name] }

    public var description: String { raw.replacingOccurrences(of: "\n", with: " | ") }

    init(raw: String, senderPID: Int32?, receivedAt: ContinuousClock.Instant = .now) {
        var fields: [String: String] = [:]
        for line in raw.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        self.fields = fields
        self.raw = raw
        self.senderPID = senderPID
        self.receivedAt = receivedAt
    }
}

/// Plays systemd's side of `NOTIFY_SOCKET`: a SOCK_DGRAM socket bound at a path or an abstract
/// name, SO_PASSCRED on (like systemd, to see who sent what).
///
/// Read in the background (a thread of its own keeps every message, so a daemon's sends never
/// find the queue full) or on request (nothing is read until `receive`, so a test can let the
/// queue fill up).
public final class NotifyListener: Sendable {
    /// Where the socket lives.
    public enum Namespace: Sendable {
        /// A path in a fresh temporary directory of its own.
        case filesystem
        /// A unique abstract name.
        case abstract
    }

    /// Who reads the socket.
    public enum Reading: Sendable {
        /// A thread of the listener's own, into `messages`, until `close()`.
        case inBackground
        /// The test, with `receive` and `drain`.
        case onRequest
    }

    /// The value for NOTIFY_SOCKET: a path, or `@name` for an abstract name.
    public let address: String
    private let fd: Int32
    private let reading: Reading
    private let directory: TemporaryDirectory?
    private let state = Mutex<(messages: [NotifyMessage], stopped: Bool, finished: Bool)>(([], false, false))

    /// A listener bound at `address` (a path, or `@name`).
    public convenience init(address: String, reading: Reading = .inBackground) throws {
        try self.init(address: address, reading: reading, directory: nil)
    }

    /// A listener at a fresh path or abstract name.
    public convenience init(_ namespace: Namespace, reading: Reading = .inBackground) throws {
        switch namespace {
        case .filesystem:
            let directory = try TemporaryDirectory(prefix: "sdn")
            try self.init(address: directory.file("notify.sock"), reading: reading, directory: directory)
        case .abstract:
            let name = "@tokend-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            try self.init(address: name, reading: reading, directory: nil)
        }
    }

    private init(address: String, reading: Reading, directory: TemporaryDirectory?) throws {
        self.address = address
        self.reading = reading
        self.directory = directory
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(AF_UNIX, SOCK_DGRAM): \(String(cString: strerror(errno)))") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bindUnixSocket(fd, to: address) == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw HarnessError("bind \(address): \(message)")
        }
        if reading == .inBackground {
            let thread = Thread { [self] in self.receiveLoop() }
            thread.start()
        }
    }

    deinit {
        if reading == .onRequest { closeSocket() }
    }

    private func closeSocket() {
        Glibc.close(fd)
        if !address.hasPrefix("@") { unlink(address) }
    }

    private func receiveLoop() {
        while !state.withLock({ $0.stopped }) {
            if let message = receiveDatagram(milliseconds: 100) {
                state.withLock { $0.messages.append(message) }
            }
        }
        closeSocket()
        state.withLock { $0.finished = true }
    }

    /// The next datagram, or nil when none arrives within `milliseconds`.
    private func receiveDatagram(milliseconds: Int32) -> NotifyMessage? {
        var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&request, 1, milliseconds) > 0 else { return nil }
        var data = [UInt8](repeating: 0, count: 4096)
        // cmsghdr (16 bytes on 64-bit Linux) + struct ucred (12 bytes, padded to 16).
        var control = [UInt8](repeating: 0, count: 64)
        var controlLength = 0
        let received: Int = data.withUnsafeMutableBytes { dataBuffer in
            control.withUnsafeMutableBytes { controlBuffer in
                var vector = iovec(iov_base: dataBuffer.baseAddress, iov_len: dataBuffer.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var header = msghdr()
                    header.msg_iov = vectorPointer
                    header.msg_iovlen = 1
                    header.msg_control = controlBuffer.baseAddress
                    header.msg_controllen = controlBuffer.count
                    let count = recvmsg(fd, &header, Int32(MSG_DONTWAIT))
                    controlLength = header.msg_controllen
                    return count
                }
            }
        }
        guard received >= 0 else { return nil }
        return NotifyMessage(
            raw: String(decoding: data[0..<received], as: UTF8.self),
            senderPID: controlLength >= 16 + 12 ? Self.senderPID(control) : nil
        )
    }

    /// The pid of an SCM_CREDENTIALS control message at the start of `control`.
    private static func senderPID(_ control: [UInt8]) -> Int32? {
        let level = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: Int32.self) }
        let type = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: Int32.self) }
        // SCM_CREDENTIALS = 2
        guard level == SOL_SOCKET, type == 2 else { return nil }
        return control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: Int32.self) }
    }

    // MARK: Read on request

    /// The next datagram, or nil after `timeout` (listeners read `.onRequest` only).
    public func receive(timeout: Duration = .seconds(2)) -> NotifyMessage? {
        precondition(reading == .onRequest, "a listener read in the background has `messages`")
        let (seconds, attoseconds) = timeout.components
        return receiveDatagram(milliseconds: Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }

    /// Every datagram that arrives within `window` of the one before.
    public func drain(window: Duration = .milliseconds(100)) -> [NotifyMessage] {
        var messages: [NotifyMessage] = []
        while let message = receive(timeout: window) { messages.append(message) }
        return messages
    }

    // MARK: Read in the background

    /// Every message received so far, oldest first.
    public var messages: [NotifyMessage] { state.withLock { $0.messages } }

    /// Waits for the first message at index ≥ `start` that satisfies `predicate`; returns it
    /// and its index.
    public func waitFor(
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
    public func close() async {
        guard reading == .inBackground else { return }
        state.withLock { $0.stopped = true }
        _ = try? await eventually("the notify listener to stop", timeout: .seconds(5), interval: .milliseconds(20)) {
            self.state.withLock { $0.finished } ? true : nil
        }
    }
}
