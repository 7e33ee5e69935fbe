import Foundation
public import JOSE

#if canImport(Glibc)
import Glibc
#endif

/// One response header.
public struct Header: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let value: String
    public var description: String { "\(name): \(value)" }

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// One HTTP/1.1 response as it came off the wire.
public struct Reply: Sendable {
    public let status: Int
    public let headers: [Header]
    public let body: [UInt8]
    /// How long from sending the request to reading the whole response.
    public let elapsed: Duration

    public init(status: Int, headers: [Header], body: [UInt8], elapsed: Duration = .zero) {
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
    }

    /// The first header called `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed with JOSE's strict parser (keeps JSON types apart: bool, number, …).
    public var json: JSONValue? { try? JSONParser().parse(body) }

    /// A string member of the JSON body.
    public func string(_ member: String) -> String? { json?[member]?.stringValue }

    /// For failure messages: status and body with tokens masked.
    public var summary: String { "\(status) \(text.redactingSecrets.prefix(600))" }

    /// Every complete response at the start of `bytes` (1xx interim responses included); the
    /// last one without a length runs to the end of the bytes.
    public static func parseAll(_ bytes: [UInt8]) -> [Reply] {
        let reader = ResponseReader(bytes)
        var replies: [Reply] = []
        while !reader.isEmpty, let reply = try? reader.readResponse() { replies.append(reply) }
        return replies
    }
}

/// A request body and its Content-Type.
public enum RequestBody: Sendable {
    case form([(String, String)])
    case json(String)
    case raw(contentType: String?, [UInt8])

    public var contentType: String? {
        switch self {
        case .form: "application/x-www-form-urlencoded"
        case .json: "application/json"
        case .raw(let type, _): type
        }
    }

    public var bytes: [UInt8] {
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
    public var formEncoded: String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return addingPercentEncoding(withAllowedCharacters: allowed) ?? self
    }

    /// A JSON string literal.
    public var jsonQuoted: String { JSONValue.string(self).compactText }
}

/// Compact JSON text of an object (members sorted by name).
public func jsonText(_ members: [String: JSONValue]) -> String {
    JSONValue.object(JSONObject(members.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })).compactText
}

/// The raw bytes of a request with `Host: localhost`. Adds Content-Type and Content-Length for
/// a body and, unless `keepAlive`, `Connection: close`.
public func requestBytes(
    _ method: String,
    _ target: String,
    headers: [(String, String)] = [],
    body: RequestBody? = nil,
    keepAlive: Bool = false
) -> [UInt8] {
    var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    if let type = body?.contentType { head += "Content-Type: \(type)\r\n" }
    let payload = body?.bytes
    if let payload { head += "Content-Length: \(payload.count)\r\n" }
    if !keepAlive { head += "Connection: close\r\n" }
    head += "\r\n"
    return Array(head.utf8) + (payload ?? [])
}

/// One request on a fresh connection to the Unix socket at `socket`.
public func http(
    _ socket: String,
    _ method: String,
    _ target: String,
    headers: [(String, String)] = [],
    body: RequestBody? = nil,
    timeout: Double = Timeouts.request
) async throws -> Reply {
    let bytes = requestBytes(method, target, headers: headers, body: body)
    return try await exchange(socket, bytes, head: method == "HEAD", timeout: timeout)
}

/// Sends `bytes` as they are (a hand-made request) on a fresh connection and reads one response.
public func rawExchange(_ socket: String, _ bytes: [UInt8], timeout: Double = Timeouts.request) async throws -> Reply {
    try await exchange(socket, bytes, head: false, timeout: timeout)
}

private func exchange(_ socket: String, _ bytes: [UInt8], head: Bool, timeout: Double) async throws -> Reply {
    try await onThread {
        let connection = try UnixConnection(path: socket, timeout: timeout)
        defer { connection.close() }
        let started = ContinuousClock.now
        try connection.send(bytes)
        return try connection.readResponse(head: head, since: started)
    }
}

/// A blocking client connection to a Unix stream socket: write bytes, read HTTP/1.1 responses
/// (framed by Content-Length, chunked, or the end of the connection). Bounded by SO_RCVTIMEO /
/// SO_SNDTIMEO; use it from `onThread`.
public final class UnixConnection {
    public let path: String
    /// The socket; -1 once closed.
    public private(set) var descriptor: Int32
    private let reader: ResponseReader

    /// connect(2) failed: nobody listens at `path` (yet, or any more).
    public struct ConnectFailed: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "connect(\(path)): \(String(cString: strerror(errno)))" }
    }

    /// Connects to `path`; every read and write waits at most `timeout` seconds.
    public init(path: String, timeout: Double = Timeouts.request) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        guard connectUnixSocket(fd, to: path) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw ConnectFailed(path: path, errno: code)
        }
        self.path = path
        descriptor = fd
        reader = ResponseReader(fd: fd, name: path)
        setSocketTimeouts(fd, seconds: timeout)
    }

    /// Takes over an accepted connection (a test playing the server).
    public init(adopting fd: Int32, timeout: Double = Timeouts.request) {
        path = "accepted connection"
        descriptor = fd
        reader = ResponseReader(fd: fd, name: path)
        setSocketTimeouts(fd, seconds: timeout)
    }

    deinit { close() }

    public func close() {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
    }

    /// Writes all of `bytes`; false when the peer stopped reading (EPIPE, ECONNRESET), which
    /// a server may do after answering early (413): the answer is still there to read.
    @discardableResult
    public func send(_ bytes: [UInt8]) throws -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE || errno == ECONNRESET { return false }
                throw HarnessError("send on \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        return true
    }

    @discardableResult
    public func send(_ text: String) throws -> Bool { try send(Array(text.utf8)) }

    /// Reads one response. `head`: it answers a HEAD request (no body whatever its headers
    /// say). `elapsed` is measured from `started`.
    public func readResponse(head: Bool = false, since started: ContinuousClock.Instant = .now) throws -> Reply {
        try reader.readResponse(head: head, since: started)
    }

    /// Everything until the peer closes the connection or a read times out; `closed` is true
    /// when the peer closed it (end of stream or reset).
    public func readToEnd() -> (bytes: [UInt8], closed: Bool) {
        reader.readToEnd()
    }

    /// Whether the peer closes the connection within `timeout` (data it sends meanwhile is
    /// read and dropped).
    public func isClosedByPeer(within timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&request, 1, 50) > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
        }
        return false
    }
}

/// Reads HTTP/1.1 responses from a socket, or from bytes already read.
final class ResponseReader {
    private let fd: Int32?
    private let name: String
    private var buffer: [UInt8]

    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
        buffer = []
    }

    init(_ bytes: [UInt8]) {
        fd = nil
        name = "the bytes"
        buffer = bytes
    }

    var isEmpty: Bool { buffer.isEmpty }

    /// Reads more bytes into the buffer; false at the end of the stream.
    private func fill() throws -> Bool {
        guard let fd else { return false }
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
                throw HarnessError("no answer from \(name) in time (read timeout)")
            }
            if errno == ECONNRESET { return false }
            throw HarnessError("recv on \(name): \(String(cString: strerror(errno)))")
        }
    }

    func readToEnd() -> (bytes: [UInt8], closed: Bool) {
        var closed = false
        do {
            while try fill() {}
            closed = true
        } catch {}
        defer { buffer = [] }
        return (buffer, closed)
    }

    /// The offset of `separator` in the buffer, reading until it arrives.
    private func find(_ separator: [UInt8], _ what: String) throws -> Int {
        while true {
            if let end = buffer.firstRange(of: separator)?.lowerBound { return end }
            guard try fill() else {
                throw HarnessError("\(name) ended inside \(what) (\(buffer.count) bytes unread)")
            }
        }
    }

    /// The next `count` bytes of the buffer, reading until they arrive.
    private func take(_ count: Int, _ what: String) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw HarnessError("\(name) ended inside \(what)") }
        }
        defer { buffer.removeFirst(count) }
        return Array(buffer[0..<count])
    }

    func readResponse(head isHead: Bool = false, since started: ContinuousClock.Instant = .now) throws -> Reply {
        let headEnd = try find(Array("\r\n\r\n".utf8), "a response head")
        let head = String(decoding: try take(headEnd + 4, "a response head").dropLast(4), as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HarnessError("malformed status line from \(name): \(statusLine.prefix(80))")
        }
        let headers: [Header] = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return Header(
                name: String(line[..<colon]),
                value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        let response = Reply(status: status, headers: headers, body: [])
        var body: [UInt8] = []
        if isHead || status == 204 || status == 304 || (100..<200).contains(status) {
            // no body
        } else if let length = response.header("Content-Length").flatMap({ Int($0) }) {
            body = try take(length, "a body")
        } else if response.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            body = try readChunked()
        } else {
            while try fill() {}
            (body, buffer) = (buffer, [])
        }
        return Reply(status: status, headers: headers, body: body, elapsed: ContinuousClock.now - started)
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let lineEnd = try find([13, 10], "a chunk size")
            let sizeLine = String(decoding: try take(lineEnd + 2, "a chunk size").dropLast(2), as: UTF8.self)
            let sizeText = sizeLine.split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw HarnessError("malformed chunk size from \(name)")
            }
            let chunk = try take(size + 2, "a chunk")
            if size == 0 { return body }
            body += chunk.dropLast(2)
        }
    }
}
