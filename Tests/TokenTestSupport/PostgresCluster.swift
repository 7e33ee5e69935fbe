import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster (issue 11's tests): `initdb` in a fresh temporary directory,
/// the server listening on a Unix socket in that directory only (no TCP port), stopped by its
/// postmaster's PID, never by name. PostgreSQL refuses to run as root: when the tests run as
/// root, the directory is given to the `postgres` user Debian's package creates and the server
/// commands run through `runuser -u postgres --`. `make test-deps` installs `postgresql`.
public final class PostgresCluster: Sendable {
    /// The database superuser the cluster is created with (trust authentication on the socket).
    public static let user = "tokend"

    public let directory: TemporaryDirectory
    /// Where the server's socket is (`.s.PGSQL.5432`): the `host` of a connection.
    public var socketDirectory: String { directory.path }
    public var dataDirectory: String { directory.file("data") }
    /// The postmaster's PID (a new one after `restart()` or `startServer()`).
    public var pid: Int32 { currentPID.withLock { $0 } }
    private let currentPID: Mutex<Int32>
    let binaries: String
    /// The `postgres` user's uid and gid when the tests run as root (the server runs as it).
    private let owner: (uid: uid_t, gid: gid_t)?

    /// `postgres://tokend@/postgres?host=<socket directory>`: the form `TOKEND_STORE` takes.
    public var url: String { url(database: "postgres") }

    /// The `TOKEND_STORE` URL of `database` in this cluster.
    public func url(database: String) -> String {
        "postgres://\(Self.user)@/\(database)?host=\(socketDirectory)" + (tcpPort.map { "&port=\($0)" } ?? "")
    }

    /// The TCP port of a cluster started with `tls: true` (TLS only, on loopback) or
    /// `plainTCP` (clear text, on that address), else nil.
    public var tcpPort: Int? { tcp?.port }
    /// Where the server listens on TCP, and how.
    struct TCPListening: Sendable {
        let address: String
        let port: Int
        let tls: Bool
    }
    private let tcp: TCPListening?
    /// The CA certificate (PEM) a `tls: true` cluster's server certificate (for `localhost`)
    /// chains to.
    public var caFile: String { directory.file("tls/ca.pem") }
    /// The port of the Unix socket and of TCP.
    var port: Int { tcpPort ?? 5432 }

    private init(
        directory: TemporaryDirectory,
        pid: Int32,
        binaries: String,
        owner: (uid: uid_t, gid: gid_t)?,
        tcp: TCPListening?
    ) {
        self.tcp = tcp
        self.directory = directory
        self.currentPID = Mutex(pid)
        self.binaries = binaries
        self.owner = owner
    }

    /// Runs a server tool (`initdb`, `pg_ctl`) from `binaries`, as `postgres` when root.
    private static func server(
        _ tool: String,
        _ arguments: [String],
        binaries: String,
        owner: (uid: uid_t, gid: gid_t)?,
        in directory: String
    ) async throws -> CommandResult {
        let executable = "\(binaries)/\(tool)"
        guard owner != nil else { return try await run(executable, arguments, in: directory) }
        let runuser = ["/usr/sbin/runuser", "/sbin/runuser"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let runuser else { throw HarnessError("runuser not found") }
        return try await run(runuser, ["-u", "postgres", "--", executable] + arguments, in: directory)
    }

    /// The arguments of `pg_ctl start`: socket in the cluster's directory; no TCP, or with
    /// `tcp` on its address, with TLS (the certificates in `tls/`) when it says so.
    private static func startArguments(
        data: String,
        log: String,
        socketDirectory: String,
        tcp: TCPListening?
    ) -> [String] {
        var options = "-k \(socketDirectory) -c unix_socket_permissions=0700 -c max_connections=400"
        if let tcp {
            options += " -c listen_addresses=\(tcp.address) -c port=\(tcp.port)"
            if tcp.tls {
                options += " -c ssl=on -c ssl_cert_file=\(socketDirectory)/tls/server.crt"
                options += " -c ssl_key_file=\(socketDirectory)/tls/server.key"
            }
        } else {
            options += " -c listen_addresses=''"
        }
        return ["-D", data, "-l", log, "-w", "-t", "60", "-o", options]
    }

    /// A CA and a server certificate for `localhost` (P-256, one day), made with `openssl`, and
    /// `pg_hba.conf` refusing TCP without TLS.
    private static func makeTLS(in directory: TemporaryDirectory, owner: (uid: uid_t, gid: gid_t)?) async throws {
        let tls = directory.file("tls")
        guard mkdir(tls, 0o700) == 0 else { throw HarnessError("mkdir \(tls): \(String(cString: strerror(errno)))") }
        let openssl = "/usr/bin/openssl"
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try "subjectAltName=DNS:localhost\n".write(toFile: "\(tls)/ext.cnf", atomically: true, encoding: .utf8)
        for arguments in [
            ["req", "-x509"] + curve + [
                "-days", "1", "-subj", "/CN=tokend test CA", "-keyout", "ca.key", "-out", "ca.pem",
            ],
            ["req"] + curve + ["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"],
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days",
                "1",
                "-extfile", "ext.cnf", "-out", "server.crt",
            ],
        ] {
            let made = try await run(openssl, arguments, in: tls, currentDirectory: tls)
            guard made.succeeded else { throw HarnessError("openssl \(arguments.prefix(2)) failed: \(made)") }
        }
        chmod("\(tls)/server.key", 0o600)
        if let owner {
            for file in ["", "/server.key", "/server.crt", "/ca.pem"] { chown(tls + file, owner.uid, owner.gid) }
        }
    }

    /// The postmaster's PID from `postmaster.pid`.
    private static func readPID(data: String) throws -> Int32 {
        let lines = try String(contentsOfFile: "\(data)/postmaster.pid", encoding: .utf8).split(separator: "\n")
        guard let first = lines.first, let pid = Int32(first), pid > 0 else {
            throw HarnessError("no PID in \(data)/postmaster.pid")
        }
        return pid
    }

    /// `pg_ctl restart -m fast`: every session is ended, the server comes back with a new PID.
    public func restart() async throws {
        try await serverControl(["-m", "fast", "restart"])
    }

    /// Runs `pg_ctl … COMMAND` with the cluster's start arguments, then reads the new PID.
    private func serverControl(_ command: [String]) async throws {
        let result = try await Self.server(
            "pg_ctl",
            Self.startArguments(
                data: dataDirectory,
                log: directory.file("server.log"),
                socketDirectory: socketDirectory,
                tcp: tcp
            )
                + command,
            binaries: binaries,
            owner: owner,
            in: directory.path
        )
        guard result.succeeded else { throw HarnessError("pg_ctl \(command.joined(separator: " ")) failed: \(result)") }
        let pid = try Self.readPID(data: dataDirectory)
        currentPID.withLock { $0 = pid }
    }

    /// Stops the server (SIGINT, a fast shutdown, to its PID) and keeps the directory, so that
    /// `startServer()` can bring the same cluster back.
    public func stopServer(timeout: Duration = .seconds(30)) async throws {
        let pid = self.pid
        guard kill(pid, SIGINT) == 0 else {
            throw HarnessError("kill -INT \(pid): \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now + timeout
        while isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard !isRunning else { throw HarnessError("PostgreSQL (PID \(pid)) did not stop within \(timeout)") }
    }

    /// Starts the stopped server again.
    public func startServer() async throws {
        try await serverControl(["start"])
    }

    /// Creates a database: its `TOKEND_STORE` URL.
    public func createDatabase(_ name: String) async throws -> String {
        let created = try await psql("CREATE DATABASE \(name)")
        guard created.succeeded else { throw HarnessError("CREATE DATABASE \(name) failed: \(created)") }
        return url(database: name)
    }

    /// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `pg_ctl` in it.
    public static func binaryDirectory() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/pg_ctl") {
            return "\(root)/\(version)/bin"
        }
        throw HarnessError("PostgreSQL is not installed (no \(root)/*/bin/pg_ctl); `make test-deps` installs it")
    }

    /// Creates and starts a cluster; throws with the server's log when it does not start.
    /// With `tls`, it also listens on a loopback TCP port (`tcpPort`), TLS only, with a server
    /// certificate for `localhost` that `caFile` signed. With `plainTCP`, it listens on a TCP
    /// port (`tcpPort`) of `address` (which must exist already) in clear text, and trusts
    /// connections from the network `clients` (CIDR): for a test's own private network only.
    public static func start(
        tls: Bool = false,
        plainTCP: (address: String, clients: String)? = nil
    ) async throws -> PostgresCluster {
        precondition(!(tls && plainTCP != nil), "a test cluster listens on TCP with TLS or in clear text, not both")
        let binaries = try binaryDirectory()
        let directory = try TemporaryDirectory(prefix: "tokend-pg")
        var owner: (uid: uid_t, gid: gid_t)?
        if geteuid() == 0 {
            guard let entry = getpwnam("postgres") else {
                directory.remove()
                throw HarnessError("running as root, and there is no postgres user to run PostgreSQL as")
            }
            owner = (entry.pointee.pw_uid, entry.pointee.pw_gid)
            guard chown(directory.path, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
                directory.remove()
                throw HarnessError("chown \(directory.path) to postgres: \(String(cString: strerror(errno)))")
            }
        }
        func server(_ tool: String, _ arguments: [String]) async throws -> CommandResult {
            try await Self.server(tool, arguments, binaries: binaries, owner: owner, in: directory.path)
        }
        let data = directory.file("data")
        let log = directory.file("server.log")
        do {
            let created = try await server(
                "initdb",
                ["-D", data, "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"]
            )
            guard created.succeeded else { throw HarnessError("initdb failed: \(created)") }
            var tcp: TCPListening?
            if let plainTCP {
                let hba = "\(data)/pg_hba.conf"
                let rules = try String(contentsOfFile: hba, encoding: .utf8)
                try (rules + "host all all \(plainTCP.clients) trust\n").write(
                    toFile: hba,
                    atomically: false,
                    encoding: .utf8
                )
                tcp = TCPListening(address: plainTCP.address, port: Int.random(in: 20_000...60_000), tls: false)
            }
            if tls {
                try await makeTLS(in: directory, owner: owner)
                let hba = "\(data)/pg_hba.conf"
                let rules = try String(contentsOfFile: hba, encoding: .utf8)
                try ("hostnossl all all 127.0.0.1/32 reject\n" + rules).write(
                    toFile: hba,
                    atomically: false,
                    encoding: .utf8
                )
                tcp = TCPListening(address: "127.0.0.1", port: Int.random(in: 20_000...60_000), tls: true)
            }
            let started = try await server(
                "pg_ctl",
                startArguments(data: data, log: log, socketDirectory: directory.path, tcp: tcp) + ["start"]
            )
            guard started.succeeded else {
                let serverLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                throw HarnessError("pg_ctl start failed: \(started)\n--- server log\n\(serverLog)")
            }
            return PostgresCluster(
                directory: directory,
                pid: try readPID(data: data),
                binaries: binaries,
                owner: owner,
                tcp: tcp
            )
        } catch {
            directory.remove()
            throw error
        }
    }

    /// Runs `sql` with `psql` over the socket (unaligned, tuples only): its output.
    public func psql(_ sql: String, database: String = "postgres") async throws -> CommandResult {
        try await run(
            "\(binaries)/psql",
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", socketDirectory, "-p", "\(port)", "-U",
                Self.user,
                "-d", database,
                "-c", sql,
            ],
            environment: minimalEnvironment(["PGCONNECT_TIMEOUT": "10"]),
            in: directory.path
        )
    }

    /// Whether the postmaster is still running. It is not the test process's child (pg_ctl
    /// detaches it), so once it exits it may linger as a zombie nobody reaps: that counts as
    /// stopped.
    public var isRunning: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
        return state != "Z" && state != "X"
    }

    /// Fast shutdown (SIGINT to the postmaster, by PID), SIGKILL after `timeout`; then removes
    /// the directory.
    public func stop(timeout: Duration = .seconds(30)) async {
        if kill(pid, SIGINT) == 0 {
            let deadline = ContinuousClock.now + timeout
            while isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if isRunning {
                kill(pid, SIGKILL)
                let killed = ContinuousClock.now + .seconds(5)
                while isRunning, ContinuousClock.now < killed { try? await Task.sleep(for: .milliseconds(20)) }
            }
        }
        directory.remove()
    }
}

/// Starts a throwaway cluster, runs `body`, and always stops it (by PID) and removes its
/// directory, whatever `body` does.
public func withPostgresCluster<T>(_ body: (PostgresCluster) async throws -> T) async throws -> T {
    let cluster = try await PostgresCluster.start()
    do {
        let result = try await body(cluster)
        await cluster.stop()
        return result
    } catch {
        await cluster.stop()
        throw error
    }
}

/// One throwaway cluster for the whole test process, started by the first test that asks and
/// stopped (by PID, its directory removed) when the process exits: the store's contract tests
/// each take a database of their own in it rather than a cluster each.
public enum SharedPostgresCluster {
    private static let state = SharedCluster()

    /// The process's cluster, started on first use.
    public static func cluster() async throws -> PostgresCluster {
        try await state.cluster()
    }

    /// A new, empty database in the shared cluster: its `postgres://` URL (Unix socket).
    public static func freshDatabase() async throws -> String {
        let cluster = try await cluster()
        return try await cluster.createDatabase("t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36))
    }
}

/// The shared cluster's one start. Its end: a watcher process (`sh`, in a session of its own)
/// that waits for the test process to exit, however it exits (the test runners leave without
/// running `atexit` handlers, and a timeout kills them), then stops the server by its PID and
/// removes the directory.
private actor SharedCluster {
    /// The one start, shared by every caller (an actor alone would let a second caller in
    /// while the first awaits `start()`, and start a second cluster).
    private var starting: Task<PostgresCluster, any Error>?

    func cluster() async throws -> PostgresCluster {
        if let starting { return try await starting.value }
        let task = Task { () throws -> PostgresCluster in
            let cluster = try await PostgresCluster.start()
            do {
                try Self.watch(cluster)
            } catch {
                await cluster.stop()
                throw error
            }
            return cluster
        }
        starting = task
        return try await task.value
    }

    /// Starts the watcher of `cluster` for this process.
    private static func watch(_ cluster: PostgresCluster) throws {
        let script = """
            kill -INT "$1" 2>/dev/null
            i=0
            while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
            kill -KILL "$1" 2>/dev/null
            rm -rf "$2"
            """
        try afterThisProcess(script, ["\(cluster.pid)", cluster.directory.path], name: "pg-watch")
    }
}

/// Runs `script` (`/bin/sh -c`, with `arguments` as $1, $2, …) once the test process has
/// exited, however it exits (the test runners leave without running `atexit` handlers, and a
/// timeout kills them): a watcher in a session of its own, its streams on /dev/null, waits for
/// this process's pid to go. For clean-ups that must happen even then.
public func afterThisProcess(_ script: String, _ arguments: [String], name: String) throws {
    let wrapped = """
        pid="$1"; shift
        while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
        \(script)
        """
    let argv = ["/bin/sh", "-c", wrapped, name, "\(getpid())"] + arguments
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // POSIX_SPAWN_SETSID (glibc, 0x80; not exported without _GNU_SOURCE): a session of its own.
    posix_spawnattr_setflags(&attributes, 0x80)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var pointers = argv.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    var pid: pid_t = 0
    let status = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &pointers, environ)
    guard status == 0 else {
        throw HarnessError("cannot start the \(name) watcher: \(String(cString: strerror(status)))")
    }
}
