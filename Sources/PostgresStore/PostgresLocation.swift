/// Where the PostgreSQL store is (`TOKEND_STORE=postgres://…`, DESIGN §7, §10): a server on
/// TCP or on a Unix socket, the role, the database and the TLS mode. Never a password: that
/// comes from a file or a systemd credential (`PostgresPassword`), so a URL that carries one is
/// refused rather than used.
///
/// Accepted forms (a subset of libpq's URI syntax, with the same meaning):
/// - `postgres://USER@HOST:PORT/DB` (TCP; PORT defaults to 5432, HOST may be `[IPv6]`),
/// - `postgres://USER@/DB?host=/run/postgresql` (the Unix socket `/run/postgresql/.s.PGSQL.5432`;
///   `port=` picks another socket number),
/// - query parameters `sslmode=disable|require|verify-full` (default `disable` on a Unix socket
///   and `verify-full` over TCP: a token store's traffic is not sent in clear text by default)
///   and `sslrootcert=FILE` (the CA certificates `verify-full` trusts; the system's otherwise),
///   `connect_timeout=SECONDS`, `application_name=NAME`.
///
/// `postgresql://` is the same scheme. Percent-escapes are decoded in the user, host and
/// database names.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    /// How to reach the server.
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file: `<directory>/.s.PGSQL.<port>`.
        case unixSocket(path: String)
    }

    /// libpq's `sslmode` values that tokend supports.
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Clear text.
        case disable
        /// Encrypted, server not authenticated (protects against passive listeners only).
        case require
        /// Encrypted, and the server's certificate must chain to a trusted CA and name the host.
        case verifyFull = "verify-full"
    }

    /// A `TOKEND_STORE` value that is not a PostgreSQL location tokend accepts; the reason never
    /// repeats a password.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    public var endpoint: Endpoint
    public var user: String
    public var database: String
    public var tlsMode: TLSMode
    /// `sslrootcert`: PEM CA certificates for `verify-full`.
    public var rootCertificateFile: String?
    public var connectTimeout: Duration
    public var applicationName: String

    public init(
        endpoint: Endpoint,
        user: String,
        database: String,
        tlsMode: TLSMode? = nil,
        rootCertificateFile: String? = nil,
        connectTimeout: Duration = .seconds(5),
        applicationName: String = "tokend"
    ) {
        self.endpoint = endpoint
        self.user = user
        self.database = database
        if let tlsMode {
            self.tlsMode = tlsMode
        } else if case .tcp = endpoint {
            self.tlsMode = .verifyFull
        } else {
            self.tlsMode = .disable
        }
        self.rootCertificateFile = rootCertificateFile
        self.connectTimeout = connectTimeout
        self.applicationName = applicationName
    }

    /// Whether `text` names a PostgreSQL store at all (then `init(parsing:)` decides if it is a
    /// valid one).
    public static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses a `postgres://` URL; `Invalid` says what is wrong and what is accepted.
    public init(parsing text: String) throws(Invalid) {
        func invalid(_ reason: String) -> Invalid {
            Invalid(
                description: "\(reason); expected postgres://USER@HOST:PORT/DB or "
                    + "postgres://USER@/DB?host=/run/postgresql, with optional sslmode=disable|require|verify-full"
            )
        }
        guard Self.isPostgresURL(text) else { throw invalid("not a postgres:// URL") }
        var rest = text.drop(while: { $0 != ":" }).dropFirst(3)
        var queryText: Substring = ""
        if let question = rest.firstIndex(of: "?") {
            queryText = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        if rest.contains("#") { throw invalid("a fragment (#…) has no meaning here") }
        let authority: Substring
        var databaseText: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            databaseText = rest[rest.index(after: slash)...]
        } else {
            authority = rest
        }
        guard let at = authority.lastIndex(of: "@") else {
            throw invalid("the URL names no role (USER@…)")
        }
        let userInfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]
        if userInfo.contains(":") {
            throw Invalid(
                description: "the URL holds a password, which tokend never takes from the environment or a URL "
                    + "(it would show in `systemctl show` and process listings): remove it and put it in the file "
                    + "TOKEND_STORE_PASSWORD_FILE names, or in the systemd credential store-password"
            )
        }
        guard let user = Self.percentDecoded(userInfo), !user.isEmpty else { throw invalid("the role name is empty") }
        guard let database = Self.percentDecoded(databaseText), !database.isEmpty, !database.contains("/") else {
            throw invalid("the URL names no database (…/DB)")
        }

        var parameters: [String: String] = [:]
        for pair in queryText.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let name = Self.percentDecoded(parts[0]), let value = Self.percentDecoded(parts[1])
            else { throw invalid("the query part \(Self.printable(pair)) is not NAME=VALUE") }
            guard parameters[name] == nil else { throw invalid("the parameter \(Self.printable(name)) is given twice") }
            parameters[name] = value
        }
        let known: Set = ["host", "port", "sslmode", "sslrootcert", "connect_timeout", "application_name"]
        if let unknown = parameters.keys.sorted().first(where: { !known.contains($0) }) {
            if unknown == "password" {
                throw Invalid(
                    description: "the URL holds a password, which tokend never takes from a URL: put it in the "
                        + "file TOKEND_STORE_PASSWORD_FILE names, or in the systemd credential store-password"
                )
            }
            throw invalid(
                "the parameter \(Self.printable(unknown)) is not supported (known: \(known.sorted().joined(separator: ", ")))"
            )
        }

        var port = 5432
        if let portText = parameters["port"] {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw invalid("port=\(Self.printable(portText)) is not a port number")
            }
            port = value
        }
        let endpoint: Endpoint
        if let socketDirectory = parameters["host"] {
            guard hostPort.isEmpty else { throw invalid("give the host either after @ or as host=, not both") }
            guard socketDirectory.hasPrefix("/") else {
                throw invalid("host=\(Self.printable(socketDirectory)) must be the absolute path of a socket directory")
            }
            endpoint = .unixSocket(path: "\(socketDirectory)/.s.PGSQL.\(port)")
        } else {
            guard !hostPort.isEmpty else {
                throw invalid("the URL names no host: give HOST:PORT after @, or host=/socket/directory")
            }
            let host: Substring
            var portPart: Substring?
            if hostPort.hasPrefix("[") {
                guard let close = hostPort.firstIndex(of: "]") else { throw invalid("an IPv6 address lacks its ]") }
                host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
                let after = hostPort[hostPort.index(after: close)...]
                if !after.isEmpty {
                    guard after.hasPrefix(":") else { throw invalid("junk after the IPv6 address") }
                    portPart = after.dropFirst()
                }
            } else if let colon = hostPort.lastIndex(of: ":") {
                host = hostPort[..<colon]
                portPart = hostPort[hostPort.index(after: colon)...]
            } else {
                host = hostPort
            }
            if let portPart {
                guard parameters["port"] == nil else {
                    throw invalid("give the port either after the host or as port=")
                }
                guard let value = Int(portPart), (1...65535).contains(value) else {
                    throw invalid("\(Self.printable(portPart)) is not a port number")
                }
                port = value
            }
            guard let hostName = Self.percentDecoded(host), !hostName.isEmpty else {
                throw invalid("the host is empty")
            }
            endpoint = .tcp(host: hostName, port: port)
        }

        var tlsMode: TLSMode?
        if let mode = parameters["sslmode"] {
            guard let parsed = TLSMode(rawValue: mode) else {
                throw invalid(
                    "sslmode=\(Self.printable(mode)) is not supported (tokend takes disable, require or verify-full: "
                        + "prefer and allow may fall back to clear text, verify-ca does not check the host name)"
                )
            }
            tlsMode = parsed
        }
        var timeout = Duration.seconds(5)
        if let seconds = parameters["connect_timeout"] {
            guard let value = Int(seconds), (1...300).contains(value) else {
                throw invalid("connect_timeout=\(Self.printable(seconds)) must be whole seconds from 1 to 300")
            }
            timeout = .seconds(value)
        }
        if let file = parameters["sslrootcert"], !file.hasPrefix("/") {
            throw invalid("sslrootcert=\(Self.printable(file)) must be an absolute path")
        }
        self.init(
            endpoint: endpoint,
            user: user,
            database: database,
            tlsMode: tlsMode,
            rootCertificateFile: parameters["sslrootcert"],
            connectTimeout: timeout,
            applicationName: parameters["application_name"] ?? "tokend"
        )
        if self.rootCertificateFile != nil, self.tlsMode != .verifyFull {
            throw invalid("sslrootcert is used only with sslmode=verify-full")
        }
    }

    /// The location as a URL without secrets, for logs and messages.
    public var description: String {
        var query: [String] = []
        let server: String
        switch endpoint {
        case .tcp(let host, let port):
            server = (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        case .unixSocket(let path):
            // The URL's form: the socket's directory, and its number when not the default.
            server = ""
            let file = path.split(separator: "/").last.map(String.init) ?? ""
            if file.hasPrefix(".s.PGSQL."), let port = Int(file.dropFirst(".s.PGSQL.".count)) {
                let directory = String(path.dropLast(file.count + 1))
                query.append("host=\(directory.isEmpty ? "/" : directory)")
                if port != 5432 { query.append("port=\(port)") }
            } else {
                query.append("host=\(path)")
            }
        }
        query.append("sslmode=\(tlsMode.rawValue)")
        if let rootCertificateFile { query.append("sslrootcert=\(rootCertificateFile)") }
        return "postgres://\(user)@\(server)/\(database)?" + query.joined(separator: "&")
    }

    /// `%XX` decoded; nil when an escape is malformed, or the result is not UTF-8 or holds a
    /// control character.
    static func percentDecoded<S: StringProtocol>(_ text: S) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self),
            !decoded.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else { return nil }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A piece of the URL quoted for a message: printable ASCII only, at most 60 characters.
    static func printable<S: StringProtocol>(_ text: S) -> String {
        let cleaned = String(
            text.unicodeScalars.prefix(60).map {
                $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?"
            }
        )
        return "'\(cleaned)'"
    }
}
