import Foundation
import JOSE
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One response header.
struct Header: Sendable, Equatable, CustomStringConvertible {
    let name: String
    let value: String
    var description: String { "\(name): \(value)" }
}

/// One HTTP/1.1 response as it came off the wire.
struct Reply: Sendable {
    let status: Int
    let headers: [Header]
    let body: [UInt8]
    /// How long from sending the request to reading the whole response.
    let elapsed: Duration

    func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed with JOSE's strict parser (keeps JSON types apart: bool, number, …).
    var json: JSONValue? { try? JSONParser().parse(body) }

    /// For failure messages: status and body with tokens masked.
    var summary: String { "\(status) \(text.redactingSecrets.prefix(600))" }
}

/// A request body and its Content-Type.
enum RequestBody: Sendable {
    case form([(String, String)])
    case json(String)
    case raw(contentType: String?, [UInt8])

    var contentType: String? {
        switch self {
        case .form: "application/x-www-form-urlencoded"
        case .json: "application/json"
        case .raw(let type, _): type
        }
    }

    var bytes: [UInt8] {
        switch self {
        case .form(let fields):
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            func encode(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s }
            return Array(fields.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&").utf8)
        case .json(let text): return Array(text.utf8)
        case .raw(_, let bytes): return bytes
        }
    }
}

/// Compact JSON text of an object (members sorted by name).
func jsonText(_ members: [String: JSONValue]) -> String {
    JSONValue.object(JSONObject(members.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })).compactText
}

/// A blocking client connection to a Unix stream socket; use it from `onThread`.
final class UnixConnection {
    let path: String
    private var fd: Int32
    private var buffer: [UInt8] = []

    init(path: String, timeout: Double) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw HarnessError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let code = errno
            Glibc.close(fd)
            throw HarnessError("connect(\(path)): \(String(cString: strerror(code)))")
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Writes all of `bytes`; false when the server stopped reading (EPIPE, ECONNRESET), which
    /// it may do after answering early (413): the answer is still there to read.
    func send(_ bytes: [UInt8]) throws -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE || errno == ECONNRESET { return false }
                throw HarnessError("send on \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        return true
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer += chunk[0..<n]
                return true
            }
            if n == 0 { return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw HarnessError("no answer from \(path) in time") }
            if errno == ECONNRESET { return false }
            throw HarnessError("recv on \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Reads one response (Content-Length, chunked, or to the end of the connection).
    func readResponse(head isHead: Bool, started: ContinuousClock.Instant) throws -> Reply {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd = buffer.firstRange(of: separator)?.lowerBound
        while headEnd == nil {
            guard try fill() else { throw HarnessError("connection to \(path) closed before a complete response") }
            headEnd = buffer.firstRange(of: separator)?.lowerBound
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let parts = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HarnessError("malformed status line from \(path)")
        }
        let headers: [Header] = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return Header(
                name: String(line[..<colon]),
                value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        func header(_ name: String) -> String? {
            headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
        }
        var body: [UInt8] = []
        if isHead || status == 204 || status == 304 || (100..<200).contains(status) {
        } else if let length = header("Content-Length").flatMap({ Int($0) }) {
            while buffer.count < length {
                guard try fill() else { throw HarnessError("connection to \(path) closed inside a body") }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else if header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            throw HarnessError("chunked responses are not expected from tokend")
        } else {
            while try fill() {}
            body = buffer
            buffer = []
        }
        return Reply(status: status, headers: headers, body: body, elapsed: ContinuousClock.now - started)
    }
}

/// One request on a fresh connection to the Unix socket at `socket`, with `Host: localhost`.
func http(
    _ socket: String,
    _ method: String,
    _ target: String,
    headers: [(String, String)] = [],
    body: RequestBody? = nil,
    timeout: Double = 30
) async throws -> Reply {
    var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    if let type = body?.contentType { head += "Content-Type: \(type)\r\n" }
    let payload = body?.bytes
    if let payload { head += "Content-Length: \(payload.count)\r\n" }
    head += "Connection: close\r\n\r\n"
    let bytes = Array(head.utf8) + (payload ?? [])
    return try await onThread {
        let connection = try UnixConnection(path: socket, timeout: timeout)
        defer { connection.close() }
        let started = ContinuousClock.now
        _ = try connection.send(bytes)
        return try connection.readResponse(head: method == "HEAD", started: started)
    }
}

/// Sends `bytes` as they are (a hand-made request) on a fresh connection and reads one response.
func rawExchange(_ socket: String, _ bytes: [UInt8], timeout: Double = 30) async throws -> Reply {
    try await onThread {
        let connection = try UnixConnection(path: socket, timeout: timeout)
        defer { connection.close() }
        let started = ContinuousClock.now
        _ = try connection.send(bytes)
        return try connection.readResponse(head: false, started: started)
    }
}
