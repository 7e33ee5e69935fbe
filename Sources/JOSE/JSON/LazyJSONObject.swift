import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
    private let trees = Mutex<Trees>(Trees())

    /// What has been built from the bytes so far.
    private struct Trees {
        var header: JSONObject?
        var claims: JSONObject?
        /// The claim set's top-level members, for `member(_:)`.
        var claimsIndex: [IndexedMember]?
        var headerIndex: [IndexedMember]?
    }

    /// A top-level member: where its name is, and its value.
    struct IndexedMember: Sendable {
        var nameStart: Int
        var nameCount: Int
        var value: JSONScanner.Value
    }

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

    /// The top-level members of the header or payload, listed by one scan on first use.
    fileprivate func index(isHeader: Bool, build: () -> [IndexedMember]) -> [IndexedMember] {
        if let index = trees.withLock({ isHeader ? $0.headerIndex : $0.claimsIndex }) { return index }
        let built = build()
        return trees.withLock { trees in
            if isHeader {
                if let index = trees.headerIndex { return index }
                trees.headerIndex = built
            } else {
                if let index = trees.claimsIndex { return index }
                trees.claimsIndex = built
            }
            return built
        }
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
        let index = token.index(isHeader: isHeader) {
            var members: [ScannedToken.IndexedMember] = []
            let scanned = withBytes { bytes in
                JSONScanner.scanObject(bytes, maxDepth: JSONParser().maxDepth) { candidate, value in
                    let start = bytes.baseAddress!.distance(to: candidate.bytes.baseAddress!)
                    members.append(.init(nameStart: start, nameCount: candidate.bytes.count, value: value))
                    return true
                }
            }
            precondition(scanned, "a scanned document no longer scans")
            return members
        }
        var key = name
        let found = key.withUTF8 { wanted -> JSONScanner.Value? in
            withBytes { bytes in
                index.first { member in
                    member.nameCount == wanted.count
                        && (wanted.isEmpty
                            || memcmp(bytes.baseAddress! + member.nameStart, wanted.baseAddress!, wanted.count) == 0)
                }?.value
            }
        }
        guard let found else { return nil }
        if found.kind == .string { return .string(string(found.start, found.end)) }
        return withBytes { bytes in
            try? JSONParser().parse(UnsafeRawBufferPointer(rebasing: bytes[found.start..<found.end]))
        }
    }
}
