import FuzzSupport
import NIOCore

@testable import TokenServer

/// The HTTP/1.1 request parser over arbitrary bytes. Besides not crashing, it must read the
/// same requests and refusals whether the bytes arrive at once or split where the first byte
/// says (a connection delivers reads at arbitrary boundaries).
func fuzzHTTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = events(of: [bytes[...]])
    if let first = bytes.first, bytes.count > 1 {
        let cut = 1 + Int(first) % (bytes.count - 1)
        let split = events(of: [bytes[..<cut], bytes[cut...]])
        check(whole == split, "split at \(cut): \(whole) != \(split)")
        let byByte = events(of: bytes.indices.map { bytes[$0...$0] })
        check(whole == byByte, "byte by byte: \(whole) != \(byByte)")
    }
    return 0
}

/// The parser's events for `reads`, in order, as comparable text.
private func events(of reads: [ArraySlice<UInt8>]) -> [String] {
    var parser = HTTPRequestParser(maxHeadBytes: 1024, maxBodyBytes: 4096)
    var seen: [String] = []
    for read in reads {
        var buffer = ByteBuffer(bytes: read)
        parser.append(&buffer)
        while let event = parser.next() {
            switch event {
            case .request(let request):
                seen.append(
                    "request \(request.method) \(request.target) 1.\(request.minorVersion) keepAlive=\(request.keepAlive) "
                        + "\(request.headers.map { "\($0.name): \($0.value)" }) body=\(request.body)"
                )
            case .continueExpected:
                // Sent once per request, when the head is read before its whole body: whether
                // that happens depends on where the reads end, so it is not compared.
                continue
            case .refused(let error, let target):
                seen.append("refused \(error.status) \(error.error) \(target ?? "-")")
            }
        }
    }
    return seen
}
