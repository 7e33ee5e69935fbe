import Foundation
import TokenClient
import TokenTestSupport

/// The raw side of `UnixConnection`: bytes no well-behaved client would send, and exactly what
/// the server answers.
extension UnixConnection {
    /// Sends everything; false when the server stopped reading (closed, reset, or the send
    /// timeout passed).
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool { (try? send(bytes)) ?? false }

    @discardableResult
    func write(_ text: String) -> Bool { write(Array(text.utf8)) }

    /// Reads `count` complete responses (1xx interim responses count).
    func readResponses(_ count: Int) throws -> [Reply] {
        try (0..<count).map { _ in try readResponse() }
    }
}
