import CodedErrors
import Glibc
import HTTPSyntax

/// A small blocking HTTP/1.1 client over a Unix socket (or TCP), for `tokenctl` and tests.
///
/// One connection, reused across requests while the server keeps it alive; a connection the
/// server has closed in the meantime is replaced before the next request. Responses framed by
/// `Content-Length`, chunked, or by the end of the connection. Every request is bounded by
/// `timeout`. Not for concurrent use: one client per thread.
public final class UnixHTTPClient {
    /// Where the server listens.
    public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
        case unix(String)
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unix(let path): path
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            }
        }
    }

    public let endpoint: Endpoint
    /// The longest a request may take, from connecting to the last byte of the response.
    public var timeout: Duration
    /// Larger responses are refused with ``HTTPClientError/Code/invalidResponse``.
    public var maxResponseBytes = 64 << 20
    /// How many connections this client has opened so far (1 while keep-alive holds).
    public private(set) var connectionsOpened = 0

    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private var bufferStart = 0

    public init(endpoint: Endpoint, timeout: Duration = .seconds(30)) {
        self.endpoint = endpoint
        self.timeout = timeout
    }

    /// A client for the Unix socket at `path`.
    public convenience init(path: String, timeout: Duration = .seconds(30)) {
        self.init(endpoint: .unix(path), timeout: timeout)
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Whether a connection is open (kept alive from the previous request).
    public var isConnected: Bool { fd >= 0 }

    /// Closes the connection; the next request opens a new one.
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        buffer = []
        bufferStart = 0
    }

    /// Sends one request and reads its response.
    ///
    /// `Host` is added unless given; `Content-Length` is always computed from `body` (sent
    /// when the body is not empty or the method is POST, PUT or PATCH).
    public func send(
        method: String,
        path: String,
        headers: [(String, String)] = [],
        body: [UInt8] = []
    ) throws(HTTPClientError) -> (status: Int, headers: [(String, String)], body: [UInt8]) {
        let request = try encode(method: method, path: path, headers: headers, body: body)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        do throws(HTTPClientError) {
            if fd >= 0, !connectionIsReusable() { close() }
            let reused = fd >= 0
            if !reused { try connect(deadline: deadline) }
            // A server that answers early (413, 431) stops reading: when a write fails, its
            // answer may still be waiting, and it says more than the write error.
            var writeError = try writeAllTolerantly(request, deadline: deadline)
            if reused, writeError != nil, bufferStart == buffer.count {
                // The server closed the kept-alive connection before this request: it was not
                // processed, so it is safe to send it on a new connection.
                close()
                try connect(deadline: deadline)
                writeError = try writeAllTolerantly(request, deadline: deadline)
            }
            let response: Response
            do throws(HTTPClientError) {
                response = try readResponse(isHead: method.uppercased() == "HEAD", deadline: deadline)
            } catch {
                throw writeError ?? error
            }
            if !response.keepAlive { close() }
            return (response.status, response.headers, response.body)
        } catch {
            close()
            throw error
        }
    }

    // MARK: Request

    private func encode(
        method: String,
        path: String,
        headers: [(String, String)],
        body: [UInt8]
    ) throws(HTTPClientError) -> [UInt8] {
        guard HTTPSyntax.isToken(method) else {
            throw .invalidRequest("invalid HTTP method \"\(method)\"")
        }
        guard path.hasPrefix("/"), HTTPSyntax.isTarget(path.utf8) else {
            throw .invalidRequest(
                "the request path must start with / and contain no spaces or control characters"
            )
        }
        var text = "\(method) \(path) HTTP/1.1\r\n"
        var hasHost = false
        for (name, value) in headers {
            guard HTTPSyntax.isToken(name) else {
                throw .invalidRequest("invalid header name \"\(name)\"")
            }
            guard HTTPSyntax.isFieldValue(value) else {
                throw .invalidRequest("the value of header \(name) contains a control character")
            }
            switch HTTPSyntax.lowercased(name) {
            case "content-length", "transfer-encoding": continue
            case "host": hasHost = true
            default: break
            }
            text += "\(name): \(value)\r\n"
        }
        if !hasHost { text += "Host: localhost\r\n" }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method.uppercased()) {
            text += "Content-Length: \(body.count)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + body
    }

    // MARK: Connection

    private func connect(deadline: ContinuousClock.Instant) throws(HTTPClientError) {
        switch endpoint {
        case .unix(let path):
            fd = try connectUnix(path, deadline: deadline)
        case .tcp(let host, let port):
            fd = try connectTCP(host, port, deadline: deadline)
        }
        buffer = []
        bufferStart = 0
        connectionsOpened += 1
    }

    private func connectUnix(_ path: String, deadline: ContinuousClock.Instant) throws(HTTPClientError) -> Int32 {
        let socketFD = socket(
            AF_UNIX,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
            0
        )
        guard socketFD >= 0 else {
            throw .cannotConnect("cannot create a socket: \(String(cString: strerror(errno)))")
        }
        while true {
            let result = withUnixAddress(path) { address, length in Glibc.connect(socketFD, address, length) }
            guard case .success(let status) = result else {
                Glibc.close(socketFD)
                throw .cannotConnect(
                    "cannot connect to \(path): the path is longer than \(UnixSocketAddress.maxPathBytes) bytes"
                )
            }
            if status == 0 { return socketFD }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN:
                // The server's accept backlog is full: wait a little and try again.
                guard ContinuousClock.now < deadline else {
                    Glibc.close(socketFD)
                    throw .timedOut(
                        "cannot connect to \(path): the server's backlog stayed full until the timeout"
                    )
                }
                usleep(10_000)
            default:
                Glibc.close(socketFD)
                throw .cannotConnect(Self.connectMessage(path, code))
            }
        }
    }

    private static func connectMessage(_ target: String, _ code: Int32) -> String {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOENT, ECONNREFUSED:
            return "cannot connect to \(target): \(reason) — is tokend running?"
        case EACCES, EPERM:
            return
                "cannot connect to \(target): \(reason) — is this user allowed to use the socket (its owner or group)?"
        default:
            return "cannot connect to \(target): \(reason)"
        }
    }

    private func connectTCP(
        _ host: String,
        _ port: Int,
        deadline: ContinuousClock.Instant
    ) throws(HTTPClientError) -> Int32 {
        let target = Endpoint.tcp(host: host, port: port).description
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw .cannotConnect("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }

        var lastError: Int32 = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let socketFD = socket(
                info.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                0
            )
            guard socketFD >= 0 else {
                lastError = errno
                continue
            }
            var one: Int32 = 1
            setsockopt(socketFD, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(socketFD, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return socketFD }
            if errno == EINPROGRESS || errno == EINTR {
                do {
                    try wait(socketFD, for: Int16(POLLOUT), deadline: deadline, doing: "connecting to \(target)")
                } catch {
                    Glibc.close(socketFD)
                    throw error
                }
                var soError: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(socketFD, SOL_SOCKET, SO_ERROR, &soError, &length)
                if soError == 0 { return socketFD }
                lastError = soError
            } else {
                lastError = errno
            }
            Glibc.close(socketFD)
        }
        throw .cannotConnect(Self.connectMessage(target, lastError))
    }

    /// A kept-alive connection is reusable when the server has neither closed it nor sent
    /// anything unasked.
    private func connectionIsReusable() -> Bool {
        guard bufferStart == buffer.count else { return false }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        return ready == 0
    }

    // MARK: I/O

    private func wait(
        _ socketFD: Int32,
        for events: Int16,
        deadline: ContinuousClock.Instant,
        doing what: String
    ) throws(HTTPClientError) {
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else {
                throw .timedOut("timed out after \(timeout) \(what) \(endpoint)")
            }
            let (seconds, attoseconds) = remaining.components
            let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            var descriptor = pollfd(fd: socketFD, events: events, revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0, errno != EINTR {
                throw .connectionClosed(
                    "waiting for \(endpoint) failed: \(String(cString: strerror(errno)))"
                )
            }
        }
    }

    /// Writes the request; a closed connection is returned rather than thrown.
    private func writeAllTolerantly(
        _ bytes: [UInt8],
        deadline: ContinuousClock.Instant
    ) throws(HTTPClientError) -> HTTPClientError? {
        do throws(HTTPClientError) {
            try writeAll(bytes, deadline: deadline)
            return nil
        } catch {
            guard error.code == .connectionClosed else { throw error }
            return error
        }
    }

    private func writeAll(_ bytes: [UInt8], deadline: ContinuousClock.Instant) throws(HTTPClientError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                offset += written
                continue
            }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN:
                try wait(fd, for: Int16(POLLOUT), deadline: deadline, doing: "sending to")
            case EPIPE, ECONNRESET:
                throw .connectionClosed("\(endpoint) closed the connection while the request was sent")
            default:
                throw .connectionClosed(
                    "sending to \(endpoint) failed: \(String(cString: strerror(code)))"
                )
            }
        }
    }

    /// Reads more bytes into the buffer; false at the end of the connection.
    private func fill(deadline: ContinuousClock.Instant) throws(HTTPClientError) -> Bool {
        if bufferStart > 0, bufferStart == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            bufferStart = 0
        }
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                guard buffer.count - bufferStart <= maxResponseBytes + 65536 else {
                    throw .invalidResponse(
                        "the response from \(endpoint) is larger than \(maxResponseBytes) bytes"
                    )
                }
                return true
            }
            if count == 0 { return false }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN:
                try wait(fd, for: Int16(POLLIN), deadline: deadline, doing: "waiting for a response from")
            case ECONNRESET:
                throw .connectionClosed(
                    "\(endpoint) reset the connection before the response was complete"
                )
            default:
                throw .connectionClosed(
                    "reading from \(endpoint) failed: \(String(cString: strerror(code)))"
                )
            }
        }
    }

    private func readLine(deadline: ContinuousClock.Instant, limit: Int = 65536) throws(HTTPClientError) -> String {
        var searchFrom = bufferStart
        while true {
            var index = searchFrom
            while index + 1 < buffer.count {
                if buffer[index] == 0x0D, buffer[index + 1] == 0x0A {
                    let line = String(decoding: buffer[bufferStart..<index], as: UTF8.self)
                    bufferStart = index + 2
                    return line
                }
                index += 1
            }
            searchFrom = max(bufferStart, buffer.count - 1)
            guard buffer.count - bufferStart <= limit else {
                throw .invalidResponse(
                    "a line of the response from \(endpoint) is longer than \(limit) bytes"
                )
            }
            let start = bufferStart
            guard try fill(deadline: deadline) else {
                throw .connectionClosed(
                    "\(endpoint) closed the connection before the response was complete"
                )
            }
            // `fill` may compact the buffer only when it was fully consumed; keep offsets valid.
            searchFrom = max(searchFrom - (start - bufferStart), bufferStart)
        }
    }

    private func readBytes(_ count: Int, deadline: ContinuousClock.Instant) throws(HTTPClientError) -> ArraySlice<UInt8>
    {
        while buffer.count - bufferStart < count {
            guard try fill(deadline: deadline) else {
                throw .connectionClosed(
                    "\(endpoint) closed the connection before the response was complete"
                )
            }
        }
        let bytes = buffer[bufferStart..<bufferStart + count]
        bufferStart += count
        return bytes
    }

    // MARK: Response

    private struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        var keepAlive: Bool
    }

    private func readResponse(isHead: Bool, deadline: ContinuousClock.Instant) throws(HTTPClientError) -> Response {
        var status: Int
        var http10: Bool
        var headers: [(String, String)]
        repeat {
            let statusLine = try readLine(deadline: deadline)
            let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0", parts[1].count == 3,
                let code = Int(parts[1]), code >= 100
            else {
                throw .invalidResponse("\(endpoint) did not answer with HTTP/1.1")
            }
            status = code
            http10 = parts[0] == "HTTP/1.0"
            headers = []
            var headBytes = 0
            while true {
                let line = try readLine(deadline: deadline)
                if line.isEmpty { break }
                headBytes += line.utf8.count
                guard headBytes <= 65536 else {
                    throw .invalidResponse("the response headers from \(endpoint) are too large")
                }
                guard let colon = line.firstIndex(of: ":"), HTTPSyntax.isToken(line[..<colon].utf8) else {
                    throw .invalidResponse("\(endpoint) sent a malformed header line")
                }
                let value = HTTPSyntax.trimmed(line[line.index(after: colon)...])
                guard HTTPSyntax.isFieldValue(value) else {
                    throw .invalidResponse("\(endpoint) sent a malformed header line")
                }
                headers.append((String(line[..<colon]), value))
            }
        } while (100..<200).contains(status) && status != 101

        func first(_ name: String) -> String? {
            headers.first { HTTPSyntax.equalsIgnoringCase($0.0, name) }?.1
        }
        let connection = HTTPSyntax.listElements(first("connection") ?? "")
        var keepAlive = http10 ? connection.contains("keep-alive") : !connection.contains("close")

        var body: [UInt8] = []
        if isHead || status == 204 || status == 304 {
            // no body
        } else if let encoding = first("transfer-encoding") {
            guard HTTPSyntax.listElements(encoding).last == "chunked" else {
                throw .invalidResponse("\(endpoint) sent an unsupported Transfer-Encoding \(encoding)")
            }
            body = try readChunked(deadline: deadline)
        } else if let lengthText = first("content-length") {
            guard let length = Int(lengthText), length >= 0 else {
                throw .invalidResponse("\(endpoint) sent an invalid Content-Length")
            }
            guard length <= maxResponseBytes else {
                throw .invalidResponse(
                    "the response from \(endpoint) is larger than \(maxResponseBytes) bytes"
                )
            }
            body = Array(try readBytes(length, deadline: deadline))
        } else {
            while try fill(deadline: deadline) {}
            body = Array(buffer[bufferStart...])
            bufferStart = buffer.count
            keepAlive = false
        }
        return Response(status: status, headers: headers, body: body, keepAlive: keepAlive)
    }

    private func readChunked(deadline: ContinuousClock.Instant) throws(HTTPClientError) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try readLine(deadline: deadline)
            let sizeText = HTTPSyntax.trimmed(line.split(separator: ";", maxSplits: 1).first ?? "")
            guard let size = Int(sizeText, radix: 16), size >= 0 else {
                throw .invalidResponse("\(endpoint) sent a malformed chunk size")
            }
            if size == 0 {
                while try !readLine(deadline: deadline).isEmpty {}  // trailers
                return body
            }
            guard body.count + size <= maxResponseBytes else {
                throw .invalidResponse(
                    "the response from \(endpoint) is larger than \(maxResponseBytes) bytes"
                )
            }
            body.append(contentsOf: try readBytes(size, deadline: deadline))
            guard try readLine(deadline: deadline).isEmpty else {
                throw .invalidResponse("\(endpoint) sent a chunk longer than its size")
            }
        }
    }
}

@available(*, unavailable)
extension UnixHTTPClient: Sendable {}
