/// The registered claims of a JWT (RFC 7519 §4.1), type-checked, plus the whole claim set.
///
/// Claims come either from a `JSONObject` (`init(json:)`, `init(payload:)`) or from the
/// verifier's scanner, which type-checks the registered claims without building a tree: then
/// `json` is parsed on first use, and the string claims are made from their bytes when read.
/// Both give the same values for the same payload.
public struct JWTClaims: Sendable {
    public let exp: NumericDate?
    public let nbf: NumericDate?
    public let iat: NumericDate?
    let storage: Storage

    enum Storage: Sendable {
        /// Built from a tree: the registered claims as checked at init.
        case tree(TreeClaims)
        /// Scanned by `JSONScanner`: the payload and where each registered claim is in it.
        case scanned(ScannedToken)
    }

    /// A claim set built from a tree, with its registered claims as type-checked at init
    /// (`scope` is split when read). A class, so copying claims copies one reference.
    final class TreeClaims: Sendable {
        let json: JSONObject
        let iss: String?
        let sub: String?
        let jti: String?
        let aud: [String]?
        let scope: JSONValue?

        init(json: JSONObject, iss: String?, sub: String?, jti: String?, aud: [String]?, scope: JSONValue?) {
            self.json = json
            self.iss = iss
            self.sub = sub
            self.jti = jti
            self.aud = aud
            self.scope = scope
        }
    }

    /// Where the registered string claims are in a scanned payload (relative to its start).
    /// `aud` and `scope` are a string's content or an array of strings' whole text.
    struct ScannedRegistered: Sendable {
        var iss: JSONScanner.Value?
        var sub: JSONScanner.Value?
        var jti: JSONScanner.Value?
        var aud: JSONScanner.Value?
        var scope: JSONScanner.Value?
    }

    /// What the verifier's scanner found in a payload it accepted.
    struct Scanned: Sendable {
        var registered = ScannedRegistered()
        var exp: NumericDate?
        var nbf: NumericDate?
        var iat: NumericDate?
    }

    /// The whole claim set.
    public var json: JSONObject {
        switch storage {
        case .tree(let tree): tree.json
        case .scanned(let token): token.payload.object
        }
    }

    public var iss: String? {
        switch storage {
        case .tree(let tree): tree.iss
        case .scanned(let token): token.registered.iss.map { token.payload.string($0.start, $0.end) }
        }
    }

    public var sub: String? {
        switch storage {
        case .tree(let tree): tree.sub
        case .scanned(let token): token.registered.sub.map { token.payload.string($0.start, $0.end) }
        }
    }

    public var jti: String? {
        switch storage {
        case .tree(let tree): tree.jti
        case .scanned(let token): token.registered.jti.map { token.payload.string($0.start, $0.end) }
        }
    }

    /// `aud` as a list whether it was a string or an array of strings.
    public var aud: [String]? {
        switch storage {
        case .tree(let tree): tree.aud
        case .scanned(let token): token.registered.aud.map { JWTClaims.strings(of: $0, in: token.payload) }
        }
    }

    /// `scope` as a list, whether a space-separated string (RFC 8693) or an array.
    /// Type-checked when the claims are made; split only when read.
    public var scope: [String]? {
        switch storage {
        case .tree(let tree):
            guard let value = tree.scope else { return nil }
            return try? JWTClaims.stringList(value, "scope", splitSpaces: true)
        case .scanned(let token):
            guard let value = token.registered.scope else { return nil }
            if value.kind == .string { return JWTClaims.splitScope(token.payload.string(value.start, value.end)) }
            return JWTClaims.strings(of: value, in: token.payload)
        }
    }

    /// `scope` as RFC 7662 answers it: the list joined by single spaces, the same text as
    /// `scope?.joined(separator: " ")`. A scanned string that is already in that form (ASCII,
    /// single spaces, none at either end) is returned as it is, without splitting it.
    public var scopeText: String? {
        if case .scanned(let token) = storage, let value = token.registered.scope, value.kind == .string {
            let text = token.payload.string(value.start, value.end)
            if JWTClaims.isJoinedScope(text) { return text }
        }
        return scope?.joined(separator: " ")
    }

    /// Whether splitting `text` at spaces and joining the pieces with one space gives `text`.
    static func isJoinedScope(_ text: String) -> Bool {
        var previous = UInt8(ascii: " ")  // a leading space is an empty first piece
        for byte in text.utf8 {
            if byte >= 0x80 || (byte == UInt8(ascii: " ") && previous == UInt8(ascii: " ")) { return false }
            previous = byte
        }
        return text.isEmpty || previous != UInt8(ascii: " ")
    }

    /// The value of one claim: the same as `json[name]`, but for claims the verifier
    /// scanned it parses only that member instead of building the whole claim set. For
    /// callers that read a few custom claims (`client_id`, `sid`) on a hot path.
    public func member(_ name: String) -> JSONValue? {
        switch storage {
        case .tree(let tree): tree.json[name]
        case .scanned(let token): token.payload.member(name)
        }
    }

    /// Parses a JWS payload as a claim set: a JSON object with duplicate-free members.
    public init(payload: [UInt8], parser: JSONParser = JSONParser()) throws {
        let value: JSONValue
        do { value = try parser.parse(payload) } catch let error as JSONParser.Error {
            throw JWSParts.jsonError(error, in: "claims")
        }
        guard case .object(let object) = value else {
            throw JOSEError(.claimType, "claims must be a JSON object, got \(value.typeName)")
        }
        try self.init(json: object)
    }

    public init(json: JSONObject) throws {
        // One pass over the members to find the registered ones; then the checks in a fixed
        // order, so the first complaint does not depend on the order of the members.
        var found = [JSONValue?](repeating: nil, count: RegisteredName.allCases.count)
        for (name, value) in json.members {
            if let registered = RegisteredName(name) { found[registered.rawValue] = value }
        }
        func value(_ name: RegisteredName) -> JSONValue? { found[name.rawValue] }
        let iss = try value(.iss).map { try JWTClaims.string($0, "iss") }
        let sub = try value(.sub).map { try JWTClaims.string($0, "sub") }
        let jti = try value(.jti).map { try JWTClaims.string($0, "jti") }
        exp = try value(.exp).map { try JWTClaims.date($0, "exp") }
        nbf = try value(.nbf).map { try JWTClaims.date($0, "nbf") }
        iat = try value(.iat).map { try JWTClaims.date($0, "iat") }
        let aud = try value(.aud).map { try JWTClaims.stringList($0, "aud", splitSpaces: false) }
        let scope = value(.scope)
        if let scope { try JWTClaims.checkStringList(scope, "scope") }
        storage = .tree(TreeClaims(json: json, iss: iss, sub: sub, jti: jti, aud: aud, scope: scope))
    }

    /// Claims the verifier's scanner checked (`JWTClaims.scan`).
    init(scanned: Scanned, in token: ScannedToken) {
        self.storage = .scanned(token)
        self.exp = scanned.exp
        self.nbf = scanned.nbf
        self.iat = scanned.iat
    }

    /// The registered claim names this type checks, recognised by their exact bytes.
    enum RegisteredName: Int, CaseIterable {
        case iss, sub, jti, exp, nbf, iat, aud, scope

        /// Matches a member name's UTF-8 bytes exactly (length included).
        init?(bytes: UnsafeRawBufferPointer) {
            guard bytes.count == 3 || bytes.count == 5 else { return nil }
            var head: UInt64 = 0
            for i in 0..<bytes.count { head |= UInt64(bytes[i]) << (8 * UInt64(i)) }
            self.init(count: bytes.count, head: head)
        }

        /// Matches a name given as its length and `JSONScanner.MemberName.head`.
        @inline(__always)
        init?(count: Int, head: UInt64) {
            switch (count, head) {
            case (3, 0x73_73_69): self = .iss
            case (3, 0x62_75_73): self = .sub
            case (3, 0x69_74_6A): self = .jti
            case (3, 0x70_78_65): self = .exp
            case (3, 0x66_62_6E): self = .nbf
            case (3, 0x74_61_69): self = .iat
            case (3, 0x64_75_61): self = .aud
            case (5, 0x65_70_6F_63_73): self = .scope
            default: return nil
            }
        }

        /// Matches a member name. Only an ASCII name can be a registered one: no other
        /// string is canonically equivalent to these ASCII names.
        init?(_ name: String) {
            var name = name
            guard let match = name.withUTF8({ RegisteredName(bytes: UnsafeRawBufferPointer($0)) }) else { return nil }
            self = match
        }
    }

    /// Names of claims that hold NumericDates.
    public static let timeClaims = ["exp", "nbf", "iat"]

    static func string(_ json: JSONObject, _ name: String) throws -> String? {
        guard let value = json[name] else { return nil }
        return try string(value, name)
    }

    static func string(_ value: JSONValue, _ name: String) throws -> String {
        guard case .string(let s) = value else {
            throw JOSEError(.claimType, "claim \(name) must be a string, got \(value.typeName)")
        }
        return s
    }

    static func date(_ json: JSONObject, _ name: String) throws -> NumericDate? {
        guard let value = json[name] else { return nil }
        return try date(value, name)
    }

    static func date(_ value: JSONValue, _ name: String) throws -> NumericDate {
        guard case .number(let number) = value else {
            throw JOSEError(
                .claimType,
                "claim \(name) must be a NumericDate (a JSON number of seconds), got \(value.typeName)"
            )
        }
        guard let date = NumericDate(seconds: number.doubleValue) else {
            throw JOSEError(.claimType, "claim \(name) = \(number.text.prefix(32)) is outside 1970-01-01 … 9999-12-31")
        }
        return date
    }

    static func stringList(_ json: JSONObject, _ name: String, splitSpaces: Bool) throws -> [String]? {
        guard let value = json[name] else { return nil }
        return try stringList(value, name, splitSpaces: splitSpaces)
    }

    static func stringList(_ value: JSONValue, _ name: String, splitSpaces: Bool) throws -> [String] {
        switch value {
        case .string(let s):
            return splitSpaces ? splitScope(s) : [s]
        case .array(let items):
            return try items.map {
                guard case .string(let s) = $0 else {
                    throw JOSEError(
                        .claimType,
                        "claim \(name) must be a string or an array of strings; it holds a \($0.typeName)"
                    )
                }
                return s
            }
        default:
            throw JOSEError(.claimType, "claim \(name) must be a string or an array of strings, got \(value.typeName)")
        }
    }

    static func checkStringList(_ value: JSONValue, _ name: String) throws {
        switch value {
        case .string: return
        case .array(let items):
            for item in items {
                guard case .string = item else {
                    throw JOSEError(
                        .claimType,
                        "claim \(name) must be a string or an array of strings; it holds a \(item.typeName)"
                    )
                }
            }
        default:
            throw JOSEError(.claimType, "claim \(name) must be a string or an array of strings, got \(value.typeName)")
        }
    }

    /// A space-separated scope as its names: split on the space character (a Character, so
    /// a space that a combining mark extends does not split); ASCII text is split on bytes,
    /// which is the same thing and much faster.
    static func splitScope(_ scope: String) -> [String] {
        if scope.utf8.allSatisfy({ $0 < 0x80 }) {
            return scope.utf8.split(separator: UInt8(ascii: " ")).map { String(Substring($0)) }
        }
        return scope.split(separator: " ").map(String.init)
    }

    /// The strings of a scanned string value or array of strings.
    static func strings(of value: JSONScanner.Value, in document: LazyJSONObject) -> [String] {
        if value.kind == .string { return [document.string(value.start, value.end)] }
        // An array of strings without escapes: each string runs from a quote to the next.
        return document.withBytes { bytes in
            var out: [String] = []
            var i = value.start
            var open: Int?
            while i < value.end {
                if bytes[i] == UInt8(ascii: "\"") {
                    if let start = open {
                        out.append(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
                        open = nil
                    } else {
                        open = i + 1
                    }
                }
                i += 1
            }
            return out
        }
    }

    /// `exp − iat`, when both are present.
    public var lifetime: Double? {
        guard let exp, let iat else { return nil }
        return exp.seconds - iat.seconds
    }
}
