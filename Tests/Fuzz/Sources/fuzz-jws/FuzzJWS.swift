import FuzzSupport
import JOSE

/// The compact JWS parser over arbitrary text: never a crash; what it accepts has three
/// parts, and its header is a JSON object.
func fuzzJWS(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let token = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let jws = try? CompactJWS(token) else { return 0 }
    check(token.split(separator: ".", omittingEmptySubsequences: false).count == 3, "accepted: \(token)")
    _ = jws
    return 0
}
