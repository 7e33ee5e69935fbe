import HTTPSyntax
import NIOCore
import NIOHTTP1

/// An `HTTPResponse` as HTTP/1.x bytes, the one place that frames a response: the status line,
/// the handler's headers (its `Connection`, `Content-Length` and `Transfer-Encoding` dropped:
/// framing is the server's), `Content-Length` when a body is allowed, `Cache-Control: no-store`
/// unless the handler set one, `Connection: close` or, for HTTP/1.0, `Connection: keep-alive`,
/// then the body (none for HEAD, 1xx, 204, 304).
enum HTTPResponseWriter {
    /// Appends the response to `out`; returns whether the connection stays open (false when
    /// `keepAlive` was false or the handler asked to close).
    static func write(
        _ response: HTTPResponse,
        minorVersion: Int,
        keepAlive: Bool,
        isHead: Bool,
        into out: inout ByteBuffer
    ) -> Bool {
        let status = response.status
        let bodyAllowed = !(100..<200).contains(status) && status != 204 && status != 304
        var keepAlive = keepAlive
        out.writeStaticString(minorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        if status == 200 {
            out.writeStaticString("200 OK\r\n")
        } else {
            out.writeString(String(status))
            out.writeStaticString(" ")
            out.writeString(HTTPResponseStatus(statusCode: status).reasonPhrase)
            out.writeStaticString("\r\n")
        }
        var hasCacheControl = false
        if let constant = response.constantHeaders {
            out.writeBytes(constant.block)
            hasCacheControl = constant.hasCacheControl
            if constant.asksToClose { keepAlive = false }
        } else {
            for (name, value) in response.headers {
                writeHeader(
                    name: name,
                    value: value,
                    into: &out,
                    keepAlive: &keepAlive,
                    hasCacheControl: &hasCacheControl
                )
            }
        }
        if bodyAllowed {
            out.writeStaticString("Content-Length: ")
            writeDecimal(response.body.count, into: &out)
            out.writeStaticString("\r\n")
        }
        if !hasCacheControl { out.writeStaticString("Cache-Control: no-store\r\n") }
        if !keepAlive {
            out.writeStaticString("Connection: close\r\n")
        } else if minorVersion == 0 {
            out.writeStaticString("Connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
        if bodyAllowed, !isHead { out.writeBytes(response.body) }
        return keepAlive
    }

    /// One handler header as the server sends it: framing headers (`Content-Length`,
    /// `Transfer-Encoding`) dropped, `Connection` turned into whether to keep the connection.
    static func writeHeader(
        name: String,
        value: String,
        into out: inout ByteBuffer,
        keepAlive: inout Bool,
        hasCacheControl: inout Bool
    ) {
        if HTTPSyntax.equalsIgnoringCase(name, "connection") {
            if HTTPSyntax.listElements(value).contains("close") { keepAlive = false }
            return
        }
        if HTTPSyntax.equalsIgnoringCase(name, "content-length")
            || HTTPSyntax.equalsIgnoringCase(name, "transfer-encoding")
        {
            return
        }
        if HTTPSyntax.equalsIgnoringCase(name, "cache-control") { hasCacheControl = true }
        out.writeString(name)
        out.writeStaticString(": ")
        out.writeString(value)
        out.writeStaticString("\r\n")
    }

    /// Whether every header field is one the request parser would accept: a token name and a
    /// field value (``HTTPSyntax/isValidField(name:value:)``). A handler's header that is not
    /// is never written.
    static func headersAreValid(_ headers: [(name: String, value: String)]) -> Bool {
        headers.allSatisfy { HTTPSyntax.isValidField(name: $0.name, value: $0.value) }
    }

    /// A non-negative integer in decimal, without making a String.
    static func writeDecimal(_ value: Int, into out: inout ByteBuffer) {
        precondition(value >= 0)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for any Int
        withUnsafeMutableBytes(of: &digits) { buffer in
            var n = value
            var i = buffer.count
            repeat {
                i -= 1
                buffer[i] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            out.writeBytes(UnsafeRawBufferPointer(rebasing: buffer[i...]))
        }
    }
}

/// Response headers fixed in the source, rendered once as the writer renders them: the
/// server copies their bytes into each response without checking or encoding them again.
struct ConstantHeaders: Sendable {
    let fields: [(name: String, value: String)]
    /// The header lines, each ending in CRLF.
    let block: [UInt8]
    let hasCacheControl: Bool
    let asksToClose: Bool

    init(_ fields: [(name: String, value: String)]) {
        precondition(HTTPResponseWriter.headersAreValid(fields), "constant headers must be valid")
        var out = ByteBufferAllocator().buffer(capacity: 256)
        var keepAlive = true
        var hasCacheControl = false
        for (name, value) in fields {
            HTTPResponseWriter.writeHeader(
                name: name,
                value: value,
                into: &out,
                keepAlive: &keepAlive,
                hasCacheControl: &hasCacheControl
            )
        }
        self.fields = fields
        block = out.readBytes(length: out.readableBytes) ?? []
        self.hasCacheControl = hasCacheControl
        asksToClose = !keepAlive
    }
}
