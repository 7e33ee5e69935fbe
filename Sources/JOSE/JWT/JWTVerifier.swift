public import TokenCrypto

/// What a verifier requires of a token beyond a good signature.
public struct ValidationOptions: Sendable {
    /// Clock skew tolerated on exp, nbf and iat, in seconds.
    public var leeway: Double
    /// Exact `iss` required, when set.
    public var issuer: String?
    /// A value `aud` must contain, when set.
    public var audience: String?
    /// Required `typ` (e.g. `at+jwt`; an `application/` prefix and case are ignored).
    public var requiredType: String?
    /// Maximum lifetime, when set.
    public var policy: LifetimePolicy?
    /// Refuse tokens without `exp`.
    public var requireExpiration: Bool
    /// Largest token accepted, in bytes.
    public var maxTokenLength: Int

    public init(
        leeway: Double = 0,
        issuer: String? = nil,
        audience: String? = nil,
        requiredType: String? = nil,
        policy: LifetimePolicy? = nil,
        requireExpiration: Bool = true,
        maxTokenLength: Int = JWSParts.defaultMaxLength
    ) {
        self.leeway = leeway
        self.issuer = issuer
        self.audience = audience
        self.requiredType = requiredType
        self.policy = policy
        self.requireExpiration = requireExpiration
        self.maxTokenLength = maxTokenLength
    }
}

/// A token whose signature, header rules and claims all passed.
public struct VerifiedJWT: Sendable {
    public let header: JOSEHeader
    public let claims: JWTClaims
    public let key: KeySet.Entry
}

/// Verifies JWTs against a preloaded key set, failing at the first broken rule.
/// This is the hot path of introspection; `TokenInspector` runs every check for people.
public struct JWTVerifier: Sendable {
    public var keys: KeySet
    public var options: ValidationOptions

    public init(keys: KeySet, options: ValidationOptions = ValidationOptions()) {
        self.keys = keys
        self.options = options
    }

    /// Verifies `token` at time `now` (seconds since the epoch).
    ///
    /// The hot path (`verifyFast`) checks the token's own bytes in one pass, without building
    /// JSON trees or copying the signing input; whatever it is not certain about goes to
    /// `verifyTree`, so both accept exactly the same tokens and refuse the others with the
    /// same errors.
    public func verify(_ token: String, now: Double) throws -> VerifiedJWT {
        var text = token
        if let verified = try text.withUTF8({ try verifyFast(UnsafeRawBufferPointer($0), now: now) }) {
            return verified
        }
        return try verifyTree(token, now: now)
    }

    /// The reference implementation of `verify`: `CompactJWS`, `KeySet.resolve`, the
    /// signature, `JWTClaims` and the checks, over `JSONValue` trees.
    func verifyTree(_ token: String, now: Double) throws -> VerifiedJWT {
        let jws = try CompactJWS(token, maxLength: options.maxTokenLength)
        let entry = try keys.resolve(jws.header)
        try jws.verifySignature(with: entry.key)
        let claims = try JWTClaims(payload: jws.parts.payload)
        try JWTVerifier.checkTime(
            claims,
            now: now,
            leeway: options.leeway,
            requireExpiration: options.requireExpiration
        )
        if let error = JWTVerifier.checkIdentity(jws.header, claims, options) { throw error }
        if let policy = options.policy, let error = policy.violation(of: claims, now: now, leeway: options.leeway) {
            throw error
        }
        return VerifiedJWT(header: jws.header, claims: claims, key: entry)
    }

    /// exp, nbf and iat against `now` with `leeway` (RFC 7519 §4.1.4–4.1.6).
    public static func checkTime(_ claims: JWTClaims, now: Double, leeway: Double, requireExpiration: Bool) throws {
        for check in timeChecks(
            claims,
            now: now,
            leeway: leeway,
            requireExpiration: requireExpiration,
            describePasses: false
        ) {
            if case .fail(let error) = check.outcome { throw error }
        }
    }

    /// The outcome of each time claim, in the order exp, nbf, iat. Passing checks are listed
    /// (and their text built) only when `describePasses`, keeping the hot path free of
    /// string formatting.
    static func timeChecks(
        _ claims: JWTClaims,
        now: Double,
        leeway: Double,
        requireExpiration: Bool,
        describePasses: Bool
    ) -> [TokenReport.Check] {
        var checks: [TokenReport.Check] = []
        if let exp = claims.exp {
            if now >= exp.seconds + leeway {
                let reason = "expired \(DurationText.span(now - exp.seconds)) ago (\(exp.iso8601))"
                checks.append(.init(name: "exp", outcome: .fail(JOSEError(.expired, reason))))
            } else if describePasses {
                let text =
                    exp.seconds > now
                    ? "expires in \(DurationText.span(exp.seconds - now)) (\(exp.iso8601))"
                    : "expired \(DurationText.span(now - exp.seconds)) ago, within the \(DurationText.describe(leeway)) leeway (\(exp.iso8601))"
                checks.append(.init(name: "exp", outcome: .pass(text)))
            }
        } else if requireExpiration {
            checks.append(.init(name: "exp", outcome: .fail(JOSEError(.missingClaim, "token has no exp claim"))))
        } else if describePasses {
            checks.append(.init(name: "exp", outcome: .warning("no exp: this token never expires")))
        }
        if let nbf = claims.nbf {
            if nbf.seconds > now + leeway {
                let reason = "not valid for another \(DurationText.span(nbf.seconds - now)) (\(nbf.iso8601))"
                checks.append(.init(name: "nbf", outcome: .fail(JOSEError(.notYetValid, reason))))
            } else if describePasses {
                let text =
                    nbf.seconds <= now
                    ? "valid since \(nbf.iso8601)"
                    : "valid in \(DurationText.span(nbf.seconds - now)), within the \(DurationText.describe(leeway)) leeway (\(nbf.iso8601))"
                checks.append(.init(name: "nbf", outcome: .pass(text)))
            }
        }
        if let iat = claims.iat {
            if iat.seconds > now + leeway {
                let reason = "issued \(DurationText.span(iat.seconds - now)) in the future (\(iat.iso8601))"
                checks.append(.init(name: "iat", outcome: .fail(JOSEError(.issuedInFuture, reason))))
            } else if describePasses {
                let text =
                    iat.seconds <= now
                    ? "issued \(DurationText.span(now - iat.seconds)) ago (\(iat.iso8601))"
                    : "issued \(DurationText.span(iat.seconds - now)) in the future, within the \(DurationText.describe(leeway)) leeway (\(iat.iso8601))"
                checks.append(.init(name: "iat", outcome: .pass(text)))
            }
        }
        return checks
    }

    /// iss, aud and typ against the options; the first mismatch.
    static func checkIdentity(_ header: JOSEHeader, _ claims: JWTClaims, _ options: ValidationOptions) -> JOSEError? {
        identityFailures(header, claims, options).first
    }

    static func identityFailures(
        _ header: JOSEHeader?,
        _ claims: JWTClaims,
        _ options: ValidationOptions
    ) -> [JOSEError] {
        var failures: [JOSEError] = []
        if let issuer = options.issuer, claims.iss != issuer {
            failures.append(
                JOSEError(
                    .issuer,
                    claims.iss == nil
                        ? "token has no iss; \"\(issuer)\" is required"
                        : "iss \"\(JOSEHeader.printable(claims.iss!))\" is not the required \"\(issuer)\""
                )
            )
        }
        if let audience = options.audience, !(claims.aud ?? []).contains(audience) {
            failures.append(
                JOSEError(
                    .audience,
                    claims.aud == nil
                        ? "token has no aud; \"\(audience)\" is required"
                        : "aud \(claims.aud!.map { "\"\(JOSEHeader.printable($0))\"" }.joined(separator: ", ")) does not include \"\(audience)\""
                )
            )
        }
        if let type = options.requiredType, let header, !JOSEHeader.typ(header.typ, matches: type) {
            failures.append(
                JOSEError(
                    .type,
                    "typ \(header.typ.map { "\"\(JOSEHeader.printable($0))\"" } ?? "(absent)") is not \"\(type)\""
                )
            )
        }
        return failures
    }
}

/// Signs JWS compact tokens with one key (DESIGN §3 header: alg, kid, typ).
public struct JWSSigner: Sendable {
    public let key: SigningKey
    public let kid: String?

    public init(key: SigningKey, kid: String?) {
        self.key = key
        self.kid = kid
    }

    /// A compact JWS over `payload` with header `{"alg","kid","typ"}` plus `extraHeader`.
    public func sign(
        payload: [UInt8],
        type: String? = "at+jwt",
        extraHeader: JSONObject = JSONObject()
    ) throws -> String {
        var header = JSONObject()
        header["alg"] = .string(key.algorithm.rawValue)
        if let kid { header["kid"] = .string(kid) }
        if let type { header["typ"] = .string(type) }
        for (name, value) in extraHeader where header[name] == nil { header[name] = value }
        let signingInput = Base64URL.encode(JSONValue.object(header).compactBytes) + "." + Base64URL.encode(payload)
        let signature = try key.sign(Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// A JWT over `claims`.
    public func sign(claims: JSONObject, type: String? = "at+jwt") throws -> String {
        try sign(payload: JSONValue.object(claims).compactBytes, type: type)
    }
}
