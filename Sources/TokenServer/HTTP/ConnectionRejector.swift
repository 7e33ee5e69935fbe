import NIOCore

/// The whole pipeline of a connection over the cap: answers 503 with `Retry-After: 1` and
/// `Connection: close` at once, stops writing, discards what the client sends, and closes when
/// the client does or after the linger timeout. When `lingering` has no room left (a client
/// reconnecting past the cap as fast as it is refused), it closes right after the answer.
final class ConnectionRejector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let response: [UInt8]
    private let linger: TimeAmount
    private let lingering: LingeringRefusals
    private var holdsLingeringSlot = false
    private var answered = false
    private var lingerTimer: Scheduled<Void>?

    init(response: [UInt8], linger: TimeAmount, lingering: LingeringRefusals) {
        self.response = response
        self.linger = linger
        self.lingering = lingering
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelInactive(context: ChannelHandlerContext) {
        lingerTimer?.cancel()
        lingerTimer = nil
        if holdsLingeringSlot {
            holdsLingeringSlot = false
            lingering.release()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        let buffer = context.channel.allocator.buffer(bytes: response)
        // Lingering (output shut, input discarded until the client closes or the timer ends
        // it) when there is room for it; else closed as soon as the answer is written.
        holdsLingeringSlot = lingering.take()
        let mode: CloseMode = holdsLingeringSlot ? .output : .all
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(mode: mode, promise: nil)
        }
        guard holdsLingeringSlot else { return }
        lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: linger) {
            context.close(promise: nil)
        }
    }
}

extension HTTPError {
    /// The response as raw HTTP/1.1 bytes with `Connection: close`, for connections that never
    /// reach the HTTP pipeline (over the connection cap).
    var rawResponseBytes: [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        _ = HTTPResponseWriter.write(response, minorVersion: 1, keepAlive: false, isHead: false, into: &buffer)
        return Array(buffer.readableBytesView)
    }
}
