import Foundation
import TokenClient

@testable import TokenServer

/// A plain blocking socket for sending bytes no well-behaved client would send, and reading
/// exactly what the server answers.
final class RawConnection {
    let fd: Int32

    init(unixPath path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RawError("socket: \(errnoDescription(errno))") }
        let result = withUnixAddress(path) { address, length in connect(fd, address, length) }
        guard case .success(0) = result else {
            let message = errnoDescription(errno)
            Foundation.close(fd)
            throw RawError("connect \(path): \(message)")
        }
        setTimeout(seconds: 10)
    }

    init(adopting fd: Int32) {
        self.fd = fd
        setTimeout(seconds: 10)
    }

    deinit { Foundation.close(fd) }

    private func setTimeout(seconds: Int) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends everything; returns false when the server stopped reading (EPIPE/ECONNRESET).
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                Foundation.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
            } else if errno != EINTR {
                return false
            }
        }
        return true
    }

    @discardableResult
    func write(_ text: String) -> Bool { write(Array(text.utf8)) }

    /// Reads until the server closes the connection (or the 10 s timeout); a reset counts as
    /// the end.
    func readToEnd() -> (bytes: [UInt8], closed: Bool) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                bytes += chunk[0..<count]
            } else if count == 0 {
                return (bytes, true)
            } else if errno == EINTR {
                continue
            } else {
                return (bytes, errno == ECONNRESET)
            }
        }
    }

    /// Reads until `count` complete responses have arrived (framed by Content-Length).
    func readResponses(_ count: Int) throws -> [RawResponse] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let parsed = RawResponse.parseAll(bytes)
            if parsed.count >= count { return parsed }
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received > 0 {
                bytes += chunk[0..<received]
            } else if received < 0, errno == EINTR {
                continue
            } else {
                throw RawError(
                    "connection ended after \(parsed.count) of \(count) responses: \(String(decoding: bytes, as: UTF8.self))"
                )
            }
        }
    }

    /// Whether the server has closed the connection, waiting at most `timeout`.
    func isClosedByPeer(within timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
        }
        return false
    }
}

struct RawError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One response parsed from raw bytes.
struct RawResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    /// Every complete response at the start of `bytes` (1xx interim responses included).
    static func parseAll(_ bytes: [UInt8]) -> [RawResponse] {
        var responses: [RawResponse] = []
        var index = 0
        while let end = find([13, 10, 13, 10], in: bytes, from: index) {
            let head = String(decoding: bytes[index..<end], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else { break }
            let headers = lines.compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            var response = RawResponse(status: status, headers: headers, body: [])
            let length = Int(response.header("Content-Length") ?? "0") ?? 0
            let bodyStart = end + 4
            guard bytes.count >= bodyStart + length else { break }
            response.body = Array(bytes[bodyStart..<bodyStart + length])
            responses.append(response)
            index = bodyStart + length
        }
        return responses
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for i in start...(bytes.count - needle.count) where bytes[i..<i + needle.count].elementsEqual(needle) {
            return i
        }
        return nil
    }
}
