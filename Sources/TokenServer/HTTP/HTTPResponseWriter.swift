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
        _ response: HTTPResponse, minorVersion: Int, keepAlive: Bool, isHead: Bool, into out: inout ByteBuffer
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
        for (name, value) in response.headers {
            if asciiCaseInsensitiveEquals(name, "connection") {
                if value.lowercased().contains("close") { keepAlive = false }
                continue
            }
            if asciiCaseInsensitiveEquals(name, "content-length") || asciiCaseInsensitiveEquals(name, "transfer-encoding") {
                continue
            }
            if asciiCaseInsensitiveEquals(name, "cache-control") { hasCacheControl = true }
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        if bodyAllowed {
            out.writeStaticString("Content-Length: ")
            out.writeString(String(response.body.count))
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
}
