import Foundation
import Logging
import NIOCore
import Testing
import TokenClient
import TokenTestSupport

@testable import TokenServer

#if canImport(Glibc)
import Glibc
#endif

/// Clients that pipeline without reading, half-close, or keep knocking at the connection cap
/// (issue 10, findings 2 and 11).
@Suite("HTTPServer under hostile clients")
struct HostileClientTests {
    @Test("an empty Transfer-Encoding, with or without Content-Length, is 400 on the wire")
    func emptyTransferEncoding() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath
        for head in ["Transfer-Encoding:\r\nContent-Length: 2", "Transfer-Encoding: ,\r\nContent-Length: 2"] {
            let status = try await onThread {
                let connection = try UnixConnection(path: path, timeout: 10)
                defer { connection.close() }
                connection.write("POST /form HTTP/1.1\r\nHost: x\r\n\(head)\r\n\r\nab")
                return try connection.readResponse().status
            }
            #expect(status == 400, "\(head)")
        }
        try await server.stop()
    }
}
