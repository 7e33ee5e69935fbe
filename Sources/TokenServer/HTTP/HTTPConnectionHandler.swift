import Glibc
import Logging
import NIOCore
import TokenStore

/// Serves the requests of one connection, in order, straight from the socket's bytes.
///
/// ``HTTPRequestParser`` reads requests (and enforces the head and body limits); `.sync`
/// handlers run inline on the event loop and `.async` ones in a task (bounded by
/// `requestTimeout`), during which reading stops and pipelined requests wait in the parser.
/// Every response is written as one buffer with `Content-Length` and `Cache-Control`, the
/// responses to one read are flushed together, and each request gets one log line and its
/// metrics. All state lives on the connection's event loop.
///
/// Deadlines: a request head must be complete `headerTimeout` after its first byte (a new
/// connection's first head, after the accept), and its body `bodyTimeout` after the head,
/// however the bytes trickle in; a slower request is answered 408 and the connection closed.
/// Between requests the idle timeout counts from the last answer, and bytes of an unfinished
/// request do not extend it. So a slow client holds a slot for a bounded time, whatever it
/// sends.
///
/// Backpressure: while the channel is not writable (the client does not read its answers and
/// the outbound buffer is over its high water mark), pipelined requests wait in the parser and
/// no `read` is issued, so what the client sends next waits in the kernel and then in the
/// client. What one connection holds is bounded by the water mark, one batch of answers
/// (``flushThreshold``) and one read cycle of input (at end of input, NIO reads what the
/// socket's receive buffer holds: that much at most).
///
/// NIOHTTP1's decoder, encoder and pipelining handler are not used: on the introspection hot
/// path they cost more than everything else together (BENCHMARKS.md, "nio-floor").
final class HTTPConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        /// Reading requests.
        case idle
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
        var minorVersion: Int
        var keepAlive: Bool
        var isHead: Bool
        var route: String
        var start: NIODeadline
    }

    /// The part of a request the connection waits for from the client, and so which deadline
    /// applies.
    private enum RequestPart {
        /// The rest of a request head.
        case head
        /// The rest of a request body.
        case body
    }

    private static let unmatchedRoute = "unmatched"
    /// How long an idle connection told to quiesce waits for a read pass before it closes.
    private static let quiesceReadPass = TimeAmount.milliseconds(20)
    private static let invalidRoute = "invalid"
    private static let timeoutRoute = "timeout"

    private let listener: ListenerContext
    private var parser: HTTPRequestParser
    private var phase = Phase.idle
    private var info: RequestInfo?
    private var peer: PeerCredentials?
    /// The peer's address on a TCP connection.
    private var remoteAddress: IPAddress?
    private var peerChecked = false
    private var sequence: UInt64 = 0
    private var timeout: Scheduled<Void>?
    private var asyncTask: Task<Void, Never>?
    /// The executor of `.asyncOnEventLoop` handlers' tasks: this connection's event loop.
    private var loopExecutor: EventLoopTaskExecutor?
    private var lingerTimer: Scheduled<Void>?
    private var metrics: HTTPMetrics
    /// Responses not written yet: those of one read go out in one write, and the buffer is
    /// reused once the socket took it (no allocation per response).
    private var outgoing: ByteBuffer
    /// A `read` held back while an asynchronous handler runs or the channel is not writable.
    private var readPending = false
    /// Whether the channel takes more writes (below its high water mark); while not, requests
    /// are not processed and nothing is read.
    private var writable = true
    /// Inside `processRequests`: writability changes raised by its own writes do not re-enter it.
    private var processing = false
    /// The client shut its side down (half-close): answer what it sent, then close.
    private var inputClosed = false
    /// Graceful shutdown asked this connection to end after its current request.
    private var quiescing = false
    /// The last read or answer; the idle timer closes the connection `idleTimeout` after it.
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    /// The part of a request being waited for, and when it must have arrived; nil between
    /// requests (the idle timeout applies) or while a handler runs.
    private var awaiting: (part: RequestPart, due: NIODeadline)?
    private var deadlineTimer: Scheduled<Void>?
    private var deadlineTimerAt: NIODeadline?
    /// Bytes arrived since the last whole request was taken (empty lines before a request
    /// line leave nothing in the parser, but still start the head's clock); true from the
    /// accept, when the first head's clock runs.
    private var bytesSinceRequest = true

    init(listener: ListenerContext, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.listener = listener
        self.parser = HTTPRequestParser(
            maxHeadBytes: listener.configuration.maxHeaderBytes,
            maxBodyBytes: listener.configuration.maxBodyBytes,
            allocator: allocator
        )
        self.metrics = HTTPMetrics(factory: listener.metricsFactory)
        self.outgoing = allocator.buffer(capacity: 1024)
    }

    // MARK: Connection events

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            readPeerCredentials(context: context)
            scheduleIdleCheck(context: context)
            startFirstHeadClock(context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        readPeerCredentials(context: context)
        scheduleIdleCheck(context: context)
        startFirstHeadClock(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        timeout?.cancel()
        timeout = nil
        lingerTimer?.cancel()
        lingerTimer = nil
        idleTimer?.cancel()
        idleTimer = nil
        deadlineTimer?.cancel()
        deadlineTimer = nil
        // An async handler still running is left to finish its work (it may be writing to the
        // store); its answer is dropped.
        asyncTask = nil
        context.fireChannelInactive()
    }

    /// Idle connections: `idleTimeout` after the last read or answer, a connection that is
    /// not running a handler is closed. (Tracked here rather than by NIO's IdleStateHandler,
    /// which reads the clock and allocates a promise for every read and write it passes on.)
    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        guard idleTimer == nil else { return }
        armIdleTimer(context: context, at: lastActivity + TimeAmount(listener.configuration.idleTimeout))
    }

    private func armIdleTimer(context: ChannelHandlerContext, at deadline: NIODeadline) {
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.idleCheck(context: context)
        }
    }

    private func idleCheck(context: ChannelHandlerContext) {
        idleTimer = nil
        let timeout = TimeAmount(listener.configuration.idleTimeout)
        switch phase {
        case .closed where !context.channel.isActive:
            return
        case .idle where awaiting != nil:
            // A request is on its way: its head or body deadline governs, not the idle timeout.
            armIdleTimer(context: context, at: NIODeadline.now() + timeout)
        case .idle, .discarding, .closed:
            // .closed with the channel still open: an answer that ends the connection could not
            // be written (the client stopped reading); the idle timeout ends it.
            let due = lastActivity + timeout
            if NIODeadline.now() < due {
                armIdleTimer(context: context, at: due)
                return
            }
            listener.logger.trace("closing idle connection", metadata: ["listener": "\(listener.kind)"])
            phase = .closed
            context.close(promise: nil)
        case .responding:
            // A handler is running (bounded by the request timeout): look again later.
            armIdleTimer(context: context, at: NIODeadline.now() + timeout)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            guard case .idle = phase, !parser.hasPartialRequest else { return }
            // What the client sent before the shutdown may still wait in the socket (the loop
            // can run this before its next read): one read pass first, so such a request is
            // answered, with `Connection: close`, rather than cut off.
            if writable { context.read() }
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.quiesceReadPass) {
                guard case .idle = self.phase, !self.parser.hasPartialRequest else { return }
                // Output first, then what the client still sends is discarded until it closes
                // (or the linger timeout): a request crossing the close reads an end of stream
                // rather than a reset.
                self.closeLingering(context: context)
            }
            return
        }
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            inputClosed = true
            switch phase {
            case .idle:
                // Every whole request already read was answered, unless the client stopped
                // reading answers: those are answered once it does.
                if writable { endAfterInput(context: context) }
            case .responding:
                break  // closed once its answer is written
            case .discarding, .closed:
                break  // already closing once the answer is written
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch phase {
        case .discarding, .closed:
            return
        case .idle, .responding:
            listener.logger.debug("closing connection after an error", metadata: ["error": "\(error)"])
            phase = .closed
            context.close(promise: nil)
        }
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .discarding, .closed:
            return
        case .idle, .responding:
            break
        }
        lastActivity = .now()
        bytesSinceRequest = true
        var bytes = unwrapInboundIn(data)
        parser.append(&bytes)
        if case .idle = phase { processRequests(context: context) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
        context.fireChannelReadComplete()
    }

    /// Holds reads back while an asynchronous handler runs or the client does not take its
    /// answers, so pipelined requests wait in the kernel's buffer rather than in memory.
    func read(context: ChannelHandlerContext) {
        if case .responding = phase {
            readPending = true
            return
        }
        // Backpressure holds reads only while requests are being read; a connection that is
        // discarding input until it closes keeps reading.
        if !writable, case .idle = phase {
            readPending = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if writable, !processing, case .idle = phase {
            resume(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Answers every whole request buffered, in order, until one needs an asynchronous handler
    /// or the channel stops being writable.
    private func processRequests(context: ChannelHandlerContext) {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while case .idle = phase, writable, let event = parser.next() {
            switch event {
            case .continueExpected:
                outgoing.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
            case .refused(let refusal, let target):
                let info = RequestInfo(
                    method: "-",
                    minorVersion: 1,
                    keepAlive: false,
                    isHead: false,
                    route: Self.invalidRoute,
                    start: .now()
                )
                refuse(context: context, refusal, info: info, uri: target)
            case .request(let request):
                // The request is whole: its deadline is met, the next one's clock starts later.
                bytesSinceRequest = false
                awaiting = nil
                handle(context: context, request)
            }
            // A batch of answers goes out before it grows further, so that the channel can
            // say it is not writable before the next request is taken.
            if outgoing.readableBytes >= Self.flushThreshold, case .idle = phase {
                writeOutgoing(context: context, promise: nil)
            }
        }
        flushIfNeeded(context: context)
        if inputClosed, writable, case .idle = phase { endAfterInput(context: context) }
        updateRequestDeadline(context: context)
    }

    // MARK: Request deadlines

    /// A new connection's first request head is due `headerTimeout` after the accept.
    private func startFirstHeadClock(context: ChannelHandlerContext) {
        guard bytesSinceRequest, awaiting == nil else { return }
        awaiting = (.head, NIODeadline.now() + TimeAmount(listener.configuration.headerTimeout))
        armDeadlineTimer(context: context)
    }

    /// After the requests of a read were taken: starts the head's clock when bytes of a new
    /// request arrived (or were left over from a pipelined read, at the end of the answer
    /// before it), the body's when its head is complete, and stops it between requests.
    /// Nothing changes (and no clock is read) on the common path of whole requests.
    private func updateRequestDeadline(context: ChannelHandlerContext) {
        guard case .idle = phase, writable else { return }
        let next: RequestPart?
        if parser.isReadingBody {
            next = .body
        } else if bytesSinceRequest || parser.hasPartialRequest {
            next = .head
        } else {
            next = nil
        }
        guard next != awaiting?.part else { return }
        guard let next else {
            awaiting = nil
            return
        }
        let configuration = listener.configuration
        let timeout = next == .body ? configuration.bodyTimeout : configuration.headerTimeout
        awaiting = (next, NIODeadline.now() + TimeAmount(timeout))
        armDeadlineTimer(context: context)
    }

    /// Makes sure a timer fires at the request deadline (or before it, then it looks again).
    private func armDeadlineTimer(context: ChannelHandlerContext) {
        guard let due = awaiting?.due else { return }
        if deadlineTimer != nil, let armed = deadlineTimerAt, armed <= due { return }
        deadlineTimer?.cancel()
        deadlineTimerAt = due
        deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) {
            self.deadlineCheck(context: context)
        }
    }

    private func deadlineCheck(context: ChannelHandlerContext) {
        deadlineTimer = nil
        deadlineTimerAt = nil
        guard let due = awaiting?.due, case .idle = phase else { return }
        guard writable else {
            // The client does not take its answers, so its next request is not read either:
            // the idle timeout governs, and the clock starts again once answers flow.
            awaiting = nil
            return
        }
        if NIODeadline.now() < due {
            armDeadlineTimer(context: context)
            return
        }
        requestTimedOut(context: context)
    }

    /// The head or body did not arrive in time: 408, then the connection ends.
    private func requestTimedOut(context: ChannelHandlerContext) {
        let configuration = listener.configuration
        let (part, limit) =
            awaiting?.part == .body
            ? ("body", configuration.bodyTimeout.components.seconds)
            : ("head", configuration.headerTimeout.components.seconds)
        awaiting = nil
        let listener = self.listener
        listener.timeouts.record(on: context.eventLoop) { closed in
            listener.logger.warning(
                "closed slow connections: a request head or body did not arrive within its deadline",
                metadata: [
                    "closed": "\(closed)",
                    "interval": "\(listener.timeouts.intervalSeconds) s",
                    "header_timeout": "\(configuration.headerTimeout.components.seconds) s",
                    "body_timeout": "\(configuration.bodyTimeout.components.seconds) s",
                    "listener": "\(listener.addressDescription)",
                ]
            )
        }
        let info = RequestInfo(
            method: "-",
            minorVersion: 1,
            keepAlive: false,
            isHead: false,
            route: Self.timeoutRoute,
            start: lastActivity
        )
        // Every answer before it was written in full (the channel is writable and nothing is
        // pending), so the 408 cannot be mistaken for the answer to an earlier request.
        refuse(
            context: context,
            .requestTimeout("the request \(part) did not arrive within \(limit) s"),
            info: info
        )
    }

    /// Answers are written once this many bytes of them are waiting, even within one read:
    /// the size of the buffer a connection keeps, so a mid-batch flush reuses it.
    static let flushThreshold = keptOutgoingCapacity

    /// The client half-closed and every whole request it sent was answered: what it left
    /// unfinished will never end, so the connection closes once the answers are written.
    private func endAfterInput(context: ChannelHandlerContext) {
        phase = .closed
        writeOutgoing(context: context).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    private func handle(context: ChannelHandlerContext, _ parsed: HTTPRequestParser.Request) {
        var info = RequestInfo(
            method: parsed.method,
            minorVersion: parsed.minorVersion,
            keepAlive: parsed.keepAlive && !quiescing,
            isHead: parsed.method == "HEAD",
            route: Self.invalidRoute,
            // Its last bytes arrived, or the answer before it went out (no second clock read).
            start: lastActivity
        )
        let target: Router.RoutedTarget
        switch listener.router.route(method: info.method, target: parsed.target) {
        case .success(let routed): target = routed
        case .failure(let refusal):
            respond(context: context, rendered(refusal, uri: parsed.target), info: info)
            return
        }
        switch target.resolution {
        case .notFound:
            info.route = Self.unmatchedRoute
            respond(context: context, rendered(HTTPError.notFound(), uri: parsed.target), info: info)
        case .methodNotAllowed(let allowed):
            info.route = Self.unmatchedRoute
            respond(
                context: context,
                rendered(HTTPError.methodNotAllowed(info.method, allowed: allowed), uri: parsed.target),
                info: info
            )
        case .matched(let route, let parameters):
            info.route = route.name
            let request = HTTPRequest(
                method: info.method,
                path: target.path,
                query: target.query,
                headers: parsed.headers,
                body: parsed.body,
                listener: listener.kind,
                peer: peer,
                remoteAddress: remoteAddress,
                pathParameters: parameters
            )
            switch route.handler {
            case .sync(let handler):
                respond(context: context, handler(request), info: info)
            case .async(let handler):
                self.info = info
                runAsync(context: context, handler, request, onEventLoop: false)
            case .asyncOnEventLoop(let handler):
                self.info = info
                runAsync(context: context, handler, request, onEventLoop: true)
            }
        }
    }

    private func runAsync(
        context: ChannelHandlerContext,
        _ handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse,
        _ request: HTTPRequest,
        onEventLoop: Bool
    ) {
        phase = .responding
        flushIfNeeded(context: context)
        sequence &+= 1
        let id = sequence
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        let body: @Sendable () async -> Void = {
            let response = await handler(request)
            if eventLoop.inEventLoop {
                bound.value.handler.asyncFinished(context: bound.value.context, id: id, response)
            } else {
                eventLoop.execute {
                    bound.value.handler.asyncFinished(context: bound.value.context, id: id, response)
                }
            }
        }
        if onEventLoop {
            if loopExecutor == nil { loopExecutor = EventLoopTaskExecutor(eventLoop) }
            let executor = loopExecutor
            asyncTask = Task(executorPreference: executor) {
                await StoreTaskExecutor.$preferred.withValue(executor, operation: body)
            }
        } else {
            asyncTask = Task(operation: body)
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
        self.info = nil
        respond(context: context, response, info: info)
        resume(context: context)
    }

    private func asyncTimedOut(context: ChannelHandlerContext, id: UInt64) {
        guard case .responding = phase, id == sequence, let info else { return }
        timeout = nil
        asyncTask?.cancel()
        asyncTask = nil
        self.info = nil
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
        resume(context: context)
    }

    /// After an asynchronous answer, or once the channel is writable again: serve what was
    /// pipelined, then read again.
    private func resume(context: ChannelHandlerContext) {
        guard case .idle = phase else {
            flushIfNeeded(context: context)
            return
        }
        processRequests(context: context)
        if case .idle = phase, writable, readPending {
            readPending = false
            context.read()
        }
    }

    // MARK: Responses

    /// The error body for this path: the configured renderer's, else the OAuth-style one.
    private func rendered(_ error: HTTPError, uri: String?) -> HTTPResponse {
        guard let renderer = listener.configuration.errorRenderer, let uri else { return error.response }
        let path =
            uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        return renderer(error, path)
    }

    /// Answers a request that cannot be read to its end (limits, malformed HTTP): writes the
    /// answer with `Connection: close`, stops writing, and discards input until the client
    /// closes or the linger timeout ends the connection.
    private func refuse(context: ChannelHandlerContext, _ refusal: HTTPError, info: RequestInfo, uri: String? = nil) {
        respond(context: context, rendered(refusal, uri: uri), info: info, close: .linger)
        closeLingering(context: context)
    }

    /// Writes what is pending, shuts the output, and discards input until the client closes or
    /// the linger timeout ends the connection.
    private func closeLingering(context: ChannelHandlerContext) {
        phase = .discarding
        writeOutgoing(context: context).assumeIsolated().whenComplete { _ in
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

    private func flushIfNeeded(context: ChannelHandlerContext) {
        guard outgoing.readableBytes > 0 else { return }
        writeOutgoing(context: context, promise: nil)
    }

    /// Writes and flushes the pending responses, then makes the buffer ready for the next
    /// ones: in place when the socket took every byte (NIO let go of it), else in a new one.
    private func writeOutgoing(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        context.writeAndFlush(wrapOutboundOut(outgoing), promise: promise)
        if outgoing.capacity > Self.keptOutgoingCapacity {
            // A large answer (metrics) does not keep its memory for the connection's lifetime.
            outgoing = context.channel.allocator.buffer(capacity: 1024)
        } else {
            outgoing.clear()
        }
    }

    static let keptOutgoingCapacity = 16 * 1024

    private func writeOutgoing(context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let promise = context.eventLoop.makePromise(of: Void.self)
        writeOutgoing(context: context, promise: promise)
        return promise.futureResult
    }

    private func respond(
        context: ChannelHandlerContext,
        _ response: HTTPResponse,
        info: RequestInfo,
        close closeMode: CloseMode = .keepAliveIfAsked
    ) {
        var response = response
        if response.constantHeaders == nil, !HTTPResponseWriter.headersAreValid(response.headers) {
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
        let keepAlive = HTTPResponseWriter.write(
            response,
            minorVersion: info.minorVersion,
            keepAlive: closeMode == .keepAliveIfAsked && info.keepAlive && !quiescing,
            isHead: info.isHead,
            into: &outgoing
        )

        finished(info: info, status: status)
        switch closeMode {
        case .keepAliveIfAsked: phase = keepAlive ? .idle : .closed
        case .linger: phase = .discarding
        }
        if closeMode == .keepAliveIfAsked, !keepAlive {
            writeOutgoing(context: context).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func finished(info: RequestInfo, status: Int) {
        let end = NIODeadline.now()
        lastActivity = end
        let elapsed = (end - info.start).nanoseconds
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

    /// SO_PEERCRED of a Unix-socket peer, or a TCP peer's address, read once per connection.
    private func readPeerCredentials(context: ChannelHandlerContext) {
        guard !peerChecked else { return }
        peerChecked = true
        if let address = context.channel.remoteAddress?.ipAddress {
            remoteAddress = IPAddress(address)
            return
        }
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

    private static func milliseconds(_ nanoseconds: Int64) -> String {
        let micros = nanoseconds / 1000
        let fraction = String(micros % 1000)
        return "\(micros / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
