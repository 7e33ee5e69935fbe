import NIOCore
import NIOHTTP1
import NIOPosix

// nio-floor: the cheapest HTTP/1.1 answer SwiftNIO can give on a Unix socket, as a ceiling for
// tokend's introspection throughput (tokend's server is built on SwiftNIO, DESIGN §2).
//
//   nio-floor --socket PATH [--mode raw|http1] [--threads N]
//
// raw:   one ChannelInboundHandler on ByteBuffers: counts whole requests (head + Content-Length
//        body) and writes a fixed `200 {"active":true}` for each, one writeAndFlush per read.
// http1: NIOHTTP1's server pipeline (decoder, encoder, pipelining handler) and a handler that
//        answers every request with the same fixed response: NIO's own HTTP cost.
// Neither parses the body, checks anything, or logs: what no real server can undercut.
#if canImport(Glibc)
import Glibc
#endif

let body = #"{"active":true}"#
let rawResponse = Array(
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8
)

final class RawHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var pending = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        pending.writeBuffer(&incoming)
        var answers = 0
        while let length = Self.requestLength(pending) {
            pending.moveReaderIndex(forwardBy: length)
            answers += 1
        }
        pending.discardReadBytes()
        guard answers > 0 else { return }
        var out = context.channel.allocator.buffer(capacity: rawResponse.count * answers)
        for _ in 0..<answers { out.writeBytes(rawResponse) }
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    /// The length of the whole request at the reader index (head and Content-Length body).
    static func requestLength(_ buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard bytes.count >= 4 else { return nil }
            var i = 0
            var contentLength = 0
            var lineStart = 0
            while i + 1 < bytes.count {
                if bytes[i] == 13, bytes[i + 1] == 10 {
                    if i == lineStart {  // empty line: end of head
                        let total = i + 2 + contentLength
                        return total <= bytes.count ? total : nil
                    }
                    let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<i])
                    if line.count > 15, line[0] | 0x20 == UInt8(ascii: "c"), line[8] | 0x20 == UInt8(ascii: "l"),
                        line[14] == UInt8(ascii: ":")
                    {
                        contentLength = 0
                        for byte in line[15...] where byte >= 48 && byte <= 57 {
                            contentLength = contentLength * 10 + Int(byte - 48)
                        }
                    }
                    lineStart = i + 2
                    i += 2
                } else {
                    i += 1
                }
            }
            return nil
        }
    }
}

final class FixedHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let bodyBytes = ByteBuffer(string: body)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(bodyBytes.readableBytes)")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
            promise: nil
        )
        context.write(wrapOutboundOut(.body(.byteBuffer(bodyBytes))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

func printError(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

var socketPath: String?
var mode = "raw"
var threads = 1
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--socket": socketPath = arguments.next()
    case "--mode": mode = arguments.next() ?? ""
    case "--threads": threads = Int(arguments.next() ?? "") ?? 0
    default:
        printError("nio-floor: unknown argument \(argument)")
        exit(64)
    }
}
guard let socketPath, mode == "raw" || mode == "http1", threads > 0 else {
    printError("usage: nio-floor --socket PATH [--mode raw|http1] [--threads N]")
    exit(64)
}
unlink(socketPath)
let raw = mode == "raw"
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 256)
    .childChannelOption(.maxMessagesPerRead, value: 16)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            if raw {
                try channel.pipeline.syncOperations.addHandler(RawHandler())
            } else {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                try channel.pipeline.syncOperations.addHandler(FixedHTTPHandler())
            }
        }
    }
let server = try bootstrap.bind(unixDomainSocketPath: socketPath).wait()
print("nio-floor: \(mode) on \(socketPath) with \(threads) event loop(s)")
try server.closeFuture.wait()
