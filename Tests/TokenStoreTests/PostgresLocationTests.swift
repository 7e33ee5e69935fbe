import PostgresStore
import Testing

/// `TOKEND_STORE=postgres://…`: the forms the README shows parse to what they say; a URL with a
/// password, an unknown TLS mode or a missing part is refused with a reason that never repeats
/// the password.
@Suite("PostgreSQL store URLs")
struct PostgresLocationTests {
    @Test("TCP with a port, default port, IPv6, TLS modes and a CA file")
    func tcp() throws {
        let plain = try PostgresLocation(parsing: "postgres://tokend@db.internal:6543/tokens")
        #expect(plain.endpoint == .tcp(host: "db.internal", port: 6543))
        #expect(plain.user == "tokend")
        #expect(plain.database == "tokens")
        #expect(plain.tlsMode == .verifyFull, "over TCP, TLS with verification unless told otherwise")

        let defaults = try PostgresLocation(parsing: "postgresql://tokend@10.0.0.5/tokens?sslmode=require")
        #expect(defaults.endpoint == .tcp(host: "10.0.0.5", port: 5432))
        #expect(defaults.tlsMode == .require)

        let v6 = try PostgresLocation(parsing: "postgres://tokend@[fd00::5]:5433/tokens?sslmode=disable")
        #expect(v6.endpoint == .tcp(host: "fd00::5", port: 5433))
        #expect(v6.tlsMode == .disable)

        let ca = try PostgresLocation(
            parsing: "postgres://tokend@db/tokens?sslmode=verify-full&sslrootcert=/etc/tokend/ca.pem"
        )
        #expect(ca.rootCertificateFile == "/etc/tokend/ca.pem")
        #expect("\(ca)" == "postgres://tokend@db:5432/tokens?sslmode=verify-full&sslrootcert=/etc/tokend/ca.pem")
    }

    @Test("a Unix socket directory with host=, and port= picking the socket's number")
    func unixSocket() throws {
        let local = try PostgresLocation(parsing: "postgres://tokend@/tokend?host=/run/postgresql")
        #expect(local.endpoint == .unixSocket(path: "/run/postgresql/.s.PGSQL.5432"))
        #expect(local.tlsMode == .disable)
        let other = try PostgresLocation(parsing: "postgres://tok%65nd@/my%20db?host=/tmp/pg&port=5433")
        #expect(other.endpoint == .unixSocket(path: "/tmp/pg/.s.PGSQL.5433"))
        #expect(other.user == "tokend")
        #expect(other.database == "my db")
    }

    @Test("messages show a socket location as it was written: host= the directory, port= when not 5432")
    func unixSocketDescription() throws {
        let local = try PostgresLocation(parsing: "postgres://tokend@/tokend?host=/run/postgresql")
        #expect(local.description == "postgres://tokend@/tokend?host=/run/postgresql&sslmode=disable")
        let other = try PostgresLocation(parsing: "postgres://tokend@/tokend?host=/tmp/pg&port=5433")
        #expect(other.description == "postgres://tokend@/tokend?host=/tmp/pg&port=5433&sslmode=disable")
        #expect(try PostgresLocation(parsing: other.description) == other)
    }

    @Test(
        "a password in the URL is refused, and the reason does not repeat it",
        arguments: [
            "postgres://tokend:hunter2-secret@db/tokens",
            "postgres://tokend:hunter2-secret@/tokens?host=/run/postgresql",
            "postgres://tokend@db/tokens?password=hunter2-secret",
        ]
    )
    func passwordRefused(url: String) {
        let error = #expect(throws: PostgresLocation.Invalid.self) { try PostgresLocation(parsing: url) }
        #expect(error?.description.contains("password") == true)
        #expect(error?.description.contains("hunter2") == false)
        #expect(error?.description.contains("TOKEND_STORE_PASSWORD_FILE") == true)
    }

    @Test(
        "what is not accepted is refused, naming what is",
        arguments: [
            ("postgres://db/tokens", "role"),
            ("postgres://tokend@db", "database"),
            ("postgres://tokend@db/", "database"),
            ("postgres://tokend@/tokens", "no host"),
            ("postgres://tokend@db/tokens?sslmode=prefer", "verify-full"),
            ("postgres://tokend@db/tokens?sslmode=verify-ca", "verify-full"),
            ("postgres://tokend@db:99999/tokens", "port"),
            ("postgres://tokend@db/tokens?host=/run/postgresql", "not both"),
            ("postgres://tokend@/tokens?host=run/postgresql", "absolute"),
            ("postgres://tokend@db/tokens?target_session_attrs=any", "not supported"),
            ("postgres://tokend@db/tokens?sslmode=disable&sslrootcert=/ca.pem", "verify-full"),
            ("postgres://tokend@db/tokens?sslmode=require&sslmode=disable", "twice"),
            ("postgres://to%zzkend@db/tokens", "role"),
        ]
    )
    func refused(url: String, mentions: String) {
        let error = #expect(throws: PostgresLocation.Invalid.self) { try PostgresLocation(parsing: url) }
        #expect(error?.description.contains(mentions) == true, "\(String(describing: error))")
    }
}
