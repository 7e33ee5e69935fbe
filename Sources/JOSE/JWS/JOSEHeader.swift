public import TokenCrypto

/// A JWS protected header, checked against RFC 7515 and RFC 8725.
public struct JOSEHeader: Sendable {
    /// The header exactly as decoded.
    public var json: JSONObject {
        switch backing {
        case .tree(let tree): tree.json
        case .scanned(let token): token.header.object
        }
    }

    private enum Backing: Sendable {
        case tree(TreeHeader)
        /// Checked by the verifier's scanner: `kid`, `typ` and `cty` stay where they are in
        /// the decoded header until read, and the tree is built when `json` is first read.
        case scanned(ScannedToken)
    }

    /// A header built from a tree, with its members as checked at init. A class, so copying
    /// a header copies one reference.
    private final class TreeHeader: Sendable {
        let json: JSONObject
        let kid: String?
        let typ: String?
        let cty: String?
        let embeddedKeyMembers: [String]

        init(json: JSONObject, kid: String?, typ: String?, cty: String?, embeddedKeyMembers: [String]) {
            self.json = json
            self.kid = kid
            self.typ = typ
            self.cty = cty
            self.embeddedKeyMembers = embeddedKeyMembers
        }
    }

    /// Where a scanned header's string members are (relative to the header's first byte).
    struct ScannedFields: Sendable {
        var kid: JSONScanner.Value?
        var typ: JSONScanner.Value?
        var cty: JSONScanner.Value?
    }

    private let backing: Backing
    /// The signing algorithm; `none` and unknown names never get this far.
    public let algorithm: SignatureAlgorithm

    public var kid: String? {
        switch backing {
        case .tree(let tree): tree.kid
        case .scanned(let token): token.headerFields.kid.map { token.header.string($0.start, $0.end) }
        }
    }

    public var typ: String? {
        switch backing {
        case .tree(let tree): tree.typ
        case .scanned(let token): token.headerFields.typ.map { token.header.string($0.start, $0.end) }
        }
    }

    public var cty: String? {
        switch backing {
        case .tree(let tree): tree.cty
        case .scanned(let token): token.headerFields.cty.map { token.header.string($0.start, $0.end) }
        }
    }

    /// Members that carry or point at keys (`jwk`, `jku`, `x5u`, `x5c`, …). They are never
    /// used to find a key; they are listed so a person can see the token tried.
    public var embeddedKeyMembers: [String] {
        switch backing {
        case .tree(let tree): tree.embeddedKeyMembers
        case .scanned: []  // the scanner leaves headers with any of them to the tree
        }
    }

    /// The kid's UTF-8 bytes, for the key lookup of the verifier's hot path: nil without a
    /// kid, and for a tree-built header (use `kid`).
    func withScannedKid<R>(_ body: (UnsafeRawBufferPointer?) -> R) -> R? {
        guard case .scanned(let token) = backing else { return nil }
        guard let kid = token.headerFields.kid else { return body(nil) }
        return token.header.withBytes { body(UnsafeRawBufferPointer(rebasing: $0[kid.start..<kid.end])) }
    }

    /// Key-carrying members RFC 8725 §3.10 warns about; tokend ignores them all.
    public static let keyReferenceMembers = ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"]

    /// Extension names this verifier implements for `crit`: none.
    public static let understoodCritical: Set<String> = []

    /// A header the verifier's scanner checked: `alg` is one of ours and `kid`, `typ` and
    /// `cty` are strings or absent, and nothing else it holds is a member the rules of
    /// `init(json:)` look at (`crit`, `b64`, `zip`, `enc`, key references).
    init(scanned token: ScannedToken, algorithm: SignatureAlgorithm) {
        self.backing = .scanned(token)
        self.algorithm = algorithm
    }

    /// Applies the header rules to a decoded header object.
    public init(json: JSONObject) throws {
        guard let algValue = json["alg"] else { throw JOSEError(.header, "header has no alg") }
        guard case .string(let alg) = algValue else {
            throw JOSEError(.header, "header alg must be a string, got \(algValue.typeName)")
        }
        guard let algorithm = SignatureAlgorithm(jwsName: alg) else {
            if alg.lowercased() == "none" {
                throw JOSEError(
                    .algNone,
                    "alg \"\(JOSEHeader.printable(alg))\" means unsigned; unsigned tokens are never accepted"
                )
            }
            let accepted = SignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
            throw JOSEError(
                .algUnsupported,
                "alg \"\(JOSEHeader.printable(alg))\" is not allowed; accepted: \(accepted)"
            )
        }
        self.algorithm = algorithm
        let kid = try JOSEHeader.optionalString(json, "kid")
        let typ = try JOSEHeader.optionalString(json, "typ")
        let cty = try JOSEHeader.optionalString(json, "cty")

        if let crit = json["crit"] {
            guard case .array(let names) = crit else {
                throw JOSEError(.header, "header crit must be an array of names, got \(crit.typeName)")
            }
            guard !names.isEmpty else {
                throw JOSEError(.header, "header crit must not be an empty list (RFC 7515 §4.1.11)")
            }
            var seen: Set<String> = []
            for name in names {
                guard case .string(let n) = name else { throw JOSEError(.header, "header crit must list strings") }
                guard seen.insert(n).inserted else {
                    throw JOSEError(.header, "header crit lists \"\(JOSEHeader.printable(n))\" twice")
                }
                guard JOSEHeader.understoodCritical.contains(n) else {
                    throw JOSEError(
                        .crit,
                        "header crit lists \"\(JOSEHeader.printable(n))\", an extension this verifier does not understand"
                    )
                }
            }
        }
        if let b64 = json["b64"] {
            guard case .bool(let encoded) = b64 else { throw JOSEError(.header, "header b64 must be a boolean") }
            if !encoded {
                throw JOSEError(.unencodedPayload, "header b64:false (unencoded payload, RFC 7797) is not accepted")
            }
        }
        if json["zip"] != nil {
            throw JOSEError(.header, "header zip is only defined for JWE; a JWS must not carry it")
        }
        if json["enc"] != nil {
            throw JOSEError(.header, "header enc belongs to JWE; this is a JWS")
        }
        let embeddedKeyMembers = JOSEHeader.keyReferenceMembers.filter { json[$0] != nil }
        backing = .tree(
            TreeHeader(json: json, kid: kid, typ: typ, cty: cty, embeddedKeyMembers: embeddedKeyMembers)
        )
    }

    static func optionalString(_ json: JSONObject, _ name: String) throws -> String? {
        guard let value = json[name] else { return nil }
        guard case .string(let s) = value else {
            throw JOSEError(.header, "header \(name) must be a string, got \(value.typeName)")
        }
        return s
    }

    /// A short, printable form of attacker-controlled text for messages.
    static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
        return cleaned.count > 40 ? String(cleaned.prefix(40)) + "…" : cleaned
    }

    /// True when `typ` names an RFC 9068 access token: `at+jwt` or `application/at+jwt`,
    /// compared case-insensitively (RFC 7515 §4.1.9).
    public static func typ(_ typ: String?, matches expected: String) -> Bool {
        guard let typ else { return false }
        func normal(_ s: String) -> String {
            let lower = s.lowercased()
            return lower.hasPrefix("application/") ? String(lower.dropFirst("application/".count)) : lower
        }
        return normal(typ) == normal(expected)
    }
}
