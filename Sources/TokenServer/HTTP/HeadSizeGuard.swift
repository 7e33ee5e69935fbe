import NIOCore
import NIOHTTP1

/// What the request decoder has produced so far on a connection. Shared by
/// ``HeadSizeGuard`` (before the decoder) and ``DecoderProgressObserver`` (right after it);
/// both run on the connection's event loop, so plain stored properties suffice.
final class DecoderProgress {
    var headsDecoded = 0
    var endsDecoded = 0
    var inBody = false
}

/// Bounds the bytes a client may send before its request head is complete.
///
/// NIO's decoder limits the header names and values (configured to `maxHeaderBytes`), and
/// ``HTTPConnectionHandler`` measures every complete head exactly, but neither bounds a request
/// line that never ends: the decoder would buffer it. This handler counts the bytes of every
/// read during which the decoder neither finished a head nor a request, and once they exceed
/// the limit it fires `HTTPParserError.headerOverflow` (answered with 431, in order with any
/// pipelined responses) and discards all further input.
final class HeadSizeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let limit: Int
    private let progress: DecoderProgress
    private var pendingHeadBytes = 0
    private var tripped = false

    init(limit: Int, progress: DecoderProgress) {
        self.limit = limit
        self.progress = progress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if tripped { return }
        let count = unwrapInboundIn(data).readableBytes
        let heads = progress.headsDecoded
        let ends = progress.endsDecoded
        context.fireChannelRead(data)
        if progress.headsDecoded != heads || progress.endsDecoded != ends {
            pendingHeadBytes = 0
        } else if !progress.inBody {
            pendingHeadBytes += count
            if pendingHeadBytes > limit {
                tripped = true
                context.fireErrorCaught(HTTPParserError.headerOverflow)
            }
        }
    }
}

/// Records heads and request ends as they leave the decoder (see ``DecoderProgress``).
final class DecoderProgressObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let progress: DecoderProgress

    init(progress: DecoderProgress) {
        self.progress = progress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            progress.headsDecoded &+= 1
            progress.inBody = true
        case .body:
            break
        case .end:
            progress.endsDecoded &+= 1
            progress.inBody = false
        }
        context.fireChannelRead(data)
    }
}
