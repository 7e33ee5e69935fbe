import TokenCrypto

/// Runs every check on a token and keeps each result, so a person can see all that is
/// wrong at once (jwt-inspect, `/admin/tokens/explain`). Verdicts match `JWTVerifier`'s.
public struct TokenInspector: Sendable {
    /// How the lifetime policy is chosen.
    public enum PolicyChoice: Sendable, Equatable {
        case none
        case fixed(LifetimePolicy)
        /// The smallest built-in policy the token fits; a token longer than 30d fails.
        case auto
    }

    public var keys: KeySet
    public var options: ValidationOptions
    public var policy: PolicyChoice

    public init(
        keys: KeySet,
        options: ValidationOptions = ValidationOptions(requireExpiration: false),
        policy: PolicyChoice = .none
    ) {
        self.keys = keys
        self.options = options
        self.policy = policy
    }

    public func inspect(_ token: String, now: Double) -> TokenReport {
        var report = TokenReport(now: now, leeway: options.leeway)
        let parts: JWSParts
        do {
            parts = try JWSParts(compact: token, maxLength: options.maxTokenLength)
        } catch let error as JOSEError {
            report.kind = error.code == .encrypted ? .jwe : error.code == .opaque ? .opaque : .malformed
            report.add("structure", .fail(error))
            if report.kind == .opaque { report.refreshTokenIssuedAt = Self.refreshTokenIssueTime(token, now: now) }
            return report
        } catch {
            report.add("structure", .fail(JOSEError(.segments, "\(error)")))
            return report
        }
        report.kind = .jws
        report.header = parts.header
        report.payload = parts.payload
        report.add("structure", .pass("JWS compact serialization, 3 segments, \(token.utf8.count) bytes"))

        let header = checkHeader(parts, into: &report)
        let claims = checkClaims(parts, into: &report)
        checkSignature(parts, header, into: &report)
        guard let claims else { return report }
        report.lifetime = claims.lifetime
        checkTime(claims, into: &report)
        checkIdentity(header, claims, into: &report)
        checkPolicy(claims, into: &report)
        return report
    }

    /// The issue time a tokend refresh token of 51 characters begins with
    /// (`RefreshTokenText`), when `token` has that form and the time is plausible: from 2020
    /// to a day after `now`. Another opaque token of that length has such a time about once
    /// in a thousand, hence "if it is one" wherever it is shown.
    static func refreshTokenIssueTime(_ token: String, now: Double) -> Double? {
        guard let seconds = RefreshTokenText.issueTime(of: token), seconds >= 1_577_836_800, seconds <= now + 86_400
        else { return nil }
        return seconds
    }

    private func checkHeader(_ parts: JWSParts, into report: inout TokenReport) -> JOSEHeader? {
        do {
            let header = try JOSEHeader(json: parts.header)
            var detail = "alg \(header.algorithm)"
            if let kid = header.kid { detail += ", kid \(JOSEHeader.printable(kid))" }
            if let typ = header.typ { detail += ", typ \(JOSEHeader.printable(typ))" }
            report.add("header", .pass(detail))
            for member in header.embeddedKeyMembers {
                report.add(
                    "header \(member)",
                    .warning("header carries \(member); ignored: keys come only from the preloaded key set")
                )
            }
            return header
        } catch {
            report.add("header", .fail(error as? JOSEError ?? JOSEError(.header, "\(error)")))
            return nil
        }
    }

    private func checkClaims(_ parts: JWSParts, into report: inout TokenReport) -> JWTClaims? {
        do {
            let claims = try JWTClaims(payload: parts.payload)
            report.claims = claims
            report.add("claims", .pass("\(claims.json.count) claim\(claims.json.count == 1 ? "" : "s")"))
            return claims
        } catch {
            let error = error as? JOSEError ?? JOSEError(.json, "\(error)")
            let firstByte = parts.payload.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
            let looksLikeJSON = firstByte == UInt8(ascii: "{") || firstByte == UInt8(ascii: "[")
            if error.code == .json, !looksLikeJSON, let typ = TokenInspector.jwtType(parts.header) {
                // The header says JWT: a payload that is not a claim set is not a decodable token.
                report.add(
                    "claims",
                    .fail(
                        JOSEError(
                            .json,
                            "the header's typ \(JOSEHeader.printable(typ)) declares a JWT, but the payload is not a JSON claim set"
                        )
                    )
                )
            } else if error.code == .json, !looksLikeJSON, String(validating: parts.payload, as: UTF8.self) != nil {
                // A JWS whose payload is not JSON (RFC 8037 A.4): not a JWT, still a JWS.
                report.nonJSONPayload = true
                report.add("claims", .skipped("payload is not JSON, so this JWS is not a JWT; no claims to check"))
            } else {
                report.add("claims", .fail(error))
            }
            return nil
        }
    }

    /// The header's `typ` when it declares a JWT: `JWT` or a `+jwt` type such as `at+jwt`
    /// (RFC 7519 §5.1, RFC 9068), compared without case and with the optional
    /// `application/` prefix (RFC 7515 §4.1.9).
    static func jwtType(_ header: JSONObject) -> String? {
        guard let typ = header["typ"]?.stringValue else { return nil }
        var name = typ.lowercased()
        if name.hasPrefix("application/") { name.removeFirst("application/".count) }
        return name == "jwt" || name.hasSuffix("+jwt") ? typ : nil
    }

    private func checkSignature(_ parts: JWSParts, _ header: JOSEHeader?, into report: inout TokenReport) {
        guard let header else {
            report.add("signature", .skipped("not checked: the header is not acceptable"))
            return
        }
        guard !parts.signature.isEmpty else {
            report.add(
                "signature",
                .fail(JOSEError(.signatureEncoding, "the signature segment is empty: the token is unsigned"))
            )
            return
        }
        guard !keys.isEmpty else {
            report.add(
                "signature",
                .skipped("signature not verified: no key given (--key, --jwks, --keys-dir or --secret-file)")
            )
            return
        }
        do {
            let entry = try keys.resolve(header)
            try CompactJWS(parts: parts).verifySignature(with: entry.key)
            report.verifiedKid = entry.kid ?? ""
            var detail = "verified with \(entry.key.keyDescription) from \(entry.source)"
            if let kid = entry.kid { detail += ", kid \(kid)" }
            if let state = entry.state { detail += " (\(state.rawValue))" }
            if let assumed = entry.assumedAlgorithm { detail += "; key without alg: using the token's \(assumed)" }
            report.add("signature", .pass(detail))
        } catch {
            report.add("signature", .fail(error as? JOSEError ?? JOSEError(.signature, "\(error)")))
        }
    }

    private func checkTime(_ claims: JWTClaims, into report: inout TokenReport) {
        let checks = JWTVerifier.timeChecks(
            claims,
            now: report.now,
            leeway: options.leeway,
            requireExpiration: options.requireExpiration,
            describePasses: true
        )
        report.checks += checks
    }

    private func checkIdentity(_ header: JOSEHeader?, _ claims: JWTClaims, into report: inout TokenReport) {
        let failures = JWTVerifier.identityFailures(header, claims, options)
        let wanted: [(String, JOSEError.Code, String?)] = [
            ("iss", .issuer, options.issuer), ("aud", .audience, options.audience),
            ("typ", .type, options.requiredType),
        ]
        for (name, code, value) in wanted {
            guard let value else { continue }
            if let failure = failures.first(where: { $0.code == code }) {
                report.add(name, .fail(failure))
            } else {
                report.add(name, .pass("matches \"\(value)\""))
            }
        }
    }

    private func checkPolicy(_ claims: JWTClaims, into report: inout TokenReport) {
        let now = report.now
        let leeway = options.leeway
        report.fittingPolicy = claims.lifetime.flatMap { LifetimePolicy.smallestFitting(lifetime: $0) }
        let chosen: LifetimePolicy
        let suffix: String
        // A policy in the options counts as a fixed choice, so verdicts match JWTVerifier's.
        let effective = policy == .none ? options.policy.map { PolicyChoice.fixed($0) } ?? .none : policy
        switch effective {
        case .none:
            return
        case .fixed(let p):
            chosen = p
            suffix = ""
        case .auto:
            guard let fit = report.fittingPolicy else {
                let reason =
                    if let lifetime = claims.lifetime, lifetime >= 0 {
                        "lifetime \(DurationText.describe(lifetime)) is longer than every built-in policy (1h, 24h, 30d)"
                    } else {
                        LifetimePolicy.thirtyDays.violation(of: claims, now: now, leeway: leeway)?.reason
                            ?? "no built-in policy fits"
                    }
                report.add("policy", .fail(JOSEError(.lifetime, reason)))
                return
            }
            chosen = fit
            suffix = " (auto)"
        }
        report.checkedPolicy = chosen
        if let violation = chosen.violation(of: claims, now: now, leeway: leeway) {
            report.add("policy", .fail(violation))
        } else {
            let lifetime = DurationText.describe(claims.lifetime ?? 0)
            report.add("policy", .pass("lifetime \(lifetime) fits the \(chosen.name) policy\(suffix)"))
        }
    }
}

/// Everything learned about one token.
public struct TokenReport: Sendable {
    public enum Kind: String, Sendable {
        case jws = "JWS"
        case jwe = "JWE"
        case opaque = "opaque"
        case malformed = "malformed"
    }

    public enum Outcome: Sendable {
        case pass(String)
        case fail(JOSEError)
        case warning(String)
        case skipped(String)

        public var label: String {
            switch self {
            case .pass: "ok"
            case .fail: "FAIL"
            case .warning: "warn"
            case .skipped: "skip"
            }
        }

        public var detail: String {
            switch self {
            case .pass(let d), .warning(let d), .skipped(let d): d
            case .fail(let e): e.reason
            }
        }
    }

    public struct Check: Sendable {
        public let name: String
        public let outcome: Outcome
    }

    public let now: Double
    public let leeway: Double
    public var kind: Kind = .malformed
    public var header: JSONObject?
    public var payload: [UInt8]?
    public var claims: JWTClaims?
    public var nonJSONPayload = false
    public var checks: [Check] = []
    /// The kid of the key that verified the signature ("" for a key without one).
    public var verifiedKid: String?
    public var lifetime: Double?
    public var fittingPolicy: LifetimePolicy?
    public var checkedPolicy: LifetimePolicy?
    /// For an opaque token shaped like a tokend refresh token (schema v5 on): the issue time
    /// it begins with.
    public var refreshTokenIssuedAt: Double?

    init(now: Double, leeway: Double) {
        self.now = now
        self.leeway = leeway
    }

    mutating func add(_ name: String, _ outcome: Outcome) { checks.append(Check(name: name, outcome: outcome)) }

    public var failures: [JOSEError] {
        checks.compactMap {
            if case .fail(let e) = $0.outcome { return e }
            return nil
        }
    }

    /// The failure that decides the exit code: the most severe category, first of its kind.
    public var decisive: JOSEError? {
        var best: JOSEError?
        for failure in failures where best == nil || best!.category < failure.category { best = failure }
        return best
    }

    /// DESIGN §8: 0 all pass, 1 time, 2 policy, 3 signature, 4 not decodable.
    public var exitCode: Int32 { Int32(decisive?.category.rawValue ?? 0) }

    /// True only when a key verified the signature.
    public var signatureVerified: Bool { verifiedKid != nil }

    /// One line that says what the token is worth and, on failure, the rule that failed.
    public var verdict: String {
        if let decisive {
            let more = failures.count > 1 ? " (+\(failures.count - 1) more)" : ""
            return "REJECTED [\(decisive.code.name)]: \(decisive.reason)\(more)"
        }
        if signatureVerified { return "VALID: signature verified and every check passed" }
        return
            "SIGNATURE NOT VERIFIED: every other check passed; give --key, --jwks, --keys-dir or --secret-file to verify it"
    }
}
