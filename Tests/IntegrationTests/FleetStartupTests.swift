import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11 items 2 and 4: the PostgreSQL store's settings at start-up (a bad one stops tokend
/// naming the variable, and never shows a password), and a fleet whose logs never hold the
/// database password or a private key.
@Suite("The PostgreSQL store's start-up and secrets", .timeLimit(.minutes(3)))
struct FleetStartupTests {
    /// A password no test prints: long enough that any 16-character piece of it is telling.
    static func randomPassword() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return "pw" + String((0..<30).map { _ in alphabet.randomElement()! })
    }

    /// A sandbox with a good KEK file in it: its path.
    static func kek(in sandbox: Sandbox) throws -> String {
        try sandbox.directory.write("kek", (0..<32).map { _ in UInt8.random(in: 0...255) })
    }

    enum Case: String, CaseIterable, Sendable {
        case missingKEK, weakKEK, passwordInURL, passwordParameter, passwordInEnvironment, unreachable
    }

    @Test(
        "a bad PostgreSQL setting stops tokend (exit 78 or 1) with a message naming the variable",
        arguments: Case.allCases
    )
    func refusedSetting(_ setting: Case) async throws {
        let sandbox = try Sandbox("pg-refused")
        defer { sandbox.remove() }
        let password = Self.randomPassword()
        // Nobody listens in the sandbox: a reachable-looking URL that is not.
        let url = "postgres://tokend@/tokend?host=\(sandbox.path)&connect_timeout=2"
        var environment = ["TOKEND_STORE": url, "TOKEND_KEY_ENCRYPTION_KEY_FILE": try Self.kek(in: sandbox)]
        let variable: String
        switch setting {
        case .missingKEK:
            environment["TOKEND_KEY_ENCRYPTION_KEY_FILE"] = nil
            variable = "TOKEND_KEY_ENCRYPTION_KEY_FILE"
        case .weakKEK:
            environment["TOKEND_KEY_ENCRYPTION_KEY_FILE"] = try sandbox.directory.write(
                "weak",
                "correct horse battery\n"
            )
            variable = "TOKEND_KEY_ENCRYPTION_KEY_FILE"
        case .passwordInURL:
            environment["TOKEND_STORE"] = "postgres://tokend:\(password)@/tokend?host=\(sandbox.path)"
            variable = "TOKEND_STORE"
        case .passwordParameter:
            environment["TOKEND_STORE"] = url + "&password=\(password)"
            variable = "TOKEND_STORE"
        case .passwordInEnvironment:
            environment["TOKEND_STORE_PASSWORD"] = password
            variable = "TOKEND_STORE_PASSWORD"
        case .unreachable:
            variable = "TOKEND_STORE"
        }
        let result = try await Tokend.refusedStart(sandbox, environment: environment)
        #expect([.exited(78), .exited(1)].contains(result.status), "\(result)")
        #expect(result.stderr.contains(variable), "the message must name \(variable):\n\(result)")
        #expect(LogSecrecyTests.leak(of: password, in: result.output) == nil, "the password is in tokend's output")
    }

    @Test("a node refuses a database migrated by a newer tokend, saying which version it found")
    func newerSchema() async throws {
        let url = try await SharedPostgresCluster.freshDatabase()
        let cluster = try await SharedPostgresCluster.cluster()
        let fleet = try Fleet("fleet-schema", storeURL: url)
        do {
            let first = try await fleet.start("a")
            #expect(await first.stop() == .exited(0))
            let future = try await cluster.psql(
                "INSERT INTO tokend.schema_migrations (version, name) VALUES (999, 'from a newer tokend')",
                database: databaseName(url)
            )
            try #require(future.succeeded, "\(future)")
            let refused = try await Tokend.refusedStart(fleet.sandbox, environment: fleet.environment)
            #expect(refused.status == .exited(1), "\(refused)")
            #expect(refused.stderr.contains("999"), "the refusal must name the version it found:\n\(refused)")
            #expect(refused.stderr.contains("TOKEND_STORE"), "\(refused)")
        } catch {
            await fleet.stopAll()
            throw error
        }
        await fleet.stopAll()
    }

    @Test(
        "a fleet on a password-protected role: the password works from TOKEND_STORE_PASSWORD_FILE and is in no log; no private key is either"
    )
    func noPasswordOrKeyInLogs() async throws {
        let cluster = try await SharedPostgresCluster.cluster()
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let role = "fleet_pw_\(suffix)"
        let database = "fleet_pw_\(suffix)"
        let password = Self.randomPassword()
        // The role must give its password: scram-sha-256 on the socket for it alone (the
        // cluster trusts every other role there).
        let hba = cluster.dataDirectory + "/pg_hba.conf"
        let rules = try String(contentsOfFile: hba, encoding: .utf8)
        try ("local all \(role) scram-sha-256\n" + rules).write(toFile: hba, atomically: false, encoding: .utf8)
        let created = try await cluster.psql("CREATE ROLE \(role) LOGIN PASSWORD '\(password)'")
        try #require(created.succeeded, "CREATE ROLE failed")
        let made = try await cluster.psql("CREATE DATABASE \(database) OWNER \(role)")
        try #require(made.succeeded, "CREATE DATABASE failed: \(made)")
        try #require(try await cluster.psql("SELECT pg_reload_conf()").succeeded)

        let url = "postgres://\(role)@/\(database)?host=\(cluster.socketDirectory)"
        let fleet = try Fleet("fleet-pw", storeURL: url, environment: ["TOKEND_LOG_LEVEL": "trace"])
        do {
            let passwordFile = try fleet.sandbox.directory.write("store-password", password + "\n")
            let wrongPassword = Self.randomPassword()
            let wrongFile = try fleet.sandbox.directory.write("wrong-password", wrongPassword)

            // Without the password, or with a wrong one, the server refuses and tokend says so.
            for file in [nil, wrongFile] {
                var environment = fleet.environment
                environment["TOKEND_STORE_PASSWORD_FILE"] = file
                let refused = try await Tokend.refusedStart(fleet.sandbox, environment: environment)
                #expect(refused.status == .exited(1), "\(refused)")
                #expect(refused.stderr.contains(role), "\(refused)")
                if file == nil {
                    #expect(
                        refused.stderr.contains("TOKEND_STORE_PASSWORD_FILE"),
                        "say where a password goes: \(refused)"
                    )
                }
                #expect(LogSecrecyTests.leak(of: password, in: refused.output) == nil, "password in a refusal")
                #expect(LogSecrecyTests.leak(of: wrongPassword, in: refused.output) == nil, "password in a refusal")
            }

            let environment = ["TOKEND_STORE_PASSWORD_FILE": passwordFile]
            let a = try await fleet.start("a", environment: environment)
            let b = try await fleet.start("b", environment: environment)
            // A scenario that reads and writes: issue, refresh, retry, revoke, reuse, a forced
            // rotation, a reload, and a PostgreSQL restart the nodes reconnect through.
            let issued = try await a.issue(sub: "pw-alice", refresh: true)
            #expect(try await b.isActive(issued.accessToken))
            let rotated = try await b.refresh(try #require(issued.refreshToken))
            #expect(rotated.status == 200, "\(rotated.summary)")
            #expect(try await a.revoke(issued.accessToken).status == 200)
            #expect(try await a.admin("POST", "/admin/keys/rotate", json: #"{"force":true}"#).status == 200)
            b.send(SIGHUP)
            let user = try await b.createUser("pw-user")
            #expect(try await a.admin("POST", "/admin/users/\(user)/logout").status == 200)
            #expect(await a.stop() == .exited(0))
            #expect(await b.stop() == .exited(0))

            // The private keys, unsealed with the KEK from what the database holds.
            let kek = try KeyEncryptionKey(
                contents: Array(try #require(FileManager.default.contents(atPath: fleet.kekFile))),
                file: fleet.kekFile
            )
            let rows = try await cluster.psql(
                "SELECT kid || ' ' || encode(sealed, 'hex') FROM tokend.signing_keys",
                database: database
            )
            try #require(rows.succeeded, "\(rows)")
            let kekBytes = Array(try #require(FileManager.default.contents(atPath: fleet.kekFile)))
            var secrets: [(label: String, value: String)] = [
                ("the database password", password),
                ("the KEK in base64", Data(kekBytes).base64EncodedString()),
                ("the KEK in hex", kekBytes.map { String(format: "%02x", $0) }.joined()),
            ]
            for line in rows.stdout.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 2 else { continue }
                let kid = String(parts[0])
                let key = try kek.open(try hexBytes(parts[1]), kid: kid, algorithm: .es256)
                let pem = try key.pemEncoded()
                let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
                secrets.append(("the PEM of \(kid)", body))
                if let d = try key.jwkParameters(includePrivate: true)["d"] {
                    secrets.append(("the private JWK member d of \(kid)", d))
                }
            }
            #expect(secrets.count >= 9, "three keys (first current, next, the rotation's next), password and KEK")
            let logs = fleet.logs
            #expect(logs.count == 2 && logs.allSatisfy { !$0.text.isEmpty })
            for (name, text) in logs {
                for secret in secrets {
                    let leak = LogSecrecyTests.leak(of: secret.value, in: text)
                    #expect(leak == nil, "\(name)'s log holds \(secret.label) (\(leak ?? ""))")
                }
            }
        } catch {
            await fleet.stopAll()
            _ = try? await cluster.psql("DROP DATABASE IF EXISTS \(database)")
            throw error
        }
        await fleet.stopAll()
        _ = try? await cluster.psql("DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
    }
}

/// Bytes from hex digits.
private func hexBytes(_ text: Substring) throws -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) ?? text.endIndex
        guard let byte = UInt8(text[index..<next], radix: 16) else { throw HarnessError("not hex") }
        bytes.append(byte)
        index = next
    }
    return bytes
}
