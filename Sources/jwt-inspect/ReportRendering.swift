import JOSE
import TokenCrypto

/// Turns a TokenReport into text for people or one JSON object for machines.
struct ReportRendering {
    /// Claims shown as times: the registered ones and OpenID Connect's auth_time.
    static let timeClaims = ["iat", "nbf", "exp", "auth_time"]

    let report: TokenReport
    let token: String
    let colour: Bool

    // MARK: People

    func text() -> String {
        var out: [String] = []
        out.append(bold(summaryLine()))
        if report.kind == .jwe, let header = jweHeader() {
            out.append("")
            out.append(bold("Protected header"))
            out.append(indent(JSONValue.object(header).prettyText()))
        }
        if let header = report.header {
            out.append("")
            out.append(bold("Header"))
            out.append(indent(JSONValue.object(header).prettyText()))
        }
        if let claims = report.claims {
            out.append("")
            out.append(bold("Claims"))
            out.append(indent(JSONValue.object(claims.json).prettyText()))
        } else if let payload = report.payload {
            out.append("")
            if report.nonJSONPayload {
                out.append(bold("Payload") + " (not JSON, \(payload.count) bytes)")
                out.append(indent(printable(payload)))
            } else {
                out.append(bold("Payload") + " (\(payload.count) bytes, not a valid claim set)")
                out.append(indent(printable(payload)))
            }
        }
        let times = timeLines()
        if !times.isEmpty {
            out.append("")
            out.append(bold("Times") + " (UTC, now \(nowDate))")
            out += times
        }
        if let claims = report.claims {
            out.append("")
            out.append(bold("Lifetime") + "  " + lifetimeLine(claims))
        }
        out.append("")
        out.append(bold("Checks"))
        let width = report.checks.map(\.name.count).max() ?? 0
        for check in report.checks {
            let label = check.outcome.label.padding(to: 4)
            out.append(
                "  \(paint(label, for: check.outcome))  \(check.name.padding(to: width))  \(check.outcome.detail)"
            )
        }
        out.append("")
        out.append(paintVerdict(report.verdict))
        return out.joined(separator: "\n")
    }

    private var nowDate: String { NumericDate(seconds: report.now)?.iso8601 ?? String(report.now) }

    private func summaryLine() -> String {
        switch report.kind {
        case .jws:
            var parts = ["JWS"]
            if let alg = report.header?["alg"]?.stringValue { parts.append(alg) }
            if let typ = report.header?["typ"]?.stringValue { parts.append("typ \(typ)") }
            parts.append(report.header?["kid"]?.stringValue.map { "kid \($0)" } ?? "no kid")
            parts.append(report.signatureVerified ? "signature verified" : "signature not verified")
            return parts.joined(separator: " · ")
        case .jwe: return "JWE (encrypted token)"
        case .opaque: return "Opaque token (not a JWT)"
        case .malformed: return "Not a decodable token"
        }
    }

    private func jweHeader() -> JSONObject? {
        guard let first = token.split(separator: ".").first, let bytes = try? Base64URL.decode(first) else {
            return nil
        }
        return (try? JSONParser().parse(bytes))?.objectValue
    }

    /// A time in `--json`: its NumericDate value, in UTC, and relative to now.
    private func timeJSON(_ date: NumericDate) -> JSONValue {
        .object(
            JSONObject([
                ("value", .number(JSONNumber(date.seconds)!)), ("utc", .string(date.iso8601)),
                ("relative", .string(DurationText.relative(date.seconds, now: report.now))),
            ])
        )
    }

    private func timeLines() -> [String] {
        if let issued = report.refreshTokenIssuedAt, let date = NumericDate(seconds: issued) {
            return [
                "  issued    \(date.iso8601)  \(DurationText.relative(issued, now: report.now)), if it is a tokend "
                    + "refresh token (its first 8 characters)"
            ]
        }
        guard let claims = report.claims else { return [] }
        var lines: [String] = []
        for name in ReportRendering.timeClaims {
            guard let number = claims.json[name]?.numberValue, let date = NumericDate(seconds: number.doubleValue)
            else {
                continue
            }
            let delta = date.seconds - report.now
            let phrase: String
            switch name {
            case "exp":
                phrase =
                    delta > 0
                    ? "expires \(DurationText.relative(date.seconds, now: report.now))"
                    : "expired \(DurationText.relative(date.seconds, now: report.now))"
            case "nbf":
                phrase =
                    delta > 0
                    ? "valid \(DurationText.relative(date.seconds, now: report.now))"
                    : "valid since \(DurationText.relative(date.seconds, now: report.now))"
            default: phrase = DurationText.relative(date.seconds, now: report.now)
            }
            lines.append("  \(name.padding(to: 9)) \(date.iso8601)  \(phrase)")
        }
        return lines
    }

    private func lifetimeLine(_ claims: JWTClaims) -> String {
        guard let lifetime = claims.lifetime else {
            return claims.exp == nil ? "unbounded (no exp)" : "unknown (no iat)"
        }
        if lifetime < 0 { return "none: exp is \(DurationText.describe(-lifetime)) before iat" }
        var line = "\(DurationText.describe(lifetime)) (exp − iat = \(JSONNumber(lifetime)?.text ?? "?") s)"
        if let fit = report.fittingPolicy {
            line += ", fits built-in policy \(fit.name)"
        } else {
            line += ", longer than every built-in policy (1h, 24h, 30d)"
        }
        return line
    }

    private func printable(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self),
            !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" })
        {
            return text
        }
        return "base64url: " + Base64URL.encode(bytes.prefix(512)) + (bytes.count > 512 ? "…" : "")
    }

    private func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    }

    // MARK: Colour

    private func bold(_ text: String) -> String { colour ? "\u{1B}[1m\(text)\u{1B}[0m" : text }

    private func paint(_ text: String, for outcome: TokenReport.Outcome) -> String {
        guard colour else { return text }
        let code: String
        switch outcome {
        case .pass: code = "32"
        case .fail: code = "1;31"
        case .warning, .skipped: code = "33"
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    private func paintVerdict(_ text: String) -> String {
        guard colour else { return text }
        let code = report.exitCode != 0 ? "1;31" : report.signatureVerified ? "1;32" : "1;33"
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    // MARK: Machines

    func json() -> String {
        var root = JSONObject()
        root["kind"] = .string(report.kind.rawValue)
        root["exit_code"] = .number(JSONNumber(Int(report.exitCode)))
        root["verdict"] = .string(report.verdict)
        if let decisive = report.decisive { root["failed_rule"] = .string(decisive.code.name) }
        root["signature"] = .string(
            report.signatureVerified
                ? "verified" : report.failures.contains { $0.category == .signature } ? "invalid" : "not_verified"
        )
        if let header = report.header { root["header"] = .object(header) }
        if report.kind == .jwe, let header = jweHeader() { root["header"] = .object(header) }
        if let claims = report.claims {
            root["claims"] = .object(claims.json)
            var times = JSONObject()
            for name in ReportRendering.timeClaims {
                guard let number = claims.json[name]?.numberValue, let date = NumericDate(seconds: number.doubleValue)
                else { continue }
                times[name] = timeJSON(date)
            }
            root["times"] = .object(times)
            if let lifetime = claims.lifetime {
                root["lifetime_seconds"] = .number(JSONNumber(lifetime)!)
                root["lifetime"] = .string(DurationText.describe(lifetime))
            }
            root["fits_policy"] = report.fittingPolicy.map { .string($0.name) } ?? .null
        } else if let payload = report.payload {
            root["payload"] = .string(printable(payload))
        }
        if let date = report.refreshTokenIssuedAt.flatMap(NumericDate.init(seconds:)) {
            // Only "if it is one": another opaque token may have the same shape.
            root["refresh_token_issued_at"] = timeJSON(date)
        }
        if let policy = report.checkedPolicy {
            root["policy"] = .object(
                JSONObject([("name", .string(policy.name)), ("seconds", .number(JSONNumber(policy.seconds)))])
            )
        }
        root["checks"] = .array(
            report.checks.map { check in
                var object = JSONObject([
                    ("name", .string(check.name)), ("status", .string(check.outcome.label.lowercased())),
                    ("detail", .string(check.outcome.detail)),
                ])
                if case .fail(let error) = check.outcome { object["rule"] = .string(error.code.name) }
                return .object(object)
            }
        )
        root["now"] = .string(nowDate)
        return JSONValue.object(root).prettyText()
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
