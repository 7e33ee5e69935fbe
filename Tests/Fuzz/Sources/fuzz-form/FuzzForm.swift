import FuzzSupport

@testable import TokenServer

/// The form scanner over arbitrary bytes: never a crash, and the strict reader (`readForm`,
/// RFC 6749 §3.1) and the plain one (`pairs`) agree: what `readForm` accepts, `pairs` reads
/// as the same fields, none empty-named or repeated.
func fuzzForm(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var kept: [(String, String)] = []
    let error = PercentDecoding.readForm(bytes, keep: { _ in true }, kept: { kept.append(($0, $1)) })
    let pairs = PercentDecoding.pairs(Array(bytes))
    switch (error, pairs) {
    case (nil, .success(let all)):
        check(all.map(\.name) == kept.map(\.0) && all.map(\.value) == kept.map(\.1), "readForm and pairs differ")
        check(Set(all.map(\.name)).count == all.count && !all.contains { $0.name.isEmpty }, "a broken name kept")
    case (nil, .failure):
        check(false, "readForm accepted what pairs cannot decode")
    case (.some(.undecodable), .success):
        check(false, "readForm could not decode what pairs decoded")
    case (.some, _):
        break
    }
    return 0
}
