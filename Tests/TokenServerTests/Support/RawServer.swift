import Foundation
import TokenClient
import TokenTestSupport

@testable import TokenServer

/// A listening Unix socket served by a script on its own thread, to feed the client
/// responses the real server never sends (chunked, unframed, silent).
final class RawServer: Sendable {
    let path: String
    private let listenFD: Int32

    init(path: String, script: @escaping @Sendable (_ accept: () -> UnixConnection?) -> Void) throws {
        self.path = path
        listenFD = try listeningUnixSocket(at: path)
        let fd = listenFD
        Thread {
            script {
                let connection = Foundation.accept(fd, nil, nil)
                return connection >= 0 ? UnixConnection(adopting: connection, timeout: 10) : nil
            }
        }.start()
    }

    deinit {
        shutdown(listenFD, Int32(SHUT_RDWR))
        Foundation.close(listenFD)
    }
}

extension UnixConnection {
    /// Reads one request head (up to the blank line) and any Content-Length body.
    func readRequest() -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while !bytes.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard recv(descriptor, &byte, 1, 0) == 1 else { return nil }
            bytes.append(byte)
        }
        let head = String(decoding: bytes, as: UTF8.self)
        let length =
            head.components(separatedBy: "\r\n")
            .first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        for _ in 0..<length { guard recv(descriptor, &byte, 1, 0) == 1 else { return nil } }
        return head
    }
}
