import NIOCore
import Testing

@testable import TokenServer

/// The request parser alone: what it accepts, what it refuses and with which status, however
/// the bytes are split across reads.
@Suite("HTTP/1.1 request parser")
struct RequestParserTests {
    private static func parse(
        _ text: String,
        chunkSize: Int? = nil,
        maxHead: Int = 16384,
        maxBody: Int = 65536
    )
        -> [HTTPRequestParser.Event]
    {
        parse(Array(text.utf8), chunkSize: chunkSize, maxHead: maxHead, maxBody: maxBody)
    }

    private static func parse(
        _ bytes: [UInt8],
        chunkSize: Int? = nil,
        maxHead: Int = 16384,
        maxBody: Int = 65536
    )
        -> [HTTPRequestParser.Event]
    {
        var parser = HTTPRequestParser(maxHeadBytes: maxHead, maxBodyBytes: maxBody)
        var events: [HTTPRequestParser.Event] = []
        let step = chunkSize ?? max(bytes.count, 1)
        var offset = 0
        while offset < bytes.count {
            var buffer = ByteBuffer(bytes: bytes[offset..<min(offset + step, bytes.count)])
            parser.append(&buffer)
            while let event = parser.next() { events.append(event) }
            offset += step
        }
        return events
    }

    private static func requests(_ events: [HTTPRequestParser.Event]) -> [HTTPRequestParser.Request] {
        events.compactMap { if case .request(let r) = $0 { r } else { nil } }
    }

    private static func refusal(_ events: [HTTPRequestParser.Event]) -> Int? {
        for case .refused(let error, _) in events { return error.status }
        return nil
    }

    @Test("a request with a body, whole or split into single bytes, reads the same")
    func splitAnywhere() {
        let text =
            "POST /oauth2/introspect HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\ntoken=abc"
        for size in [nil, 1, 2, 7] {
            let requests = Self.requests(Self.parse(text, chunkSize: size))
            #expect(requests.count == 1)
            #expect(requests.first?.method == "POST")
            #expect(requests.first?.target == "/oauth2/introspect")
            #expect(requests.first?.body == Array("token=abc".utf8))
            #expect(requests.first?.headers.map(\.name) == ["Host", "Content-Type", "Content-Length"])
            #expect(requests.first?.keepAlive == true)
        }
    }

    @Test("pipelined requests come out in order; leading empty lines are skipped")
    func pipelined() {
        let text =
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
        #expect(Self.requests(Self.parse(text)).map(\.target) == ["/a", "/b", "/c"])
        #expect(Self.requests(Self.parse(text, chunkSize: 3)).map(\.target) == ["/a", "/b", "/c"])
    }

    @Test("HTTP/1.0 closes unless keep-alive is asked; HTTP/1.1 keeps alive unless close is asked")
    func keepAlive() {
        #expect(Self.requests(Self.parse("GET / HTTP/1.0\r\n\r\n")).first?.keepAlive == false)
        #expect(Self.requests(Self.parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).first?.keepAlive == true)
        #expect(Self.requests(Self.parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")).first?.keepAlive == false)
        #expect(Self.requests(Self.parse("GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n")).first?.keepAlive == false)
    }

    @Test("chunked bodies: extensions skipped, trailers dropped, sizes in hex")
    func chunked() {
        let text =
            "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\n\r\n"
        for size in [nil, 1, 5] {
            let requests = Self.requests(Self.parse(text, chunkSize: size))
            #expect(requests.map(\.target) == ["/c", "/next"])
            #expect(requests.first.map { String(decoding: $0.body, as: UTF8.self) } == "hello, world!!!")
        }
    }

    @Test(
        "smuggling-prone and malformed heads are refused with 400",
        arguments: [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: \r\n\r\nabc",
            "POST / HTTP/1.1\r\nTransfer-Encoding: , ,\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3 4\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n",
            "GET / HTTP/1.1\nHost: x\n\n",
            "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / http/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET /a\u{7F} HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n",
        ]
    )
    func refused(_ text: String) {
        #expect(Self.refusal(Self.parse(text)) == 400, "\(text.debugDescription)")
        #expect(Self.requests(Self.parse(text)).isEmpty)
    }

    @Test("the same Content-Length twice is one length")
    func repeatedLength() {
        let requests = Self.requests(Self.parse("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"))
        #expect(requests.first?.body == Array("ok".utf8))
    }

    @Test("a head of exactly the limit passes, one byte more is 431 with the target when known")
    func headLimit() {
        let start = "GET /x HTTP/1.1\r\nX: "
        func request(_ size: Int) -> String {
            start + String(repeating: "a", count: size - start.utf8.count - 4) + "\r\n\r\n"
        }
        #expect(Self.requests(Self.parse(request(200), maxHead: 200)).count == 1)
        let over = Self.parse(request(201), chunkSize: 50, maxHead: 200)
        #expect(Self.refusal(over) == 431)
        if case .refused(_, let target)? = over.last { #expect(target == "/x") }
        // A request line that never ends: 431 without a target.
        let endless = Self.parse("GET /" + String(repeating: "a", count: 300), maxHead: 200)
        #expect(Self.refusal(endless) == 431)
    }

    @Test("a body over the limit is 413: from Content-Length at once, from chunks as they add up")
    func bodyLimit() {
        #expect(Self.refusal(Self.parse("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", maxBody: 100)) == 413)
        #expect(
            Self.requests(
                Self.parse(
                    "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + String(repeating: "b", count: 100),
                    maxBody: 100
                )
            ).count == 1
        )
        let chunks =
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" + String(repeating: "c", count: 50)
            + "\r\n33\r\n"
        #expect(Self.refusal(Self.parse(chunks, maxBody: 100)) == 413)
    }

    @Test("trailer fields after the last chunk are bounded like a head: 431 beyond the limit")
    func trailerLimit() {
        var text = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
        for i in 0..<100 { text += "X-Trailer-\(i): " + String(repeating: "t", count: 20) + "\r\n" }
        #expect(Self.refusal(Self.parse(text, chunkSize: 64, maxHead: 1024)) == 431)
        #expect(Self.requests(Self.parse(text + "\r\n", maxHead: 65536)).count == 1)
    }

    @Test("Expect: 100-continue asks for the interim answer once, only while the body is missing")
    func expectContinue() {
        var parser = HTTPRequestParser(maxHeadBytes: 1024, maxBodyBytes: 1024)
        var head = ByteBuffer(string: "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        parser.append(&head)
        guard case .continueExpected? = parser.next() else {
            Issue.record("no 100-continue event")
            return
        }
        #expect(parser.next() == nil)
        var body = ByteBuffer(string: "ok")
        parser.append(&body)
        guard case .request(let request)? = parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(request.body == Array("ok".utf8))
    }

    @Test("after a refusal the parser yields nothing more")
    func stopsAfterRefusal() {
        let events = Self.parse("BAD\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        #expect(events.count == 1)
        #expect(Self.refusal(events) == 400)
    }

    /// What a parse yields, independent of how the bytes were split: the requests in order and
    /// the status and target of a refusal, if any (the target picks the dialect of the answer;
    /// interim 100-continue events depend on the split).
    private static func outcome(_ events: [HTTPRequestParser.Event]) -> String {
        var lines: [String] = []
        for event in events {
            switch event {
            case .request(let r):
                let headers = r.headers.map { "\($0.name)=\($0.value)" }.joined(separator: "|")
                lines.append("\(r.method) \(r.target) 1.\(r.minorVersion) keep=\(r.keepAlive) [\(headers)] \(r.body)")
            case .refused(let error, let target):
                lines.append("refused \(error.status) \(target ?? "-")")
            case .continueExpected:
                break
            }
        }
        return lines.joined(separator: "\n")
    }

    @Test("mutated requests parse the same whole or split at random points, and never trap")
    func mutationsAreSplitInvariant() {
        let corpus = [
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /oauth2/introspect HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\ntoken=abc",
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: t\r\n\r\n",
            "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n",
            "POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhiGET /d HTTP/1.1\r\n\r\n",
            "\r\n\r\nDELETE /admin/keys/k1 HTTP/1.1\r\nX-A:  spaced  \r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        ].map { Array($0.utf8) }
        let alphabet: [UInt8] = Array("\r\n: \t0aZ;,-".utf8) + [0x00, 0x7F, 0x80, 0xFF]
        var random = SystemRandomNumberGenerator()
        var differing: [String] = []
        var refused = 0
        for _ in 0..<4_000 {
            var bytes = corpus.randomElement(using: &random)!
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let at = Int.random(in: 0...bytes.count, using: &random)
                let byte = alphabet.randomElement(using: &random)!
                switch Int.random(in: 0..<3, using: &random) {
                case 0 where at < bytes.count: bytes[at] = byte
                case 1 where at < bytes.count: bytes.remove(at: at)
                default: bytes.insert(byte, at: at)
                }
            }
            let whole = Self.outcome(Self.parse(bytes))
            let split = Self.outcome(Self.parse(bytes, chunkSize: Int.random(in: 1...17, using: &random)))
            if whole != split { differing.append(String(decoding: bytes, as: UTF8.self).debugDescription) }
            if whole.contains("refused") { refused += 1 }
        }
        #expect(differing.isEmpty, "\(differing.prefix(3))")
        #expect(refused > 500)
    }

    @Test(
        "a refusal names the target of the first line only, whatever the reads",
        arguments: [
            // Found by fuzz-http: a bare LF ends the first line, and "GGG" is on the second.
            [0x47, 0x0A, 0x47, 0x02, 0x03, 0xFF, 0x20, 0x47, 0x47, 0x47, 0x20] as [UInt8],
            Array("GET\n /x HTTP/1.1\r\n\r\n".utf8),
            Array("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n".utf8),
            // Found by fuzz-http: a bare LF within the head limit, more bytes than the limit after
            // it. Byte by byte the LF is refused (400) before the limit is reached; at once too.
            Array(("GET /x HTTP/1.1\r\nA: b\nC" + String(repeating: "x", count: 60)).utf8),
        ]
    )
    func refusalTargetIsSplitInvariant(bytes: [UInt8]) {
        let whole = Self.outcome(Self.parse(bytes, maxHead: 48))
        #expect(whole.hasPrefix("refused 4"), "\(whole)")
        for chunk in 1..<bytes.count {
            #expect(Self.outcome(Self.parse(bytes, chunkSize: chunk, maxHead: 48)) == whole, "reads of \(chunk) bytes")
        }
    }
}

/// The word-at-a-time scan for form values that need no decoding.
@Suite("Plain ASCII scan")
struct PlainASCIITests {
    @Test("every position and length: % + and non-ASCII are found wherever they are")
    func positions() {
        let plain = Array("eyJhbGciOiJFUzI1NiJ9.abc-_~".utf8)
        for length in 0...plain.count {
            let prefix = Array(plain.prefix(length))
            #expect(prefix.withUnsafeBytes { PercentDecoding.isPlainASCII($0) })
            for position in 0..<length {
                for bad: UInt8 in [UInt8(ascii: "%"), UInt8(ascii: "+"), 0x80, 0xFF, 0xC3] {
                    var bytes = prefix
                    bytes[position] = bad
                    #expect(
                        !bytes.withUnsafeBytes { PercentDecoding.isPlainASCII($0) },
                        "\(bad) at \(position) of \(length)"
                    )
                }
            }
        }
        // Neighbours of the special bytes are plain.
        let near = Array("$&*,&$*,".utf8) + [0x7F, 0x24, 0x26, 0x2A, 0x2C, 0x01, 0x00, 0x7F]
        #expect(near.withUnsafeBytes { PercentDecoding.isPlainASCII($0) })
    }
}
