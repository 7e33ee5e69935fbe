import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import TokenStore

/// Turns a `PostgresLocation` into postgres-nio's configurations, and migrates the database
/// on a connection of its own at start.
enum PostgresConnector {
    /// Session settings every connection starts with: tokend's schema, commits that are
    /// durable before they are acknowledged whatever the server's default, READ COMMITTED for
    /// statements and calls without a BEGIN of their own (`FOR UPDATE` then rechecks a row
    /// another writer changed, where a stricter default would fail it), and server-side bounds
    /// on a statement, a lock wait and an idle transaction, so nothing tokend starts can hold
    /// locks for long.
    static func startupParameters(_ location: PostgresLocation) -> [(String, String)] {
        [
            ("application_name", location.applicationName),
            ("search_path", "tokend"),
            ("synchronous_commit", "on"),
            ("default_transaction_isolation", "read committed"),
            ("statement_timeout", "30s"),
            ("lock_timeout", "10s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ]
    }

    static func clientConfiguration(
        _ location: PostgresLocation,
        password: String?,
        maximumConnections: Int
    ) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch location.endpoint {
        case .tcp(let host, let port):
            configuration = PostgresClient.Configuration(
                host: host,
                port: port,
                username: location.user,
                password: password,
                database: location.database,
                tls: try clientTLS(location)
            )
        case .unixSocket(let path):
            configuration = PostgresClient.Configuration(
                unixSocketPath: path,
                username: location.user,
                password: password,
                database: location.database
            )
        }
        configuration.options.connectTimeout = location.connectTimeout
        configuration.options.additionalStartupParameters = startupParameters(location)
        configuration.options.minimumConnections = 1
        configuration.options.maximumConnections = max(2, maximumConnections)
        // No keep-alive queries: postgres-nio arms a keep-alive timer each time a connection
        // goes back to the pool and cancels it when the next query leases it, which costs two
        // thread wake-ups per query (a refresh's whole write is one). Idle connections above
        // the minimum close after the pool's idle timeout (60 s); the heartbeat uses one every
        // second; and a connection that died in silence is closed by the deadline of the first
        // operation that uses it.
        configuration.options.keepAliveBehavior = nil
        return configuration
    }

    /// TLS for a TCP connection (PostgreSQL does not use TLS on a Unix socket; libpq ignores
    /// sslmode there, and so does tokend).
    private static func tlsConfiguration(_ location: PostgresLocation) throws -> TLSConfiguration? {
        switch location.tlsMode {
        case .disable:
            return nil
        case .require:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            return tls
        case .verifyFull:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            if let file = location.rootCertificateFile {
                guard access(file, R_OK) == 0 else {
                    throw TokenStoreError.unavailable(
                        "cannot read sslrootcert=\(file) (the CA certificates for sslmode=verify-full)"
                    )
                }
                tls.trustRoots = .file(file)
            }
            return tls
        }
    }

    private static func clientTLS(_ location: PostgresLocation) throws -> PostgresClient.Configuration.TLS {
        guard let tls = try tlsConfiguration(location) else { return .disable }
        return .require(tls)
    }

    static func connectionConfiguration(
        _ location: PostgresLocation,
        password: String?
    ) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch location.endpoint {
        case .tcp(let host, let port):
            var tls = PostgresConnection.Configuration.TLS.disable
            if let tlsConfiguration = try tlsConfiguration(location) {
                do {
                    tls = .require(try NIOSSLContext(configuration: tlsConfiguration))
                } catch {
                    throw TokenStoreError.unavailable(
                        "cannot set up TLS for \(location): \(PostgresFailure.describe(error))"
                    )
                }
            }
            configuration = PostgresConnection.Configuration(
                host: host,
                port: port,
                username: location.user,
                password: password,
                database: location.database,
                tls: tls
            )
        case .unixSocket(let path):
            configuration = PostgresConnection.Configuration(
                unixSocketPath: path,
                username: location.user,
                password: password,
                database: location.database
            )
        }
        configuration.options.connectTimeout = .nanoseconds(
            Int64(location.connectTimeout.components.seconds) * 1_000_000_000
        )
        configuration.options.additionalStartupParameters = startupParameters(location)
        return configuration
    }

    /// Why a connection of its own cannot be made now (within 1 s), or nil when one can.
    static func connectionProblem(_ location: PostgresLocation, password: String?) async -> (any Error)? {
        let quiet = Logger(label: "tokend.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        do {
            var configuration = try connectionConfiguration(location, password: password)
            configuration.options.connectTimeout = .seconds(1)
            let connection = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(),
                configuration: configuration,
                id: 0,
                logger: quiet
            )
            try? await connection.close()
            return nil
        } catch {
            return error
        }
    }

    /// Connects once, and brings the schema up to this binary's version in one transaction
    /// under an advisory lock: of several nodes starting at once, the first migrates and the
    /// others wait, then find every version applied. Refuses a database migrated by a newer
    /// tokend, naming the version it found.
    static func migrate(_ location: PostgresLocation, password: String?, logger: Logger) async throws {
        let quiet = Logger(label: "tokend.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(),
                configuration: try connectionConfiguration(location, password: password),
                id: 0,
                logger: quiet
            )
        } catch {
            throw PostgresFailure.mapped(error, operation: "connecting to the token database", location: location)
        }
        defer { Task { try? await connection.close() } }
        do {
            let applied = try await connection.withTransaction(logger: quiet) { connection -> [Int] in
                // Another node's migration may hold the lock longer than the session's
                // lock_timeout allows a wait: this one waits for it.
                try await connection.perform("SET LOCAL lock_timeout = '5min'", logger: quiet)
                try await connection.perform(
                    "SELECT pg_advisory_xact_lock(\(PostgresSchema.migrationLock))",
                    logger: quiet
                )
                try await connection.perform("CREATE SCHEMA IF NOT EXISTS tokend", logger: quiet)
                try await connection.perform(
                    """
                    CREATE TABLE IF NOT EXISTS tokend.schema_migrations (
                        version integer NOT NULL PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """,
                    logger: quiet
                )
                var versions: [Int] = []
                for try await version in try await connection.query(
                    "SELECT version FROM tokend.schema_migrations ORDER BY version",
                    logger: quiet
                ).decode(Int32.self) {
                    versions.append(Int(version))
                }
                if let newest = versions.last, newest > PostgresSchema.latestVersion {
                    throw TokenStoreError.schema(
                        "\(location) has tokend schema version \(newest), newer than this tokend knows "
                            + "(\(PostgresSchema.latestVersion)): it was migrated by a newer tokend; run that version"
                    )
                }
                var done: [Int] = []
                for migration in PostgresSchema.migrations where !versions.contains(migration.version) {
                    for statement in migration.statements {
                        try await connection.perform(PostgresQuery(unsafeSQL: statement), logger: quiet)
                    }
                    try await connection.perform(
                        """
                        INSERT INTO tokend.schema_migrations (version, name)
                        VALUES (\(migration.version), \(migration.name))
                        """,
                        logger: quiet
                    )
                    done.append(migration.version)
                }
                return done
            }
            if !applied.isEmpty {
                logger.notice(
                    "migrated the token database",
                    metadata: [
                        "store": "\(location)", "versions": "\(applied.map(String.init).joined(separator: ","))",
                    ]
                )
            }
        } catch let error as PostgresTransactionError {
            let cause = error.closureError ?? error.beginError ?? error.commitError ?? error
            throw PostgresFailure.mapped(cause, operation: "migrating the token database", location: location)
        } catch {
            throw PostgresFailure.mapped(error, operation: "migrating the token database", location: location)
        }
    }
}
