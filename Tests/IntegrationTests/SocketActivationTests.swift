import Foundation
import JOSE
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Socket activation through systemd's own `systemd-socket-activate` (DESIGN §6): it binds the
/// sockets, waits for the first connection and execs tokend with LISTEN_FDS / LISTEN_FDNAMES —
/// in the same process, so its pid is tokend's.
@Suite("Socket activation with systemd-socket-activate")
struct SocketActivationTests {
    private func activator() throws -> String {
        guard let path = Binaries.which("systemd-socket-activate") else {
            throw HarnessError("systemd-socket-activate is missing (Debian package systemd)")
        }
        return path
    }

    /// `systemd-socket-activate -l … --fdname=… -E VAR=… tokend`: the tool passes on only the
    /// variables given with -E.
    private func activate(
        _ sandbox: Sandbox,
        listen: [String],
        fdnames: String,
        environment: [String: String]
    ) throws -> ChildProcess {
        var arguments = listen.flatMap { ["-l", $0] } + ["--fdname=\(fdnames)"]
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) { arguments += ["-E", "\(name)=\(value)"] }
        arguments.append(try Binaries.tokend())
        let log = sandbox.nextLogFile("activated")
        return try ChildProcess(
            try activator(),
            arguments,
            environment: minimalEnvironment(),
            stdout: log,
            stderr: log,
            name: "tokend"
        )
    }

    /// The first request on the activated socket: queued before tokend runs, answered once it
    /// does. The socket file appears at bind(), a moment before listen(): a connection refused
    /// in between is tried again.
    private func firstRequest(_ socket: String, _ child: ChildProcess) async throws -> Reply {
        try await eventually("systemd-socket-activate to listen on \(socket)") { () async throws -> Reply? in
            if let status = child.exitStatus {
                throw HarnessError("systemd-socket-activate ended (\(status)):\n\(child.stderr.redactingSecrets)")
            }
            guard FileManager.default.fileExists(atPath: socket) else { return nil }
            do {
                return try await http(socket, "GET", "/healthz", timeout: 30)
            } catch is UnixConnection.ConnectFailed {
                return nil
            }
        }
    }

    @Test("One activated socket named api: served on the passed fd; admin falls back to its path")
    func apiSocketActivated() async throws {
        let sandbox = try Sandbox("activate1")
        defer { sandbox.remove() }
        let activated = sandbox.file("activated-api.sock")
        let unused = sandbox.file("not-bound.sock")
        let environment = sandbox.environment(["TOKEND_SOCKET": unused])
        let child = try activate(sandbox, listen: [activated], fdnames: "api", environment: environment)
        defer { child.send(SIGKILL) }

        let health = try await firstRequest(activated, child)
        #expect(health.status == 200, "\(child.stderr.lastLines(20).redactingSecrets)")
        _ = try await eventually("the admin socket at its configured path") {
            FileManager.default.fileExists(atPath: sandbox.adminSocket) ? true : nil
        }
        let issued = try await http(sandbox.adminSocket, "POST", "/admin/tokens", body: .json(#"{"sub":"activated"}"#))
        #expect(issued.status == 200)
        let token = try #require(issued.string("access_token"))
        let introspection = try await http(activated, "POST", "/oauth2/introspect", body: .form([("token", token)]))
        #expect(introspection.json?["active"]?.boolValue == true)
        #expect(introspection.json?["sub"]?.stringValue == "activated")
        let admin = try await http(activated, "GET", "/admin/keys")
        #expect(admin.status == 404, "the activated api socket must not serve admin routes")
        #expect(
            !FileManager.default.fileExists(atPath: unused),
            "tokend bound TOKEND_SOCKET although systemd passed the api socket"
        )

        let (status, killed) = await child.stop()
        #expect(!killed && status == .exited(0))
        // The activated socket belongs to the service manager (RemoveOnStop=), not to tokend.
        #expect(FileManager.default.fileExists(atPath: activated), "tokend removed a socket file it did not create")
        #expect(
            !FileManager.default.fileExists(atPath: sandbox.adminSocket),
            "tokend left its own admin socket file behind"
        )
    }

    @Test("Two activated sockets named api:admin: each serves its own routes, no path is bound")
    func apiAndAdminActivated() async throws {
        let sandbox = try Sandbox("activate2")
        defer { sandbox.remove() }
        let api = sandbox.file("act-api.sock")
        let admin = sandbox.file("act-admin.sock")
        let child = try activate(
            sandbox,
            listen: [api, admin],
            fdnames: "api:admin",
            environment: sandbox.environment()
        )
        defer { child.send(SIGKILL) }

        let health = try await firstRequest(api, child)
        #expect(health.status == 200, "\(child.stderr.lastLines(20).redactingSecrets)")
        let keys = try await http(admin, "GET", "/admin/keys")
        #expect(keys.status == 200)
        #expect(keys.json?["keys"]?.arrayValue?.isEmpty == false)
        let notAdmin = try await http(api, "GET", "/admin/keys")
        #expect(notAdmin.status == 404)
        let issued = try await http(admin, "POST", "/admin/tokens", body: .json(#"{"sub":"both"}"#))
        let token = try #require(issued.string("access_token"))
        let verify = try await http(api, "GET", "/v1/verify", headers: [("Authorization", "Bearer \(token)")])
        #expect(verify.status == 200)
        #expect(verify.header("X-Token-Subject") == "both")
        #expect(!FileManager.default.fileExists(atPath: sandbox.apiSocket))
        #expect(!FileManager.default.fileExists(atPath: sandbox.adminSocket))

        let (status, killed) = await child.stop()
        #expect(!killed && status == .exited(0))
    }
}
