import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// nginx (the Debian package) in front of tokend with `auth_request` → `/v1/verify`, as a
/// deployment would put it (DESIGN §5.1).
@Suite("nginx auth_request in front of /v1/verify")
struct NginxAuthRequestTests {
    /// nginx.conf for a foreground nginx whose every file lives in `directory`.
    static func configuration(directory: String, tokendSocket: String) -> String {
        // auth_request runs in the access phase, after `return` (rewrite phase) would already
        // have answered: the protected location serves a file instead.
        """
        \(geteuid() == 0 ? "user root;  # workers must reach tokend's 0660 socket and this 0700 directory" : "")
        worker_processes 1;
        pid \(directory)/nginx.pid;
        error_log \(directory)/error.log warn;

        events { worker_connections 64; }

        http {
            access_log \(directory)/access.log;
            client_body_temp_path \(directory)/client_body;
            proxy_temp_path \(directory)/proxy;
            fastcgi_temp_path \(directory)/fastcgi;
            uwsgi_temp_path \(directory)/uwsgi;
            scgi_temp_path \(directory)/scgi;
            default_type text/plain;

            server {
                listen unix:\(directory)/nginx.sock;

                location = /_verify {
                    internal;
                    proxy_pass http://unix:\(tokendSocket):/v1/verify;
                    proxy_pass_request_body off;
                    proxy_set_header Content-Length "";
                    proxy_set_header X-Original-URI $request_uri;
                }

                location = /protected {
                    auth_request /_verify;
                    auth_request_set $token_subject $upstream_http_x_token_subject;
                    add_header X-Token-Subject $token_subject always;
                    alias \(directory)/www/protected.txt;
                }
            }
        }

        """
    }

    /// curl through nginx's Unix socket: (status, X-Token-Subject).
    private func curl(
        _ socket: String,
        _ path: String,
        bearer: String?,
        in directory: String
    ) async throws -> (Int, String?) {
        var arguments = [
            "-sS", "-m", "15", "-o", "/dev/null", "-D", "-", "-w", "status=%{http_code}\\n", "--unix-socket", socket,
        ]
        if let bearer { arguments += ["-H", "Authorization: Bearer \(bearer)"] }
        arguments.append("http://localhost\(path)")
        let result = try await run(
            try await SystemPackages.ensure("curl", providing: "curl"),
            arguments,
            in: directory,
            display: "curl \(path)\(bearer == nil ? "" : " -H 'Authorization: Bearer …'")"
        )
        // "\r\n" is one Character in Swift: split on the newline scalars instead.
        let lines = result.stdout.components(separatedBy: .newlines).filter { !$0.isEmpty }
        guard result.succeeded, let line = lines.last(where: { $0.hasPrefix("status=") }),
            let status = Int(line.dropFirst("status=".count))
        else { throw HarnessError("\(result)") }
        let subject = lines.first { $0.lowercased().hasPrefix("x-token-subject:") }
            .map { $0.dropFirst("x-token-subject:".count).trimmingCharacters(in: .whitespaces) }
        return (status, subject)
    }

    @Test("A valid token gets through (200, X-Token-Subject), no token is 401, a revoked token is 401")
    func authRequest() async throws {
        let nginx = try await SystemPackages.ensure("nginx", providing: "nginx")
        try await withTokend("nginx") { daemon in
            let directory = daemon.sandbox.file("nginx")
            try FileManager.default.createDirectory(atPath: directory + "/www", withIntermediateDirectories: true)
            try "protected content\n".write(toFile: directory + "/www/protected.txt", atomically: true, encoding: .utf8)
            try Self.configuration(directory: directory, tokendSocket: daemon.apiSocket).write(
                toFile: directory + "/nginx.conf",
                atomically: true,
                encoding: .utf8
            )
            let child = try ChildProcess(
                nginx,
                ["-p", directory, "-c", directory + "/nginx.conf", "-g", "daemon off;"],
                environment: minimalEnvironment(),
                stdout: directory + "/stdout.log",
                stderr: directory + "/stderr.log",
                name: "nginx"
            )
            do {
                try await exercise(nginx: child, directory: directory, daemon: daemon)
            } catch {
                await Self.stop(child)
                throw error
            }
            await Self.stop(child)
        }
    }

    private func exercise(nginx child: ChildProcess, directory: String, daemon: Tokend) async throws {
        let socket = directory + "/nginx.sock"
        // The master's pid, from its pid file once it serves.
        let pid = try await eventually("nginx to listen on \(socket)") { () async throws -> Int32? in
            if let status = child.exitStatus {
                throw HarnessError(
                    "nginx exited (\(status)): \(child.stderr)\n\((try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? "")"
                )
            }
            guard let text = try? String(contentsOfFile: directory + "/nginx.pid", encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                (try? UnixConnection(path: socket, timeout: 1)) != nil
            else { return nil }
            return pid
        }
        #expect(pid == child.pid)

        let tokens = try await daemon.issue(sub: "grace-hopper", scope: "read")
        let (okStatus, subject) = try await curl(socket, "/protected", bearer: tokens.accessToken, in: directory)
        #expect(okStatus == 200)
        #expect(subject == "grace-hopper")
        let (noTokenStatus, _) = try await curl(socket, "/protected", bearer: nil, in: directory)
        #expect(noTokenStatus == 401)
        let (garbageStatus, _) = try await curl(socket, "/protected", bearer: "not.a.token", in: directory)
        #expect(garbageStatus == 401)
        let (internalStatus, _) = try await curl(socket, "/_verify", bearer: tokens.accessToken, in: directory)
        #expect(internalStatus == 404, "the verify location must be internal")

        let revoked = try await daemon.revoke(tokens.accessToken)
        #expect(revoked.status == 200)
        let (revokedStatus, revokedSubject) = try await curl(
            socket,
            "/protected",
            bearer: tokens.accessToken,
            in: directory
        )
        #expect(revokedStatus == 401)
        #expect(revokedSubject == nil || revokedSubject == "")

        // Stop nginx by the pid in its pid file.
        _ = kill(pid, SIGTERM)
        let exit = await child.waitForExit(timeout: .seconds(15))
        #expect(exit != nil, "nginx did not stop on SIGTERM")
        #expect(Self.childPIDs(of: pid).isEmpty, "nginx left workers behind")
    }

    /// nginx's master and its workers, all started by this test: SIGTERM to the master (it stops
    /// its workers), SIGKILL to each of them by pid if that does not do it.
    static func stop(_ child: ChildProcess) async {
        guard child.isRunning else { return }
        let workers = childPIDs(of: child.pid)
        child.send(SIGTERM)
        if await child.waitForExit(timeout: .seconds(10)) == nil {
            child.send(SIGKILL)
            _ = await child.waitForExit(timeout: .seconds(5))
        }
        for worker in workers where kill(worker, 0) == 0 { kill(worker, SIGKILL) }
    }

    /// The pids whose parent is `parent` (from /proc/PID/stat).
    static func childPIDs(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.range(of: ") ", options: .backwards)
            else { return nil }
            let fields = stat[close.upperBound...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent ? pid : nil
        }
    }
}
