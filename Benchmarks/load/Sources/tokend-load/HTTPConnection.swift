import CArgon2Load

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 keep-alive connection over a Unix stream socket, blocking I/O, used by one
/// thread: write a request, read exactly one response (Content-Length or chunked).
final class HTTPConnection {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A parsed response. `body` is valid until the next call on the connection.
    struct Response {
        var status: Int
        var body: UnsafeRawBufferPointer
        /// The server said `Connection: close` (or spoke HTTP/1.0 without keep-alive).
        var closes: Bool
    }

    let path: String
    private(set) var fd: Int32 = -1
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    /// Decoded chunked bodies.
    private var chunked: UnsafeMutableRawBufferPointer
    private var chunkedCount = 0
    private static let maximumResponse = 8 << 20

    init(path: String) throws {
        self.path = path
        buffer = .allocate(byteCount: 64 << 10, alignment: 16)
        chunked = .allocate(byteCount: 64 << 10, alignment: 16)
        try connect()
    }

    deinit {
        if fd >= 0 { close(fd) }
        buffer.deallocate()
        chunked.deallocate()
    }

    func connect() throws {
        if fd >= 0 { close(fd) }
        start = 0
        end = 0
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw Failure(description: "socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard status == 0 else {
            let text = String(cString: strerror(errno))
            close(fd)
            fd = -1
            throw Failure(description: "connect \(path): \(text)")
        }
    }

    /// Writes all of `request`.
    func send(_ request: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < request.count {
            let n = write(fd, request.baseAddress! + offset, request.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Reads more bytes after `end`, compacting or growing the buffer when it is full.
    private func fill() throws {
        if end == buffer.count { try makeRoom() }
        while true {
            let n = read(fd, buffer.baseAddress! + end, buffer.count - end)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw Failure(description: "connection closed by the server") }
            end += n
            return
        }
    }

    /// Compacts the buffer, or doubles it when it holds one unread response that fills it.
    private func makeRoom() throws {
        do {
            if start > 0 {
                let live = end - start
                if live > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: live) }
                start = 0
                end = live
            } else {
                guard buffer.count < Self.maximumResponse else { throw Failure(description: "response over 8 MiB") }
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 16)
                bigger.baseAddress!.copyMemory(from: buffer.baseAddress!, byteCount: end)
                buffer.deallocate()
                buffer = bigger
            }
        }
    }

    /// Index just past `\r\n\r\n` at or after `from`, if buffered.
    private func headEnd(from: Int) -> Int? {
        let base = buffer.baseAddress!
        guard end - from >= 4 else { return nil }
        guard let hit = tokend_load_memmem(base + from, end - from, "\r\n\r\n", 4) else { return nil }
        return UnsafeRawPointer(base).distance(to: hit) + 4
    }

    /// Index just past the next `\r\n` at or after `from`, if buffered.
    private func lineEnd(from: Int) -> Int? {
        let base = buffer.baseAddress!
        guard end - from >= 2 else { return nil }
        guard let hit = tokend_load_memmem(base + from, end - from, "\r\n", 2) else { return nil }
        return UnsafeRawPointer(base).distance(to: hit) + 2
    }

    /// Reads one response, blocking.
    func receive() throws -> Response {
        while true {
            if let response = try parse() { return response }
            try fill()
        }
    }

    /// Reads what the socket has without blocking; false when it had nothing (EAGAIN).
    func receiveAvailable() throws -> Bool {
        if end == buffer.count { try makeRoom() }
        while true {
            let n = recv(fd, buffer.baseAddress! + end, buffer.count - end, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return false }
                throw Failure(description: "read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw Failure(description: "connection closed by the server") }
            end += n
            return true
        }
    }

    /// One whole response from the buffered bytes, consuming them; nil (nothing consumed) when
    /// the buffer does not hold a whole response yet.
    func parse() throws -> Response? {
        guard let head = headEnd(from: start) else { return nil }
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        // Status line: HTTP/1.x NNN
        guard head - start >= 12, base[start] == UInt8(ascii: "H"), base[start + 8] == UInt8(ascii: " ") else {
            throw Failure(description: "malformed status line")
        }
        let d0 = Int(base[start + 9]) - 48
        let d1 = Int(base[start + 10]) - 48
        let d2 = Int(base[start + 11]) - 48
        guard (0...9).contains(d0), (0...9).contains(d1), (0...9).contains(d2) else {
            throw Failure(description: "malformed status code")
        }
        let status = d0 * 100 + d1 * 10 + d2
        var closes = base[start + 7] == UInt8(ascii: "0")
        var contentLength: Int?
        var isChunked = false
        // Header lines.
        var line = lineEnd(from: start)!
        while line < head - 2 {
            let next = lineEnd(from: line)!
            let text = UnsafeRawBufferPointer(start: base + line, count: next - 2 - line)
            if let colon = text.firstIndex(of: UInt8(ascii: ":")) {
                let name = UnsafeRawBufferPointer(rebasing: text[0..<colon])
                var valueStart = colon + 1
                while valueStart < text.count, text[valueStart] == UInt8(ascii: " ") || text[valueStart] == 9 {
                    valueStart += 1
                }
                let value = UnsafeRawBufferPointer(rebasing: text[valueStart..<text.count])
                if Self.equalsLower(name, "content-length") {
                    var n = 0
                    for byte in value where (48...57).contains(byte) { n = n * 10 + Int(byte - 48) }
                    contentLength = n
                } else if Self.equalsLower(name, "transfer-encoding") {
                    isChunked = Self.containsLower(value, "chunked")
                } else if Self.equalsLower(name, "connection") {
                    if Self.containsLower(value, "close") { closes = true }
                    if Self.containsLower(value, "keep-alive") { closes = false }
                }
            }
            line = next
        }
        var cursor = head
        let body: UnsafeRawBufferPointer
        if isChunked {
            // First check that every chunk is buffered, then copy them out.
            var chunks: [(start: Int, size: Int)] = []
            var total = 0
            while true {
                guard let sizeLine = lineEnd(from: cursor) else { return nil }
                var size = 0
                var i = cursor
                while i < sizeLine - 2 {
                    let c = base[i]
                    let v: Int
                    switch c {
                    case 48...57: v = Int(c) - 48
                    case 97...102: v = Int(c) - 87
                    case 65...70: v = Int(c) - 55
                    default: v = -1
                    }
                    if v < 0 { break }
                    size = size * 16 + v
                    i += 1
                }
                guard end - sizeLine >= size + 2 else { return nil }
                if size == 0 {
                    // Trailers end with an empty line; tokend and nginx send none.
                    cursor = sizeLine + 2
                    break
                }
                chunks.append((sizeLine, size))
                total += size
                guard total <= Self.maximumResponse else { throw Failure(description: "response over 8 MiB") }
                cursor = sizeLine + size + 2
            }
            if total > chunked.count {
                chunked.deallocate()
                chunked = .allocate(byteCount: max(chunked.count * 2, total), alignment: 16)
            }
            chunkedCount = 0
            for chunk in chunks {
                (chunked.baseAddress! + chunkedCount).copyMemory(from: base + chunk.start, byteCount: chunk.size)
                chunkedCount += chunk.size
            }
            body = UnsafeRawBufferPointer(start: chunked.baseAddress!, count: chunkedCount)
        } else {
            let length = contentLength ?? 0
            guard end - cursor >= length else {
                if cursor + length > buffer.count, start == 0, buffer.count >= Self.maximumResponse {
                    throw Failure(description: "response over 8 MiB")
                }
                return nil
            }
            body = UnsafeRawBufferPointer(start: buffer.baseAddress! + cursor, count: length)
            cursor += length
        }
        // The body stays valid until the next read: compaction happens only when reading.
        start = cursor
        if start == end {
            start = 0
            end = 0
        }
        return Response(status: status, body: body, closes: closes)
    }

    static func equalsLower(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        guard bytes.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        for i in 0..<bytes.count where bytes[i] | 0x20 != l[i] | 0x20 { return false }
        return true
    }

    static func containsLower(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        let n = lower.utf8CodeUnitCount
        guard bytes.count >= n else { return false }
        let l = lower.utf8Start
        outer: for s in 0...(bytes.count - n) {
            for i in 0..<n where bytes[s + i] | 0x20 != l[i] | 0x20 { continue outer }
            return true
        }
        return false
    }
}

/// Whether `needle` occurs in `haystack`.
func contains(_ haystack: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
    if needle.isEmpty { return true }
    guard haystack.count >= needle.count, let base = haystack.baseAddress else { return false }
    return needle.withUnsafeBytes { tokend_load_memmem(base, haystack.count, $0.baseAddress, $0.count) } != nil
}
