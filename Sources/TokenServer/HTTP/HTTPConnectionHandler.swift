import Glibc
import Logging
import NIOCore
import NIOHTTP1

/// Serves the requests of one connection, in order (`HTTPServerPipelineHandler` holds back
/// pipelined requests until the previous response has been written).
///
/// Enforces the body and head limits, routes, runs `.sync` handlers inline on the event loop
/// and `.async` handlers in a task (bounded by `requestTimeout`), writes every response with
/// `Content-Length` and `Cache-Control`, and records one log line and the metrics per request.
/// All state lives on the connection's event loop.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase {
        /// Waiting for a request head.
        case idle
        /// Reading a request's body.
        case receiving
        /// An asynchronous handler is running.
        case responding
        /// An answer that ends the connection was written; input is discarded until it closes.
        case discarding
        /// The connection is closing or closed.
        case closed
    }

    /// What the response and the log line need from the request.
    private struct RequestInfo {
        var method: String
        var version: HTTPVersion
        var keepAlive: Bool
        var isHead: Bool
        var route: String
        var start: NIODeadline
    }

    private static let unmatchedRoute = "unmatched"
    private static let invalidRoute = "invalid"

    private let listener: ListenerContext
    private let progress: DecoderProgress?
    private var phase = Phase.idle
    private var head: HTTPRequestHead?
    private var info: RequestInfo?
    private var body: ByteBuffer?
    private var peer: PeerCredentials?
    private var peerChecked = false
    private var sequence: UInt64 = 0
    private var timeout: Scheduled<Void>?
    private var asyncTask: Task<Void, Never>?
    private var lingerTimer: Scheduled<Void>?
    private var metrics: HTTPMetrics

    init(listener: ListenerContext, progress: DecoderProgress? = nil) {
        self.listener = listener
        self.progress = progress
        self.metrics = HTTPMetrics(factory: listener.metricsFactory)
    }

    // MARK: Connection events

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { readPeerCredentials(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        readPeerCredentials(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        timeout?.cancel()
        timeout = nil
        lingerTimer?.cancel()
        lingerTimer = nil
        // An async handler still running is left to finish its work (it may be writing to the
        // store); its answer is dropped.
        asyncTask = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all {
            switch phase {
            case .idle, .receiving, .discarding:
                listener.logger.trace("closing idle connection", metadata: ["listener": "\(listener.kind)"])
                phase = .closed
                context.close(promise: nil)
            case .responding, .closed:
                break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            if parserError == .invalidEOFState || parserError == .closedConnection {
                // The client went away in the middle of a request: nobody to answer.
                phase = .closed
                context.close(promise: nil)
                return
            }
            switch phase {
            case .idle, .receiving:
                let refusal: HTTPError =
                    parserError == .headerOverflow
                    ? .headersTooLarge(limit: listener.configuration.maxHeaderBytes)
                    : .invalidRequest("malformed HTTP request: \(Self.describe(parserError))")
                let info =
                    self.info
                    ?? RequestInfo(
                        method: "-",
                        version: .http1_1,
                        keepAlive: false,
                        isHead: false,
                        route: Self.invalidRoute,
                        start: .now()
                    )
                // A head that never completed has no parsed target; the guard in front of the
                // decoder may have seen its request line.
                refuse(context: context, refusal, info: info, uri: head?.uri ?? progress?.pendingTarget)
            case .responding, .discarding, .closed:
                break
            }
            return
        }
        switch phase {
        case .discarding, .closed:
            // Input after a refusal (the decoder is in its error state): expected, ignored.
            return
        case .idle, .receiving, .responding:
            listener.logger.debug("closing connection after an error", metadata: ["error": "\(error)"])
            phase = .closed
            context.close(promise: nil)
        }
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receivedHead(context: context, head)
        case .body(let chunk):
            receivedBody(context: context, chunk)
        case .end:
            receivedEnd(context: context)
        }
    }

    private func receivedHead(context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        guard case .idle = phase else { return }
        let method = head.method.rawValue
        let info = RequestInfo(
            method: method,
            version: head.version,
            keepAlive: head.isKeepAlive,
            isHead: head.method == .HEAD,
            route: Self.invalidRoute,
            start: .now()
        )
        self.info = info
        let configuration = listener.configuration

        if Self.headSize(head) > configuration.maxHeaderBytes {
            refuse(context: context, .headersTooLarge(limit: configuration.maxHeaderBytes), info: info, uri: head.uri)
            return
        }
        if let length = head.headers.first(name: "content-length"), let bytes = Int(length),
            bytes > configuration.maxBodyBytes
        {
            refuse(context: context, .payloadTooLarge(limit: configuration.maxBodyBytes), info: info, uri: head.uri)
            return
        }
        if let expect = head.headers.first(name: "expect"), expect.lowercased() == "100-continue" {
            let interim = HTTPResponseHead(version: head.version, status: .continue)
            context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
        }
        self.head = head
        self.body = nil
        phase = .receiving
    }

    private func receivedBody(context: ChannelHandlerContext, _ chunk: ByteBuffer) {
        guard case .receiving = phase else { return }
        let limit = listener.configuration.maxBodyBytes
        if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
            body = nil
            refuse(context: context, .payloadTooLarge(limit: limit), info: info!, uri: head?.uri)
            return
        }
        if body == nil {
            body = chunk
        } else {
            var chunk = chunk
            body!.writeBuffer(&chunk)
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        guard case .receiving = phase, let head = self.head, var info = self.info else { return }
        let bytes = body.map { Array($0.readableBytesView) } ?? []
        self.head = nil
        self.body = nil

        let target: RequestTarget
        switch RequestTarget.parse(head.uri) {
        case .success(let parsed): target = parsed
        case .failure(let refusal):
            respond(context: context, rendered(refusal, uri: head.uri), info: info)
            return
        }

        switch listener.router.resolve(method: info.method, segments: target.segments) {
        case .notFound:
            info.route = Self.unmatchedRoute
            respond(context: context, rendered(HTTPError.notFound(), uri: head.uri), info: info)
        case .methodNotAllowed(let allowed):
            info.route = Self.unmatchedRoute
            respond(context: context, rendered(HTTPError.methodNotAllowed(info.method, allowed: allowed), uri: head.uri), info: info)
        case .matched(let route, let parameters):
            info.route = route.name
            self.info = info
            let request = HTTPRequest(
                method: info.method,
                path: target.path,
                query: target.query,
                headers: head.headers.map { ($0.name, $0.value) },
                body: bytes,
                listener: listener.kind,
                peer: peer,
                pathParameters: parameters
            )
            switch route.handler {
            case .sync(let handler):
                respond(context: context, handler(request), info: info)
            case .async(let handler):
                runAsync(context: context, handler, request)
            }
        }
    }

    private func runAsync(
        context: ChannelHandlerContext,
        _ handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse,
        _ request: HTTPRequest
    ) {
        phase = .responding
        sequence &+= 1
        let id = sequence
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        asyncTask = Task {
            let response = await handler(request)
            eventLoop.execute {
                bound.value.handler.asyncFinished(context: bound.value.context, id: id, response)
            }
        }
        timeout = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(listener.configuration.requestTimeout)) {
            self.asyncTimedOut(context: context, id: id)
        }
    }

    private func asyncFinished(context: ChannelHandlerContext, id: UInt64, _ response: HTTPResponse) {
        guard case .responding = phase, id == sequence, let info else { return }
        timeout?.cancel()
        timeout = nil
        asyncTask = nil
        respond(context: context, response, info: info)
    }

    private func asyncTimedOut(context: ChannelHandlerContext, id: UInt64) {
        guard case .responding = phase, id == sequence, let info else { return }
        timeout = nil
        asyncTask?.cancel()
        asyncTask = nil
        let seconds = listener.configuration.requestTimeout.components.seconds
        listener.logger.warning(
            "request timed out; answered 503",
            metadata: [
                "route": "\(info.route)", "method": "\(info.method)",
                "reason": "the handler did not answer within \(seconds) s",
            ]
        )
        let refusal = HTTPError.unavailable("the request took longer than \(seconds) s; try again")
        respond(context: context, refusal.response, info: info)
    }

    // MARK: Responses

    /// Answers a request that cannot be read to its end (limits, malformed HTTP): writes the
    /// answer with `Connection: close`, stops writing, and discards input until the client
    /// closes or the linger timeout ends the connection.
    /// The error body for this path: the configured renderer's, else the OAuth-style one.
    private func rendered(_ error: HTTPError, uri: String?) -> HTTPResponse {
        guard let renderer = listener.configuration.errorRenderer, let uri else { return error.response }
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        return renderer(error, path)
    }

    private func refuse(context: ChannelHandlerContext, _ refusal: HTTPError, info: RequestInfo, uri: String? = nil) {
        head = nil
        body = nil
        let written = respond(context: context, rendered(refusal, uri: uri), info: info, close: .linger)
        written.assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
        }
        lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(
            in: TimeAmount(listener.configuration.lingerTimeout)
        ) {
            context.close(promise: nil)
        }
    }

    private enum CloseMode {
        case keepAliveIfAsked
        case linger
    }

    @discardableResult
    private func respond(
        context: ChannelHandlerContext,
        _ response: HTTPResponse,
        info: RequestInfo,
        close closeMode: CloseMode = .keepAliveIfAsked
    ) -> EventLoopFuture<Void> {
        var response = response
        if !Self.headersAreValid(response.headers) {
            listener.logger.error(
                "handler produced an invalid response header; answered 500",
                metadata: ["route": "\(info.route)"]
            )
            response = .error(
                status: 500,
                error: "server_error",
                description: "the server produced an invalid response"
            )
        }
        let status = response.status
        let bodyAllowed = !(100..<200).contains(status) && status != 204 && status != 304
        var keepAlive = closeMode == .keepAliveIfAsked && info.keepAlive

        var headers = HTTPHeaders()
        headers.reserveCapacity(response.headers.count + 3)
        var hasCacheControl = false
        for (name, value) in response.headers {
            if asciiCaseInsensitiveEquals(name, "connection") {
                // A handler may end the connection; framing headers are the server's.
                if value.lowercased().contains("close") { keepAlive = false }
                continue
            }
            if asciiCaseInsensitiveEquals(name, "content-length")
                || asciiCaseInsensitiveEquals(name, "transfer-encoding")
            {
                continue
            }
            if asciiCaseInsensitiveEquals(name, "cache-control") { hasCacheControl = true }
            headers.add(name: name, value: value)
        }
        if bodyAllowed { headers.add(name: "Content-Length", value: String(response.body.count)) }
        if !hasCacheControl { headers.add(name: "Cache-Control", value: "no-store") }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if info.version.major == 1, info.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }

        let version: HTTPVersion = info.version.major == 1 && info.version.minor == 0 ? .http1_0 : .http1_1
        let responseHead = HTTPResponseHead(
            version: version,
            status: HTTPResponseStatus(statusCode: status),
            headers: headers
        )
        // The state moves on before the last write: writing `.end` lets
        // HTTPServerPipelineHandler deliver the next pipelined request to this handler at once.
        finished(info: info, status: status)
        self.info = nil
        switch closeMode {
        case .keepAliveIfAsked: phase = keepAlive ? .idle : .closed
        case .linger: phase = .discarding
        }

        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if bodyAllowed, !info.isHead, !response.body.isEmpty {
            let buffer = context.channel.allocator.buffer(bytes: response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if closeMode == .keepAliveIfAsked, !keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
        return written
    }

    private func finished(info: RequestInfo, status: Int) {
        let elapsed = (NIODeadline.now() - info.start).nanoseconds
        metrics.record(route: info.route, status: status, nanoseconds: elapsed)
        let peer = self.peer
        listener.logger.debug(
            "request",
            metadata: [
                "method": "\(info.method)",
                "route": "\(info.route)",
                "status": "\(status)",
                "duration_ms": "\(Self.milliseconds(elapsed))",
                "listener": "\(listener.kind.rawValue)",
                "peer": "\(peer.map(\.description) ?? "-")",
            ]
        )
    }

    // MARK: Helpers

    /// SO_PEERCRED of a Unix-socket peer, read once per connection.
    private func readPeerCredentials(context: ChannelHandlerContext) {
        guard !peerChecked else { return }
        peerChecked = true
        guard case .unixDomainSocket = context.channel.localAddress,
            let provider = context.channel as? any SocketOptionProvider
        else { return }
        let credentials: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(
            level: .socket,
            name: NIOBSDSocket.Option(rawValue: SO_PEERCRED)
        )
        credentials.assumeIsolated().whenComplete { result in
            if case .success(let value) = result {
                self.peer = PeerCredentials(pid: value.pid, uid: value.uid, gid: value.gid)
            }
        }
    }

    /// Linux `struct ucred` (`pid_t`, `uid_t`, `gid_t`: three 32-bit fields, 12 bytes), which
    /// Glibc's Swift overlay does not export (it is behind `_GNU_SOURCE`).
    private struct UCred: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The size of the head as sent: request line, header lines and the blank line.
    private static func headSize(_ head: HTTPRequestHead) -> Int {
        var size = head.method.rawValue.utf8.count + 1 + head.uri.utf8.count + 1 + 8 + 2
        for (name, value) in head.headers {
            size += name.utf8.count + 2 + value.utf8.count + 2
        }
        return size + 2
    }

    private static func headersAreValid(_ headers: [(name: String, value: String)]) -> Bool {
        for (name, value) in headers {
            if name.isEmpty { return false }
            for byte in name.utf8 where byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: ":") { return false }
            for byte in value.utf8 where byte == 0x0D || byte == 0x0A || byte == 0 { return false }
        }
        return true
    }

    private static func milliseconds(_ nanoseconds: Int64) -> String {
        let micros = nanoseconds / 1000
        let fraction = String(micros % 1000)
        return "\(micros / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }

    private static func describe(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidMethod: "unknown or malformed method"
        case .invalidURL: "malformed request target"
        case .invalidVersion: "malformed HTTP version"
        case .invalidHeaderToken: "malformed header field"
        case .invalidContentLength: "malformed Content-Length"
        case .unexpectedContentLength: "Content-Length together with Transfer-Encoding"
        case .invalidChunkSize: "malformed chunk size"
        case .invalidConstant: "malformed request line"
        case .lfExpected: "malformed line ending"
        default: "\(error)"
        }
    }
}
