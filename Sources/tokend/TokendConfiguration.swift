import Glibc
import JOSE
import Logging
import PostgresStore
import TokenCrypto
import TokenServer
import TokenService
import TokenStore

/// Everything tokend is told at start (DESIGN §7): environment variables, overridden by
/// flags. Every value is checked before anything starts; a bad one stops the daemon with a
/// message that names the variable and the form it accepts.
struct TokendConfiguration: Sendable {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    enum StoreLocation: Sendable {
        case sqlite(path: String)
        /// The fleet store; `password` from TOKEND_STORE_PASSWORD_FILE or the credential
        /// `store-password`, nil when neither exists (peer or trust authentication).
        case postgres(PostgresLocation, password: Secret?, keys: KeyEncryption)
    }

    /// The PostgreSQL store's key-encryption keys.
    struct KeyEncryption: Sendable {
        var current: KeyEncryptionKey
        var previous: KeyEncryptionKey?
    }

    /// A secret read from a file: compared and printed never (its description is redacted).
    struct Secret: Sendable, Equatable, CustomStringConvertible {
        let value: String
        var description: String { "<redacted>" }
    }

    var socketPath = "./run/tokend.sock"
    var adminSocketPath = "./run/tokend-admin.sock"
    var listen: (host: String, port: Int)?
    var store = StoreLocation.sqlite(path: "./var/tokend.db")
    var keysDirectory = "./keys"
    /// How long one PostgreSQL operation may take before it answers 503 (TOKEND_STORE_TIMEOUT).
    var storeTimeout = Duration.seconds(5)
    /// Connections to PostgreSQL (TOKEND_STORE_MAX_CONNECTIONS): concurrent transactions.
    var storeMaxConnections = 16
    /// How long the store keeps events (TOKEND_EVENT_RETENTION): 3 days, so an incident from
    /// a Friday evening can still be read on Monday, while the log stays bounded (at ~116 B
    /// an event, 10 writes/s keep ~300 MB). The journal keeps tokend's log lines longer.
    var eventRetention: Double = 3 * 86400
    /// Whether the follower LISTENs for the fleet's notifications (TOKEND_FLEET_NOTIFY, a
    /// diagnostic): off, it learns of other nodes' changes only from its read every second.
    var fleetNotify = true
    /// Whether ES256/ES384 nonces are computed ahead by the `tokend-nonces` thread
    /// (TOKEND_ECDSA_PRECOMPUTE; TokenCrypto's `ECDSANonces`).
    var ecdsaPrecompute = true
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
            } else if PostgresLocation.isPostgresURL(text) {
                do throws(PostgresLocation.Invalid) {
                    let location = try PostgresLocation(parsing: text)
                    do throws(Invalid) {
                        store = .postgres(
                            location,
                            password: try Self.storePassword(source),
                            keys: try Self.keyEncryptionKeys(source)
                        )
                    } catch {
                        problems.append(error.description)
                    }
                } catch {
                    // Never the value itself: it may hold a password.
                    problems.append("TOKEND_STORE (a postgres:// URL) is invalid: \(error)")
                }
            } else {
                problems.append(
                    "TOKEND_STORE=\(text.prefix(80)) is invalid: expected sqlite:PATH (e.g. sqlite:./var/tokend.db) "
                        + "or postgres://USER@HOST:PORT/DB"
                )
            }
        }
        if value("TOKEND_STORE_PASSWORD") != nil || value("PGPASSWORD") != nil {
            problems.append(
                "TOKEND_STORE_PASSWORD and PGPASSWORD are refused: a password in the environment shows in "
                    + "`systemctl show` and /proc; put it in the file TOKEND_STORE_PASSWORD_FILE names, or in the "
                    + "systemd credential store-password"
            )
        }
        if let s = check(
            "TOKEND_STORE_TIMEOUT",
            "a duration from 1s to 5m, like 5s",
            { DurationText.parse($0).flatMap { (1...300).contains($0) ? $0 : nil } }
        ) {
            storeTimeout = .seconds(s)
        }
        if let n = check(
            "TOKEND_STORE_MAX_CONNECTIONS",
            "a whole number from 2 to 1000",
            { Int($0).flatMap { (2...1000).contains($0) ? $0 : nil } }
        ) {
            storeMaxConnections = n
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
            "TOKEND_MAX_STALENESS",
            "0 (never refuse) or a duration from 2s to 1d, like 30s",
            { DurationText.parse($0).flatMap { $0 == 0 || (2...86_400).contains($0) ? $0 : nil } }
        ) {
            service.maxStaleness = Double(s)
        }
        if let on = check("TOKEND_FLEET_NOTIFY", "1 or 0", { ["1": true, "0": false][$0] }) { fleetNotify = on }
        if let on = check("TOKEND_ECDSA_PRECOMPUTE", "1 or 0", { ["1": true, "0": false][$0] }) {
            ecdsaPrecompute = on
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

    /// The PostgreSQL password: the file TOKEND_STORE_PASSWORD_FILE names, else the systemd
    /// credential `store-password` (`$CREDENTIALS_DIRECTORY/store-password`), else none. One
    /// trailing newline is dropped; an empty file, or one others may read, is refused.
    static func storePassword(_ source: [String: String]) throws(Invalid) -> Secret? {
        guard
            let (file, name) = secretFile(source, variable: "TOKEND_STORE_PASSWORD_FILE", credential: "store-password")
        else { return nil }
        var bytes: [UInt8]
        do {
            bytes = try SecretFile.read(
                file,
                what: "the database password",
                credentialsDirectory: source["CREDENTIALS_DIRECTORY"],
                maximumSize: 4096
            )
        } catch {
            throw Invalid(description: "\(name): \(error)")
        }
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard !bytes.isEmpty, let password = String(validating: bytes, as: UTF8.self) else {
            throw Invalid(description: "\(name): \(file) is empty or not UTF-8 text")
        }
        return Secret(value: password)
    }

    /// The key-encryption keys of the PostgreSQL store: TOKEND_KEY_ENCRYPTION_KEY_FILE or the
    /// credential `kek` (required), and TOKEND_PREVIOUS_KEY_ENCRYPTION_KEY_FILE or the
    /// credential `kek-previous` (optional: opens keys sealed before a rekey).
    static func keyEncryptionKeys(_ source: [String: String]) throws(Invalid) -> KeyEncryption {
        func load(_ variable: String, _ credential: String) throws(Invalid) -> KeyEncryptionKey? {
            guard let (file, name) = secretFile(source, variable: variable, credential: credential) else { return nil }
            do {
                return try KeyEncryptionKey.load(file: file, credentialsDirectory: source["CREDENTIALS_DIRECTORY"])
            } catch {
                throw Invalid(description: "\(name): \(error)")
            }
        }
        guard let current = try load("TOKEND_KEY_ENCRYPTION_KEY_FILE", "kek") else {
            throw Invalid(
                description: "the PostgreSQL store keeps the signing keys in the database, sealed under a "
                    + "key-encryption key: set TOKEND_KEY_ENCRYPTION_KEY_FILE (or give the systemd credential kek); "
                    + "make one with: head -c 32 /dev/urandom > kek && chmod 600 kek"
            )
        }
        return KeyEncryption(
            current: current,
            previous: try load("TOKEND_PREVIOUS_KEY_ENCRYPTION_KEY_FILE", "kek-previous")
        )
    }

    /// The file a secret is read from: the variable's, else the credential's when it exists.
    private static func secretFile(
        _ source: [String: String],
        variable: String,
        credential: String
    ) -> (file: String, name: String)? {
        if let path = source[variable]?.trimmingSpaces, !path.isEmpty { return (path, "\(variable)=\(path)") }
        guard let directory = source["CREDENTIALS_DIRECTORY"], !directory.isEmpty else { return nil }
        let file = directory + "/" + credential
        guard access(file, F_OK) == 0 else { return nil }
        return (file, "the credential \(credential)")
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
