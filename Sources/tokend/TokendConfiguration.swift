import JOSE
import Logging
import TokenCrypto
import TokenServer
import TokenService

/// Everything tokend is told at start (DESIGN §7): environment variables, overridden by
/// flags. Every value is checked before anything starts; a bad one stops the daemon with a
/// message that names the variable and the form it accepts.
struct TokendConfiguration: Sendable {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    enum StoreLocation: Sendable, Equatable {
        case sqlite(path: String)
    }

    var socketPath = "./run/tokend.sock"
    var adminSocketPath = "./run/tokend-admin.sock"
    var listen: (host: String, port: Int)?
    var store = StoreLocation.sqlite(path: "./var/tokend.db")
    var keysDirectory = "./keys"
    /// How long the store keeps events (TOKEND_EVENT_RETENTION): 3 days, so an incident from
    /// a Friday evening can still be read on Monday, while the log stays bounded (at ~116 B
    /// an event, 10 writes/s keep ~300 MB). The journal keeps tokend's log lines longer.
    var eventRetention: Double = 3 * 86400
    var logLevel = Logger.Level.info
    var service = ServiceConfiguration()
    var accounts = AccountConfiguration()
    var trustedProxies = TrustedProxies.none
    var hashWorkers: Int?
    var hashQueue = 64
    /// A request head must be whole this long after its first byte (after the accept for a
    /// connection's first request), its body this long after the head.
    var headerTimeout = Duration.seconds(10)
    var bodyTimeout = Duration.seconds(10)
    /// Connections each API listener (the API socket, the TCP listener) may have open.
    var maxConnections = 1024
    /// Connections the admin socket may have open: its own room, which API clients never take.
    var adminMaxConnections = 64

    /// Reads `source` (variable → value): the environment with flags laid over it.
    init(_ source: [String: String]) throws {
        var problems: [String] = []
        func value(_ name: String) -> String? {
            guard let raw = source[name] else { return nil }
            let trimmed = raw.trimmingSpaces
            return trimmed.isEmpty ? nil : trimmed
        }
        func check<T>(_ name: String, _ accepted: String, _ parse: (String) -> T?) -> T? {
            guard let text = value(name) else { return nil }
            guard let parsed = parse(text) else {
                problems.append("\(name)=\(text.prefix(80)) is invalid: expected \(accepted)")
                return nil
            }
            return parsed
        }
        let duration = "seconds or a duration like 30s, 5m, 1h, 7d"
        let policy = "1h, 24h, 30d or a duration like 15m, 2h, 7d"

        if let path = check("TOKEND_SOCKET", "a file path", { $0.hasPrefix("@") ? nil : $0 }) { socketPath = path }
        if let path = check("TOKEND_ADMIN_SOCKET", "a file path", { $0.hasPrefix("@") ? nil : $0 }) {
            adminSocketPath = path
        }
        if let text = value("TOKEND_LISTEN"), text.lowercased() != "off" {
            if let parsed = TokendConfiguration.hostPort(text) {
                listen = parsed
            } else {
                problems.append(
                    "TOKEND_LISTEN=\(text.prefix(80)) is invalid: expected HOST:PORT such as 127.0.0.1:8080, or off"
                )
            }
        }
        if let text = value("TOKEND_STORE") {
            if text.hasPrefix("sqlite:"), text.count > "sqlite:".count {
                store = .sqlite(path: String(text.dropFirst("sqlite:".count)))
            } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
                problems.append("TOKEND_STORE: the PostgreSQL store is not part of this build yet; use sqlite:PATH")
            } else {
                problems.append(
                    "TOKEND_STORE=\(text.prefix(80)) is invalid: expected sqlite:PATH (e.g. sqlite:./var/tokend.db)"
                )
            }
        }
        if let dir = value("TOKEND_KEYS_DIR") { keysDirectory = dir }
        if let alg = check(
            "TOKEND_SIGNING_ALG",
            SignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", "),
            { SignatureAlgorithm(jwsName: $0) }
        ) {
            service.signingAlgorithm = alg
        }
        if let issuer = value("TOKEND_ISSUER") { service.issuer = issuer }
        service.audience = value("TOKEND_AUDIENCE")
        if let p = check("TOKEND_ACCESS_POLICY", policy, LifetimePolicy.init(parsing:)) { service.accessPolicy = p }
        if let p = check("TOKEND_REFRESH_POLICY", policy, LifetimePolicy.init(parsing:)) { service.refreshPolicy = p }
        if let s = check("TOKEND_REFRESH_GRACE", duration, DurationText.parse) { service.refreshGrace = Double(s) }
        if let text = value("TOKEND_KEY_ROTATION"), text.lowercased() != "off" {
            if let s = DurationText.parse(text), s >= 3600 {
                service.keyRotation = Double(s)
            } else {
                problems.append(
                    "TOKEND_KEY_ROTATION=\(text.prefix(80)) is invalid: expected off or a duration of at least 1h, like 30d"
                )
            }
        }
        if let s = check("TOKEND_JWKS_MAX_AGE", duration, DurationText.parse) { service.jwksMaxAge = Double(s) }
        if let s = check(
            "TOKEND_EVENT_RETENTION",
            "a duration of at least 1h, like 3d or 12h",
            { DurationText.parse($0).flatMap { $0 >= 3600 ? $0 : nil } }
        ) {
            eventRetention = Double(s)
        }
        if let s = check(
            "TOKEND_LEEWAY",
            "\(duration) (at most 5m)",
            { DurationText.parse($0).flatMap { $0 <= 300 ? $0 : nil } }
        ) {
            service.leeway = Double(s)
        }
        if let level = check(
            "TOKEND_LOG_LEVEL",
            "trace, debug, info, notice, warning, error or critical",
            { Logger.Level(rawValue: $0.lowercased()) }
        ) {
            logLevel = level
        }
        let count = "a whole number ≥ 0 (0 turns the limit off)"
        let milliseconds = "a whole number of milliseconds ≥ 1000"
        func natural(_ text: String) -> Int? { Int(text).flatMap { $0 >= 0 ? $0 : nil } }
        func window(_ text: String) -> Double? { Int(text).flatMap { $0 >= 1000 ? Double($0) / 1000 : nil } }
        if let n = check("USER_SIGNUP_RATE_LIMIT_EMAIL", count, natural) { accounts.signupPerEmail.limit = n }
        if let w = check("USER_SIGNUP_RATE_LIMIT_EMAIL_WINDOW_MS", milliseconds, window) {
            accounts.signupPerEmail.window = w
        }
        if let n = check("USER_SIGNUP_RATE_LIMIT_IP", count, natural) { accounts.signupPerIP.limit = n }
        if let w = check("USER_SIGNUP_RATE_LIMIT_IP_WINDOW_MS", milliseconds, window) {
            accounts.signupPerIP.window = w
        }
        if let n = check("TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT", count, natural) {
            accounts.signinPerAccount.limit = n
        }
        if let n = check("TOKEND_SIGNIN_RATE_LIMIT_IP", count, natural) { accounts.signinPerIP.limit = n }
        if let s = check(
            "TOKEND_SIGNIN_RATE_LIMIT_WINDOW",
            "a duration of at least 1s, like 15m",
            { DurationText.parse($0).flatMap { $0 >= 1 ? $0 : nil } }
        ) {
            accounts.signinPerAccount.window = Double(s)
            accounts.signinPerIP.window = Double(s)
        }
        if let text = value("TOKEND_TRUSTED_PROXIES") {
            do throws(TrustedProxies.Invalid) {
                trustedProxies = try TrustedProxies(parsing: text)
            } catch {
                problems.append("TOKEND_TRUSTED_PROXIES=\(text.prefix(120)) is invalid: \(error)")
            }
        }
        accounts.createScope = value("API_USER_CREATE_SCOPE")
        hashWorkers = check(
            "TOKEND_HASH_WORKERS",
            "a whole number from 1 to 256",
            { Int($0).flatMap { (1...256).contains($0) ? $0 : nil } }
        )
        if let n = check(
            "TOKEND_HASH_QUEUE",
            "a whole number from 1 to 65536",
            { Int($0).flatMap { (1...65536).contains($0) ? $0 : nil } }
        ) {
            hashQueue = n
        }
        let deadline = "a duration from 1s to 1h, like 10s or 1m"
        func deadlineSeconds(_ text: String) -> Int64? {
            DurationText.parse(text).flatMap { (1...3600).contains($0) ? $0 : nil }
        }
        if let s = check("TOKEND_HEADER_TIMEOUT", deadline, deadlineSeconds) { headerTimeout = .seconds(s) }
        if let s = check("TOKEND_BODY_TIMEOUT", deadline, deadlineSeconds) { bodyTimeout = .seconds(s) }
        let connections = "a whole number from 1 to 1048576"
        func connectionCount(_ text: String) -> Int? { Int(text).flatMap { (1...1_048_576).contains($0) ? $0 : nil } }
        if let n = check("TOKEND_MAX_CONNECTIONS", connections, connectionCount) { maxConnections = n }
        if let n = check("TOKEND_ADMIN_MAX_CONNECTIONS", connections, connectionCount) { adminMaxConnections = n }
        if socketPath == adminSocketPath {
            problems.append(
                "TOKEND_SOCKET and TOKEND_ADMIN_SOCKET must differ: the admin routes live only on the admin socket"
            )
        }
        service.maxTokenLifetime = max(Double(LifetimePolicy.thirtyDays.seconds), Double(service.accessPolicy.seconds))
        guard problems.isEmpty else { throw Invalid(description: problems.joined(separator: "\n")) }
    }

    static func hostPort(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        return (host, port)
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
