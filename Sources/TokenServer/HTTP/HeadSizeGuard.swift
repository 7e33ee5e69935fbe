import NIOCore
import NIOHTTP1

/// What the request decoder has produced so far on a connection. Shared by
/// ``HeadSizeGuard`` (before the decoder) and ``DecoderProgressObserver`` (right after it);
/// both run on the connection's event loop, so plain stored properties suffice.
final class DecoderProgress {
    var headsDecoded = 0
    var endsDecoded = 0
    var inBody = false
    /// The request target of a head still being read, when the read that began it started
    /// with a request line: lets an answer to a head that never completes (431, malformed
    /// HTTP) be rendered for its route (the account dialects' error shapes).
    var pendingTarget: String?
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
        let startsHead = pendingHeadBytes == 0 && !progress.inBody
        context.fireChannelRead(data)
        if progress.headsDecoded != heads || progress.endsDecoded != ends {
            pendingHeadBytes = 0
            progress.pendingTarget = nil
        } else if !progress.inBody {
            if startsHead { progress.pendingTarget = Self.requestTarget(unwrapInboundIn(data)) }
            pendingHeadBytes += count
            if pendingHeadBytes > limit {
                tripped = true
                context.fireErrorCaught(HTTPParserError.headerOverflow)
            }
        }
    }

    /// The target of a request line at the start of `buffer` (`METHOD SP target SP`), when the
    /// bytes look like one: an uppercase method and an origin-form target of at most 2 KiB.
    static func requestTarget(_ buffer: ByteBuffer) -> String? {
        buffer.withUnsafeReadableBytes { bytes -> String? in
            var index = 0
            while index < bytes.count, index < 32, (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(bytes[index]) {
                index += 1
            }
            guard index > 0, index < bytes.count, bytes[index] == UInt8(ascii: " ") else { return nil }
            let start = index + 1
            guard start < bytes.count, bytes[start] == UInt8(ascii: "/") else { return nil }
            var end = start
            while end < bytes.count, end - start < 2048, bytes[end] > 0x20, bytes[end] < 0x7F { end += 1 }
            guard end < bytes.count, bytes[end] == UInt8(ascii: " ") else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
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
