import FuzzSupport
import JOSE

/// The JSON parser over arbitrary bytes: never a crash, and whatever it accepts, its own
/// serialisation parses back to the same value.
func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let parser = JSONParser()
    guard let value = try? parser.parse(UnsafeRawBufferPointer(start: data, count: size)) else { return 0 }
    let text = value.compactText
    guard let again = try? parser.parse(text) else {
        check(false, "the serialisation of an accepted document does not parse: \(text)")
        return 0
    }
    check(again == value, "a round trip changed the value: \(text)")
    return 0
}
