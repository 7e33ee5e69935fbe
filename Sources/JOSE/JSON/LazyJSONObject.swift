import Synchronization

/// A token's decoded header and payload as the verifier's scanner checked them: one buffer
/// with both, and each part's `JSONObject` tree built the first time someone asks for it.
///
/// The verifier's hot path checks a token without building trees; a caller that wants the
/// whole header or claim set (introspection output, `explain`) pays for the tree once.
final class ScannedToken: @unchecked Sendable {
    // Safe: `storage` is filled in init, before the object can be shared, and only read
    // afterwards; it is freed in deinit, when no reader is left. The other stored
    // properties are immutable or behind a Mutex.

    /// Header bytes, then payload bytes (malloc'd, owned: cheaper than an Array here).
    private let storage: UnsafeMutableRawBufferPointer
    let headerLength: Int
    /// Where the registered claims are in the payload, when the scanner checked it.
    let registered: JWTClaims.ScannedRegistered
    /// Where the header's kid, typ and cty are.
    let headerFields: JOSEHeader.ScannedFields
    private let trees = Mutex<(header: JSONObject?, claims: JSONObject?)>((nil, nil))

    /// Copies `bytes` (header, then payload).
    init(
        copying bytes: UnsafeRawBufferPointer,
        headerLength: Int,
        headerFields: JOSEHeader.ScannedFields = .init(),
        registered: JWTClaims.ScannedRegistered = .init()
    ) {
        storage = .allocate(byteCount: max(bytes.count, 1), alignment: 1)
        if let base = bytes.baseAddress, let target = storage.baseAddress {
            target.copyMemory(from: base, byteCount: bytes.count)
        }
        self.count = bytes.count
        self.headerLength = headerLength
        self.headerFields = headerFields
        self.registered = registered
    }

    /// A copy of `bytes` (header, then payload).
    static func copying(
        _ bytes: [UInt8],
        headerLength: Int,
        registered: JWTClaims.ScannedRegistered = .init()
    ) -> ScannedToken {
        bytes.withUnsafeBytes { ScannedToken(copying: $0, headerLength: headerLength, registered: registered) }
    }

    deinit { storage.deallocate() }

    private let count: Int

    /// Header and payload.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }

    var header: LazyJSONObject { LazyJSONObject(token: self, isHeader: true) }
    var payload: LazyJSONObject { LazyJSONObject(token: self, isHeader: false) }

    fileprivate func cached(isHeader: Bool) -> JSONObject? {
        trees.withLock { isHeader ? $0.header : $0.claims }
    }

    fileprivate func cache(_ object: JSONObject, isHeader: Bool) -> JSONObject {
        trees.withLock { trees in
            if isHeader {
                if let built = trees.header { return built }
                trees.header = object
            } else {
                if let built = trees.claims { return built }
                trees.claims = object
            }
            return object
        }
    }
}

/// The header or the payload of a `ScannedToken`: a JSON object `JSONScanner` validated, kept
/// as bytes until its tree is wanted.
struct LazyJSONObject: Sendable {
    let token: ScannedToken
    let isHeader: Bool

    /// The document's bytes.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let split = token.headerLength
        let all = token.bytes
        return try withExtendedLifetime(token) {
            try body(UnsafeRawBufferPointer(rebasing: isHeader ? all[..<split] : all[split...]))
        }
    }

    /// `start..<end` of the document (relative to its first byte) as a String; the bytes are
    /// valid UTF-8 without escapes, as the scanner checked.
    func string(_ start: Int, _ end: Int) -> String {
        withBytes { String(decoding: UnsafeRawBufferPointer(rebasing: $0[start..<end]), as: UTF8.self) }
    }

    /// The parsed object, built on first use.
    var object: JSONObject {
        if let built = token.cached(isHeader: isHeader) { return built }
        let parsed = withBytes { bytes -> JSONObject in
            guard let value = try? JSONParser().parse(bytes), case .object(let object) = value else {
                // JSONScanner accepts only what JSONParser accepts; the differential tests hold
                // it to that. Reaching this line is a bug in one of the two.
                preconditionFailure("JSONScanner accepted a document that JSONParser refuses")
            }
            return object
        }
        return token.cache(parsed, isHeader: isHeader)
    }

    /// The value of the top-level member `name`, without building the whole tree when it
    /// has not been built yet: the member's own bytes are parsed alone. The same answer
    /// as `object[name]`.
    func member(_ name: String) -> JSONValue? {
        if let built = token.cached(isHeader: isHeader) { return built[name] }
        // Names in a scanned document are ASCII; a non-ASCII name could still equal one of
        // them by canonical equivalence, so leave that case to the tree.
        guard name.utf8.allSatisfy({ $0 < 0x80 }) else { return object[name] }
        var key = name
        let found = key.withUTF8 { wanted -> (start: Int, end: Int, isString: Bool)? in
            var hit: (start: Int, end: Int, isString: Bool)?
            let scanned = withBytes { bytes in
                JSONScanner.scanObject(bytes, maxDepth: JSONParser().maxDepth) { candidate, value in
                    if hit == nil, candidate.bytes.elementsEqual(UnsafeRawBufferPointer(wanted)) {
                        hit = (value.start, value.end, value.kind == .string)
                    }
                    return true
                }
            }
            precondition(scanned, "a scanned document no longer scans")
            return hit
        }
        guard let found else { return nil }
        if found.isString { return .string(string(found.start, found.end)) }
        return withBytes { bytes in
            try? JSONParser().parse(UnsafeRawBufferPointer(rebasing: bytes[found.start..<found.end]))
        }
    }
}
