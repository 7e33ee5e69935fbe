/// The origin-form request target (`/path?query`), split and percent-decoded. (A target that
/// is a literal route's pattern never gets here: ``Router`` finds it by its raw text.)
struct RequestTarget {
    /// The decoded path segments: `/a/b%20c` is `["a", "b c"]`.
    var segments: [String]
    /// The decoded path, `/` joined.
    var path: String
    var query: [(name: String, value: String)]

    /// Parses `uri`; the error says what is wrong without quoting the target.
    static func parse(_ uri: String) -> Result<RequestTarget, HTTPError> {
        var utf8 = Substring(uri).utf8[...]
        guard utf8.first == UInt8(ascii: "/") else {
            return .failure(.invalidRequest("the request target must be an absolute path starting with /"))
        }
        if let hash = utf8.firstIndex(of: UInt8(ascii: "#")) { utf8 = utf8[..<hash] }
        var pathBytes = utf8
        var queryBytes = utf8[utf8.endIndex...]
        if let question = utf8.firstIndex(of: UInt8(ascii: "?")) {
            pathBytes = utf8[..<question]
            queryBytes = utf8[utf8.index(after: question)...]
        }

        var segments: [String] = []
        for raw in pathBytes.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard let segment = PercentDecoding.decode(raw, plusAsSpace: false),
                !segment.unicodeScalars.contains(where: { $0.value == 0 })
            else {
                return .failure(.invalidRequest("the request path is not valid percent-encoded UTF-8"))
            }
            segments.append(segment)
        }
        var query: [(name: String, value: String)] = []
        if !queryBytes.isEmpty {
            switch PercentDecoding.pairs(queryBytes) {
            case .success(let pairs): query = pairs
            case .failure(let failure): return .failure(.invalidRequest("malformed query string: \(failure.message)"))
            }
        }
        return .success(RequestTarget(segments: segments, path: "/" + segments.joined(separator: "/"), query: query))
    }
}
