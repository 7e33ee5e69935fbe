import Foundation
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 response as it came off the wire.
struct HTTPResponse: Sendable {
    let status: Int
    let headers: [(name: String, value: String)]
    let body: [UInt8]

    /// The first header called `name` (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object, or nil.
    var json: [String: any Sendable]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: any Sendable]
    }

    /// A string member of the JSON body.
    func string(_ member: String) -> String? { json?[member] as? String }
}

/// A client connection to a Unix stream socket: write bytes, read HTTP/1.1 responses (framed by
/// Content-Length, chunked, or the end of the connection). Blocking, bounded by SO_RCVTIMEO /
/// SO_SNDTIMEO; use it from `onThread`.
final class UnixConnection {
    let path: String
    private var fd: Int32
    private var buffer: [UInt8] = []

    struct ConnectFailed: Error, CustomStringConvertible {
        let path: String
        let errno: Int32
        var description: String { "connect(\(path)): \(String(cString: strerror(errno)))" }
    }

    init(path: String, timeout: Double = Timeouts.request) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw HarnessError("socket path too long (\(bytes.count) bytes): \(path)")
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
            throw ConnectFailed(path: path, errno: code)
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Writes all of `bytes`.
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HarnessError("send on \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads more bytes into the buffer; false at the end of the stream.
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
            if errno == EAGAIN || errno == EWOULDBLOCK {
                throw HarnessError("no answer from \(path) in time (read timeout)")
            }
            if errno == ECONNRESET { return false }
            throw HarnessError("recv on \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// True when the server has closed the connection (reads EOF), false when the read times out.
    func isClosedByPeer() -> Bool {
        do { return try !fill() } catch { return false }
    }

    /// Reads one response. `headRequest`: the response has no body whatever its headers say.
    func readResponse(headRequest: Bool = false) throws -> HTTPResponse {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            headEnd = buffer.firstRange(of: separator)?.lowerBound
            if headEnd == nil {
                guard try fill() else {
                    throw HarnessError(
                        "connection to \(path) closed before a complete response (\(buffer.count) bytes read)"
                    )
                }
            }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HarnessError("malformed status line from \(path): \(statusLine.prefix(80))")
        }
        let headers: [(name: String, value: String)] = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        func header(_ name: String) -> String? {
            headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
        }
        var body: [UInt8] = []
        if headRequest || status == 204 || status == 304 || (100..<200).contains(status) {
            // no body
        } else if let length = header("Content-Length").flatMap({ Int($0) }) {
            while buffer.count < length {
                guard try fill() else { throw HarnessError("connection to \(path) closed inside a body") }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else if header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            body = try readChunked()
        } else {
            while try fill() {}
            body = buffer
            buffer = []
        }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        let crlf: [UInt8] = [13, 10]
        while true {
            var lineEnd = buffer.firstRange(of: crlf)?.lowerBound
            while lineEnd == nil {
                guard try fill() else { throw HarnessError("connection closed inside a chunk size") }
                lineEnd = buffer.firstRange(of: crlf)?.lowerBound
            }
            let sizeText = String(decoding: buffer[0..<lineEnd!], as: UTF8.self).split(separator: ";")[0]
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw HarnessError("malformed chunk size")
            }
            buffer.removeFirst(lineEnd! + 2)
            while buffer.count < size + 2 {
                guard try fill() else { throw HarnessError("connection closed inside a chunk") }
            }
            if size == 0 {
                buffer.removeFirst(2)
                return body
            }
            body += buffer[0..<size]
            buffer.removeFirst(size + 2)
        }
    }
}

/// The raw bytes of a request. Adds Host, Content-Length (when there is a body) and, unless
/// `keepAlive`, `Connection: close`.
func requestBytes(
    _ method: String,
    _ path: String,
    headers: [(String, String)] = [],
    body: [UInt8]? = nil,
    keepAlive: Bool = false
) -> [UInt8] {
    var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    if let body { head += "Content-Length: \(body.count)\r\n" }
    if !keepAlive { head += "Connection: close\r\n" }
    head += "\r\n"
    return Array(head.utf8) + (body ?? [])
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
            Array(fields.map { "\($0.0.formEncoded)=\($0.1.formEncoded)" }.joined(separator: "&").utf8)
        case .json(let text): Array(text.utf8)
        case .raw(_, let bytes): bytes
        }
    }
}

extension String {
    /// application/x-www-form-urlencoded encoding of one name or value.
    var formEncoded: String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return addingPercentEncoding(withAllowedCharacters: allowed) ?? self
    }

    /// A JSON string literal.
    var jsonQuoted: String {
        let data = try! JSONSerialization.data(withJSONObject: [self], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}

/// One request on a fresh connection to the Unix socket at `socket`.
func http(
    _ socket: String,
    _ method: String,
    _ path: String,
    headers: [(String, String)] = [],
    body: RequestBody? = nil,
    timeout: Double = Timeouts.request
) async throws -> HTTPResponse {
    var allHeaders = headers
    if let type = body?.contentType { allHeaders.append(("Content-Type", type)) }
    let bytes = requestBytes(method, path, headers: allHeaders, body: body?.bytes)
    return try await onThread {
        let connection = try UnixConnection(path: socket, timeout: timeout)
        defer { connection.close() }
        try connection.send(bytes)
        return try connection.readResponse(headRequest: method == "HEAD")
    }
}
