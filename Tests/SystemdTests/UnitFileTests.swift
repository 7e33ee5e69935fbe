import Foundation
import Glibc
import Testing
import TokenTestSupport

@Suite("systemd/ unit files")
struct UnitFileTests {
    static let analyze = Binaries.which("systemd-analyze")

    @Test("systemd-analyze verify --man=no passes on every unit with empty stderr", arguments: UnitFiles.units)
    func verify(unit: String) async throws {
        guard let analyze = Self.analyze else {
            print("skipped: systemd-analyze is not installed")
            return
        }
        // verify checks that ExecStart exists: check copies whose ExecStart is /bin/true.
        let directory = try TemporaryDirectory(prefix: "unit-verify")
        for name in UnitFiles.units {
            var text = try UnitFiles.text(name)
            text = text.replacingOccurrences(of: "ExecStart=/usr/local/bin/tokend", with: "ExecStart=/bin/true")
            try directory.write(name, text)
        }
        let result = try await UnitFiles.run(analyze, ["verify", "--man=no", unit], in: directory)
        #expect(result.status == .exited(0))
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test("systemd-analyze verify would report a unit problem on stderr (the check above can fail)")
    func verifyCanFail() async throws {
        guard let analyze = Self.analyze else {
            print("skipped: systemd-analyze is not installed")
            return
        }
        let directory = try TemporaryDirectory(prefix: "unit-verify-bad")
        try directory.write(
            "tokend.socket",
            try UnitFiles.text("tokend.socket") + "\n[Socket]\nListenStreamm=/run/x.sock\n"
        )
        try directory.write("tokend.service", "[Service]\nExecStart=/bin/true\n")
        let result = try await UnitFiles.run(analyze, ["verify", "--man=no", "tokend.socket"], in: directory)
        #expect(result.stderr.contains("ListenStreamm"))
    }

    @Test("systemd-analyze security --offline=true rates tokend.service at most 1.0")
    func security() async throws {
        guard let analyze = Self.analyze else {
            print("skipped: systemd-analyze is not installed")
            return
        }
        let result = try await UnitFiles.run(
            analyze,
            ["security", "--offline=true", Binaries.systemdDirectory + "/tokend.service"],
            in: try TemporaryDirectory(prefix: "unit-security")
        )
        #expect(result.status == .exited(0), "\(result.stderr)")
        let match = result.stdout.firstMatch(of: /Overall exposure level for tokend\.service: ([0-9.]+) (\w+)/)
        let score = try #require(match.flatMap { Double($0.1) }, "no score in: \(result.stdout.suffix(300))")
        print("tokend.service exposure: \(score) \(match!.2)")
        #expect(score <= 1.0)
    }

    @Test("the service is a hardened Type=notify unit started by both sockets")
    func serviceSettings() throws {
        let expected: [(String, String)] = [
            ("Type", "notify"), ("NotifyAccess", "main"), ("WatchdogSec", "30s"),
            ("ExecStart", "/usr/local/bin/tokend"), ("ExecReload", "/bin/kill -HUP $MAINPID"),
            ("Sockets", "tokend.socket tokend-admin.socket"), ("EnvironmentFile", "-/etc/tokend/tokend.env"),
            ("StateDirectory", "tokend"), ("StateDirectoryMode", "0700"), ("RuntimeDirectory", "tokend"),
            ("RuntimeDirectoryPreserve", "yes"), ("User", "tokend"), ("Group", "tokend"),
        ]
        for (key, value) in expected {
            #expect(try UnitFiles.values(key, in: "tokend.service") == [value], "\(key)")
        }
        let environment = try UnitFiles.values("Environment", in: "tokend.service")
        #expect(environment.contains("TOKEND_STORE=sqlite:/var/lib/tokend/tokend.db"))
        #expect(environment.contains("TOKEND_KEYS_DIR=/var/lib/tokend/keys"))
        #expect(environment.contains("TOKEND_ADMIN_SOCKET=/run/tokend/admin.sock"))
        // Environment= comes before EnvironmentFile= in the file, and the file wins in systemd anyway.
    }

    @Test(
        "each socket unit listens where the service expects it, named for tokend",
        arguments: [
            ("tokend.socket", "/run/tokend/tokend.sock", "api", "0660"),
            ("tokend-admin.socket", "/run/tokend/admin.sock", "admin", "0600"),
        ]
    )
    func sockets(unit: String, path: String, name: String, mode: String) throws {
        #expect(try UnitFiles.values("ListenStream", in: unit) == [path])
        #expect(try UnitFiles.values("FileDescriptorName", in: unit) == [name])
        #expect(try UnitFiles.values("SocketMode", in: unit) == [mode])
        #expect(try UnitFiles.values("Service", in: unit) == ["tokend.service"])
    }

    @Test("the admin socket path matches TOKEND_ADMIN_SOCKET and the API socket TOKEND_SOCKET")
    func socketPathsAgree() throws {
        let environment = try UnitFiles.values("Environment", in: "tokend.service")
        let admin = try UnitFiles.values("ListenStream", in: "tokend-admin.socket")
        let api = try UnitFiles.values("ListenStream", in: "tokend.socket")
        #expect(environment.contains("TOKEND_ADMIN_SOCKET=\(admin.first ?? "")"))
        #expect(environment.contains("TOKEND_SOCKET=\(api.first ?? "")"))
        #expect(try UnitFiles.values("SocketUser", in: "tokend.socket") == ["tokend"])
        #expect(try UnitFiles.values("SocketGroup", in: "tokend.socket") == ["tokend"])
    }

    @Test(
        "sysusers creates the system user tokend with home /var/lib/tokend",
        .enabled(if: getuid() == 0, "systemd-sysusers --root needs root")
    )
    func sysusers() async throws {
        guard let sysusers = Binaries.which("systemd-sysusers") else {
            print("skipped: systemd-sysusers is not installed")
            return
        }
        let directory = try TemporaryDirectory(prefix: "sysusers")
        let root = directory.path
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        let result = try await UnitFiles.run(
            sysusers,
            ["--root=" + root, Binaries.systemdDirectory + "/tokend.sysusers"],
            in: directory
        )
        #expect(result.status == .exited(0), "\(result.stderr)")
        let passwd = try String(contentsOfFile: root + "/etc/passwd", encoding: .utf8)
        let entry = try #require(passwd.split(separator: "\n").first { $0.hasPrefix("tokend:") })
        let fields = entry.split(separator: ":", omittingEmptySubsequences: false)
        #expect(Int(fields[2]).map { $0 > 0 && $0 < 1000 } == true, "a system uid")
        #expect(fields[5] == "/var/lib/tokend")
        #expect(fields[6] == "/usr/sbin/nologin")
        #expect(try String(contentsOfFile: root + "/etc/group", encoding: .utf8).contains("tokend:x:"))
    }

    @Test(
        "tmpfiles creates /var/lib/tokend and its keys directory 0700, owned by tokend",
        .enabled(if: getuid() == 0, "chown needs root")
    )
    func tmpfiles() async throws {
        guard let sysusers = Binaries.which("systemd-sysusers"), let tmpfiles = Binaries.which("systemd-tmpfiles")
        else {
            print("skipped: systemd-sysusers or systemd-tmpfiles is not installed")
            return
        }
        let directory = try TemporaryDirectory(prefix: "tmpfiles")
        let root = directory.path
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        _ = try await UnitFiles.run(
            sysusers,
            ["--root=" + root, Binaries.systemdDirectory + "/tokend.sysusers"],
            in: directory
        )
        let result = try await UnitFiles.run(
            tmpfiles,
            ["--create", "--root=" + root, Binaries.systemdDirectory + "/tokend.tmpfiles"],
            in: directory
        )
        #expect(result.status == .exited(0), "\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        let passwd = try String(contentsOfFile: root + "/etc/passwd", encoding: .utf8)
        let uid = try #require(
            passwd.split(separator: "\n").first { $0.hasPrefix("tokend:") }.flatMap {
                UInt32($0.split(separator: ":")[2])
            }
        )
        for path in ["/var/lib/tokend", "/var/lib/tokend/keys"] {
            var status = stat()
            try #require(stat(root + path, &status) == 0, "\(path) exists")
            #expect(status.st_mode & 0o7777 == 0o700, "\(path) mode")
            #expect(status.st_mode & S_IFMT == S_IFDIR)
            #expect(status.st_uid == uid && status.st_gid == uid, "\(path) owner")
        }
    }

    static let documentedVariables: [(name: String, defaultText: String)] = [
        ("TOKEND_SOCKET", "./run/tokend.sock"), ("TOKEND_ADMIN_SOCKET", "./run/tokend-admin.sock"),
        ("TOKEND_LISTEN", "off"), ("TOKEND_STORE", "sqlite:./var/tokend.db"), ("TOKEND_KEYS_DIR", "./keys"),
        ("TOKEND_SIGNING_ALG", "ES256"), ("TOKEND_ISSUER", "tokend"), ("TOKEND_AUDIENCE", "unset"),
        ("TOKEND_ACCESS_POLICY", "1h"), ("TOKEND_REFRESH_POLICY", "30d"), ("TOKEND_REFRESH_GRACE", "10s"),
        ("TOKEND_KEY_ROTATION", "off"), ("TOKEND_JWKS_MAX_AGE", "300s"), ("TOKEND_LEEWAY", "30s"),
        ("TOKEND_LOG_LEVEL", "info"), ("USER_SIGNUP_RATE_LIMIT_EMAIL", "10"),
        ("USER_SIGNUP_RATE_LIMIT_EMAIL_WINDOW_MS", "3600000"), ("USER_SIGNUP_RATE_LIMIT_IP", "50"),
        ("USER_SIGNUP_RATE_LIMIT_IP_WINDOW_MS", "3600000"), ("API_USER_CREATE_SCOPE", "unset"),
        ("TOKEND_SIGNIN_RATE_LIMIT_ACCOUNT", "10"), ("TOKEND_SIGNIN_RATE_LIMIT_IP", "100"),
        ("TOKEND_SIGNIN_RATE_LIMIT_WINDOW", "15m"), ("TOKEND_HASH_WORKERS", "the number of CPUs tokend may run on"),
        ("TOKEND_HASH_QUEUE", "64"), ("TOKEND_HEADER_TIMEOUT", "10s"), ("TOKEND_BODY_TIMEOUT", "10s"),
        ("TOKEND_MAX_CONNECTIONS", "1024"), ("TOKEND_ADMIN_MAX_CONNECTIONS", "64"),
        ("TOKEND_TRUSTED_PROXIES", "none"), ("TOKEND_EVENT_RETENTION", "3d"),
        ("TOKEND_STORE_PASSWORD_FILE", "unset"), ("TOKEND_KEY_ENCRYPTION_KEY_FILE", "unset"),
        ("TOKEND_PREVIOUS_KEY_ENCRYPTION_KEY_FILE", "unset"), ("TOKEND_STORE_TIMEOUT", "5s"),
        ("TOKEND_STORE_MAX_CONNECTIONS", "16"), ("TOKEND_MAX_STALENESS", "30s"), ("TOKEND_FLEET_NOTIFY", "1"),
        ("TOKEND_ECDSA_PRECOMPUTE", "1"),
    ]

    @Test(
        "tokend.env documents every variable, commented out, with its default and accepted form",
        arguments: documentedVariables
    )
    func environmentFile(name: String, defaultText: String) throws {
        let lines = try UnitFiles.text("tokend.env").split(separator: "\n", omittingEmptySubsequences: false).map(
            String.init
        )
        let index = try #require(lines.firstIndex { $0.hasPrefix("#\(name)=") }, "#\(name)= line")
        // The comment block just above the commented-out assignment.
        var block: [String] = []
        var cursor = index - 1
        while cursor >= 0, lines[cursor].hasPrefix("# ") {
            block.insert(lines[cursor], at: 0)
            cursor -= 1
        }
        let comment = block.joined(separator: " ")
        #expect(comment.contains("Default: \(defaultText)"), "\(name): \(comment)")
        #expect(comment.contains("Accepted:"), "\(name)")
        #expect(lines[index].wholeMatch(of: /#[A-Z_][A-Z0-9_]*=\S*/) != nil, "uncommented, a valid assignment")
    }

    @Test("tokend.env sets nothing by itself")
    func environmentFileInert() throws {
        let text = try UnitFiles.text("tokend.env")
        for line in text.split(separator: "\n") {
            #expect(line.hasPrefix("#"), "\(line)")
        }
        let listed = text.matches(of: /(?m)^#([A-Z_][A-Z0-9_]*)=/).map { String($0.1) }
        #expect(Set(listed) == Set(Self.documentedVariables.map(\.name)))
    }
}
