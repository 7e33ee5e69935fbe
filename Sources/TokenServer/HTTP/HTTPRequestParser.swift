import Glibc
import HTTPSyntax
import NIOCore

/// A strict HTTP/1.1 request parser (RFC 9112) over the bytes of one connection.
///
/// Bytes are appended as they arrive; ``next()`` returns the next whole request, a refusal, or
/// nil when more bytes are needed. It accepts only what a well-behaved client sends and
/// refuses the rest with 400 (the ambiguities request smuggling lives on are all refusals):
/// lines end in CRLF; the method is a token; the target is visible ASCII; the version is
/// HTTP/1.0 or HTTP/1.1; a field name is a token followed directly by `:`; a field value holds
/// no control characters; no obs-fold; `Content-Length` is digits (repeated only with the same
/// value), never together with `Transfer-Encoding`; `Transfer-Encoding` is exactly `chunked`
/// (HTTP/1.1 only; an empty one is refused too); chunk sizes are hex, extensions are skipped, trailers are read and dropped.
///
/// Limits: a head (request line, fields, blank line) over `maxHeadBytes` is refused with 431 as
/// soon as that many bytes arrived without its end; a body over `maxBodyBytes` with 413, from
/// `Content-Length` before any body byte, or as chunks arrive.
struct HTTPRequestParser {
    struct Request {
        var method: String
        var target: String
        /// 0 for HTTP/1.0, 1 for HTTP/1.1.
        var minorVersion: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        var keepAlive: Bool
    }

    enum Event {
        case request(Request)
        /// The head asked for `Expect: 100-continue` and its body has not all arrived: the
        /// caller sends the interim response (once per request).
        case continueExpected
        /// The request cannot be read; the connection must end after the answer. `target` is
        /// the request target when the request line was read.
        case refused(HTTPError, target: String?)
    }

    private enum Framing {
        case length(Int)
        case chunked
    }

    /// A parsed head waiting for its body.
    private struct PendingHead {
        var request: Request
        var framing: Framing
        var expectContinue: Bool
        var continueSent = false
        /// Chunked: whether the last chunk was read (trailer fields follow), and the bytes of
        /// trailer fields so far (bounded like a head).
        var trailers = false
        var trailerBytes = 0
    }

    let maxHeadBytes: Int
    let maxBodyBytes: Int
    private var buffer: ByteBuffer
    private var pending: PendingHead?
    private var failed = false

    init(maxHeadBytes: Int, maxBodyBytes: Int, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.maxHeadBytes = maxHeadBytes
        self.maxBodyBytes = maxBodyBytes
        self.buffer = allocator.buffer(capacity: 0)
    }

    /// Whether bytes of an unfinished request are buffered.
    var hasPartialRequest: Bool { pending != nil || buffer.readableBytes > 0 }

    /// Whether a whole head was read and its body has not all arrived.
    var isReadingBody: Bool { pending != nil }

    mutating func append(_ bytes: inout ByteBuffer) {
        guard !failed else { return }
        if buffer.readableBytes == 0 {
            // The common case: no leftover, take the new buffer as it is (no copy).
            buffer = bytes
            bytes.moveReaderIndex(to: bytes.writerIndex)
        } else {
            buffer.writeBuffer(&bytes)
        }
    }

    mutating func next() -> Event? {
        guard !failed else { return nil }
        // The head waiting for its body is taken out while its body is read (not copied),
        // and put back only if the body is not all here yet.
        var head: PendingHead
        if let waiting = pending.take() {
            head = waiting
        } else {
            switch parseHead() {
            case .none: return nil
            case .refused(let error, let target):
                failed = true
                return .refused(error, target: target)
            case .head(let parsed):
                head = parsed
            }
        }
        let event = parseBody(&head)
        switch event {
        case .request:
            break
        case .refused:
            failed = true
        case .continueExpected, .none:
            pending = head
        }
        return event
    }

    // MARK: Head

    private enum HeadResult {
        case none
        case head(PendingHead)
        case refused(HTTPError, target: String?)
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    private mutating func parseHead() -> HeadResult {
        // Empty lines before a request line are skipped (RFC 9112 §2.2).
        while buffer.readableBytes >= 2,
            buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt16.self) == 0x0D0A
        {
            buffer.moveReaderIndex(forwardBy: 2)
        }
        if buffer.readableBytes == 0 {
            release()
            return .none
        }
        let limit = maxHeadBytes
        let result: (HeadResult, consumed: Int) = buffer.withUnsafeReadableBytes { bytes in
            guard let headEnd = Self.findHeadEnd(bytes, limit: limit) else {
                // Only the first `limit` bytes count, in the order they arrive: a client that
                // sent more in one read gets the answer it gets when they come one at a time
                // (found by fuzz-http: a bare LF within the limit is a 400 byte by byte, so it
                // is a 400, not a 431, however many bytes follow it).
                let seen = UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, limit)])
                // A bare LF where a line should end is refused at once rather than waited on.
                if Self.hasBareLF(seen) {
                    return (
                        .refused(
                            .invalidRequest("malformed HTTP request: malformed line ending"),
                            target: Self.requestTarget(seen)
                        ), 0
                    )
                }
                if bytes.count > limit {
                    return (.refused(.headersTooLarge(limit: limit), target: Self.requestTarget(seen)), 0)
                }
                return (.none, 0)
            }
            return (Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<headEnd])), headEnd)
        }
        if case .head = result.0 { buffer.moveReaderIndex(forwardBy: result.consumed) }
        return result.0
    }

    /// The index just past the CRLF CRLF that ends the head, if it is within `limit` bytes.
    private static func findHeadEnd(_ bytes: UnsafeRawBufferPointer, limit: Int) -> Int? {
        let count = min(bytes.count, limit)
        guard count >= 4, let base = bytes.baseAddress else { return nil }
        // Each LF found with memchr; the head ends at the first one that closes CR LF CR LF.
        var i = 3
        while i < count {
            guard let hit = memchr(base + i, Int32(lf), count - i) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(hit))
            if bytes[at - 1] == cr, bytes[at - 2] == lf, bytes[at - 3] == cr { return at + 1 }
            i = at + 1
        }
        return nil
    }

    /// Whether a LF without its CR is among the bytes (a head that can never be valid).
    private static func hasBareLF(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i < bytes.count {
            if bytes[i] == lf, i == 0 || bytes[i - 1] != cr { return true }
            i += 1
        }
        return false
    }

    /// The target of a request line at the start of `bytes`, when one is there whole. Only the
    /// first line is read (a bare LF ends it too): found by fuzzing, a target taken from a later
    /// line made the answer depend on where the client's reads happened to end.
    private static func requestTarget(_ all: UnsafeRawBufferPointer) -> String? {
        let lineEnd = all.firstIndex { $0 == lf || $0 == cr } ?? all.count
        let bytes = UnsafeRawBufferPointer(rebasing: all[0..<lineEnd])
        guard let firstSpace = bytes.firstIndex(of: UInt8(ascii: " ")), firstSpace > 0 else { return nil }
        var end = firstSpace + 1
        while end < bytes.count, HTTPSyntax.isTargetCharacter(bytes[end]) { end += 1 }
        guard end < bytes.count, bytes[end] == UInt8(ascii: " "), end > firstSpace + 1 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(firstSpace + 1)..<end]), as: UTF8.self)
    }

    private static func parseHead(_ head: UnsafeRawBufferPointer) -> HeadResult {
        func malformed(_ what: String, _ target: String? = nil) -> HeadResult {
            .refused(.invalidRequest("malformed HTTP request: \(what)"), target: target)
        }
        // Lines, each ending in CRLF; the last line is the blank one (the head ends at the
        // first CRLF CRLF). Every line ending is checked before anything else is.
        var start = 0
        var i = 0
        while i < head.count {
            let byte = head[i]
            if byte == lf {
                guard i > start, head[i - 1] == cr else {
                    return malformed("malformed line ending", requestTarget(head))
                }
                start = i + 1
            } else if byte == cr, i + 1 < head.count, head[i + 1] != lf {
                return malformed("malformed line ending", requestTarget(head))
            }
            i += 1
        }
        /// The line starting at `from`, without its CRLF (which the pass above found).
        func lineRange(from: Int) -> Range<Int> {
            var end = from
            while head[end] != lf { end += 1 }
            return from..<(end - 1)
        }
        let requestLine = lineRange(from: 0)

        // request-line = method SP request-target SP HTTP-version
        let line = UnsafeRawBufferPointer(rebasing: head[requestLine])
        guard let space1 = line.firstIndex(of: UInt8(ascii: " ")),
            let space2 = line[(space1 + 1)...].firstIndex(of: UInt8(ascii: " "))
        else { return malformed("malformed request line") }
        let methodBytes = UnsafeRawBufferPointer(rebasing: line[0..<space1])
        let targetBytes = UnsafeRawBufferPointer(rebasing: line[(space1 + 1)..<space2])
        let versionBytes = UnsafeRawBufferPointer(rebasing: line[(space2 + 1)...])
        guard HTTPSyntax.isToken(methodBytes) else { return malformed("unknown or malformed method") }
        guard HTTPSyntax.isTarget(targetBytes) else {
            return malformed("malformed request target")
        }
        let target = String(decoding: targetBytes, as: UTF8.self)
        // "HTTP/1.0" or "HTTP/1.1", compared as one 8-byte word.
        let http10 = UInt64(littleEndian: 0x302E_312F_5054_5448)  // "HTTP/1.0" as bytes in memory
        let http11 = UInt64(littleEndian: 0x312E_312F_5054_5448)  // "HTTP/1.1"
        guard versionBytes.count == 8 else { return malformed("malformed HTTP version", target) }
        let version = versionBytes.loadUnaligned(as: UInt64.self)
        guard version == http10 || version == http11 else { return malformed("malformed HTTP version", target) }
        let minor = Int(versionBytes[7] - UInt8(ascii: "0"))

        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(8)
        var contentLength: Int?
        /// The codings of every Transfer-Encoding field, nil when there is none (an empty one
        /// is there, and refused).
        var transferEncoding: [String]?
        // Present at all, even empty: an empty or all-comma value is no framing a peer agrees on.
        var connectionClose = false
        var connectionKeepAlive = false
        var expectContinue = false
        var next = requestLine.upperBound + 2
        while true {
            let range = lineRange(from: next)
            next = range.upperBound + 2
            if range.isEmpty { break }
            let field = UnsafeRawBufferPointer(rebasing: head[range])
            guard let first = field.first else { return malformed("malformed header field", target) }
            if HTTPSyntax.isWhitespace(first) {
                return malformed("folded header field", target)
            }
            guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else {
                return malformed("malformed header field", target)
            }
            let nameBytes = UnsafeRawBufferPointer(rebasing: field[0..<colon])
            guard HTTPSyntax.isToken(nameBytes) else { return malformed("malformed header field", target) }
            var valueStart = colon + 1
            var valueEnd = field.count
            while valueStart < valueEnd, HTTPSyntax.isWhitespace(field[valueStart]) { valueStart += 1 }
            while valueEnd > valueStart, HTTPSyntax.isWhitespace(field[valueEnd - 1]) { valueEnd -= 1 }
            let valueBytes = UnsafeRawBufferPointer(rebasing: field[valueStart..<valueEnd])
            guard HTTPSyntax.isFieldValue(valueBytes) else { return malformed("malformed header field", target) }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let value = String(decoding: valueBytes, as: UTF8.self)
            headers.append((name, value))

            switch nameBytes.count {
            case 14 where HTTPSyntax.equalsIgnoringCase(nameBytes, "content-length"):
                guard !valueBytes.isEmpty, valueBytes.count <= 18,
                    valueBytes.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
                else { return malformed("malformed Content-Length", target) }
                let length = valueBytes.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
                if let contentLength, contentLength != length { return malformed("conflicting Content-Length", target) }
                contentLength = length
            case 17 where HTTPSyntax.equalsIgnoringCase(nameBytes, "transfer-encoding"):
                transferEncoding = (transferEncoding ?? []) + HTTPSyntax.listElements(value)
            case 10 where HTTPSyntax.equalsIgnoringCase(nameBytes, "connection"):
                for option in HTTPSyntax.listElements(value) {
                    switch option {
                    case "close": connectionClose = true
                    case "keep-alive": connectionKeepAlive = true
                    default: break
                    }
                }
            case 6 where HTTPSyntax.equalsIgnoringCase(nameBytes, "expect"):
                // Other expectations are ignored, as before this parser.
                if HTTPSyntax.equalsIgnoringCase(value, "100-continue") { expectContinue = true }
            default:
                break
            }
        }

        let framing: Framing
        if let transferEncoding {
            guard contentLength == nil else {
                return malformed("Content-Length together with Transfer-Encoding", target)
            }
            guard minor == 1, transferEncoding == ["chunked"] else {
                return .refused(
                    .invalidRequest("malformed HTTP request: only Transfer-Encoding: chunked is accepted"),
                    target: target
                )
            }
            framing = .chunked
        } else {
            framing = .length(contentLength ?? 0)
        }
        let keepAlive = minor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        let request = Request(
            method: String(decoding: methodBytes, as: UTF8.self),
            target: target,
            minorVersion: minor,
            headers: headers,
            body: [],
            keepAlive: keepAlive
        )
        return .head(PendingHead(request: request, framing: framing, expectContinue: expectContinue && minor == 1))
    }

    // MARK: Body

    private mutating func parseBody(_ head: inout PendingHead) -> Event? {
        switch head.framing {
        case .length(let length):
            if length > maxBodyBytes {
                return .refused(.payloadTooLarge(limit: maxBodyBytes), target: head.request.target)
            }
            guard buffer.readableBytes >= length else { return continueIfExpected(&head) }
            head.request.body = buffer.readBytes(length: length) ?? []
            compact()
            return .request(head.request)
        case .chunked:
            return parseChunks(&head)
        }
    }

    private func continueIfExpected(_ head: inout PendingHead) -> Event? {
        guard head.expectContinue, !head.continueSent else { return nil }
        head.continueSent = true
        return .continueExpected
    }

    /// Reads whole chunks from the buffer into the body; returns the request after the last
    /// chunk and its trailers.
    private mutating func parseChunks(_ head: inout PendingHead) -> Event? {
        let target = head.request.target
        while true {
            let line: (end: Int, next: Int)?
            switch Self.lineEnd(buffer, limit: head.trailers ? maxHeadBytes : 1024) {
            case .tooLong:
                if head.trailers { return .refused(.headersTooLarge(limit: maxHeadBytes), target: target) }
                return .refused(.invalidRequest("malformed HTTP request: malformed chunk size"), target: target)
            case .malformed:
                return .refused(.invalidRequest("malformed HTTP request: malformed line ending"), target: target)
            case .incomplete: line = nil
            case .found(let end, let next): line = (end, next)
            }
            guard let line else { return continueIfExpected(&head) }
            if head.trailers {
                head.trailerBytes += line.next
                if head.trailerBytes > maxHeadBytes {
                    return .refused(.headersTooLarge(limit: maxHeadBytes), target: target)
                }
                buffer.moveReaderIndex(forwardBy: line.next)
                if line.end == 0 {
                    compact()
                    return .request(head.request)
                }
                continue
            }
            // chunk-size [ chunk-ext ] CRLF
            var size = 0
            var digits = 0
            let sizeOK: Bool = buffer.withUnsafeReadableBytes { bytes in
                var i = 0
                while i < line.end, let value = PercentDecoding.hexValue(bytes[i]) {
                    guard digits < 15 else { return false }
                    size = size << 4 | Int(value)
                    digits += 1
                    i += 1
                }
                guard digits > 0 else { return false }
                if i < line.end {
                    // Extensions: `;` and then visible characters, spaces and tabs.
                    var j = i
                    while j < line.end, HTTPSyntax.isWhitespace(bytes[j]) { j += 1 }
                    guard j < line.end, bytes[j] == UInt8(ascii: ";") else { return false }
                    guard HTTPSyntax.isFieldValue(UnsafeRawBufferPointer(rebasing: bytes[j..<line.end])) else {
                        return false
                    }
                }
                return true
            }
            guard sizeOK else {
                return .refused(.invalidRequest("malformed HTTP request: malformed chunk size"), target: target)
            }
            if size == 0 {
                buffer.moveReaderIndex(forwardBy: line.next)
                head.trailers = true
                continue
            }
            if head.request.body.count + size > maxBodyBytes {
                return .refused(.payloadTooLarge(limit: maxBodyBytes), target: target)
            }
            // The chunk's data and its CRLF must all be here before it is taken.
            guard buffer.readableBytes >= line.next + size + 2 else { return continueIfExpected(&head) }
            let dataStart = buffer.readerIndex + line.next
            guard buffer.getInteger(at: dataStart + size, endianness: .big, as: UInt16.self) == 0x0D0A else {
                return .refused(.invalidRequest("malformed HTTP request: malformed chunk"), target: target)
            }
            buffer.withUnsafeReadableBytes { bytes in
                head.request.body.append(
                    contentsOf: UnsafeRawBufferPointer(rebasing: bytes[line.next..<(line.next + size)])
                )
            }
            buffer.moveReaderIndex(forwardBy: line.next + size + 2)
        }
    }

    private enum LineEnd {
        case found(end: Int, next: Int)
        case incomplete
        case tooLong
        case malformed
    }

    /// The next CRLF-ended line at the reader index: its length and the offset after its CRLF.
    private static func lineEnd(_ buffer: ByteBuffer, limit: Int) -> LineEnd {
        buffer.withUnsafeReadableBytes { bytes in
            var i = 0
            while i < bytes.count {
                if bytes[i] == lf {
                    guard i > 0, bytes[i - 1] == cr else { return .malformed }
                    return .found(end: i - 1, next: i + 1)
                }
                if i >= limit { return .tooLong }
                i += 1
            }
            return .incomplete
        }
    }

    /// Drops consumed bytes once nothing else is buffered.
    private mutating func compact() {
        if buffer.readableBytes == 0 { release() }
    }

    /// Lets go of the read buffer once it is consumed, so NIO reuses it for the next read.
    /// (Clearing it instead would allocate: NIO still holds the same storage, and a shared
    /// buffer is cleared into a new one.)
    private mutating func release() {
        buffer = Self.empty
    }

    private static let empty = ByteBufferAllocator().buffer(capacity: 0)
}
