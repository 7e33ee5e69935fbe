import Foundation
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for
/// `TOKEND_LISTEN`.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket(AF_INET): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = loopback(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw HarnessError("bind(127.0.0.1:0): \(String(cString: strerror(errno)))") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw HarnessError("getsockname: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

private func loopback(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

/// One request on a fresh TCP connection to 127.0.0.1:`port` (tokend's `TOKEND_LISTEN`).
func tcpRequest(
    port: Int,
    _ method: String,
    _ target: String,
    json: String,
    headers: [(String, String)] = []
) async throws -> Reply {
    let bytes = requestBytes(method, target, headers: headers, body: .json(json))
    return try await onThread {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(AF_INET): \(String(cString: strerror(errno)))") }
        var address = loopback(port: UInt16(port))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect(127.0.0.1:\(port)): \(String(cString: strerror(code)))")
        }
        let connection = UnixConnection(adopting: fd)
        defer { connection.close() }
        try connection.send(bytes)
        return try connection.readResponse()
    }
}
