import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Issue 3 acceptance: "`make run` starts tokend and the printed commands work". The recipe is
/// read with `make -n run` (nothing is built or started by make): tokend is started with the
/// recipe's own environment in a sandbox laid out like a clone (./run, ./var, ./keys,
/// .build/debug), and every command the recipe prints is run there, as pasted into bash.
@Suite("make run's printed commands")
struct MakeRunTests {
    /// The recipe's logical command lines (backslash continuations joined).
    static func recipe() async throws -> [String] {
        guard let make = Binaries.which("make") else {
            throw HarnessError("make is missing (apt-get install make)")
        }
        let scratch = try Sandbox("make-n")
        defer { scratch.remove() }
        let result = try await run(
            make,
            ["-n", "-s", "--no-print-directory", "run"],
            in: scratch.path,
            currentDirectory: Binaries.packageDirectory.path
        )
        guard result.succeeded else { throw HarnessError("make -n run failed:\n\(result)") }
        var commands: [String] = []
        var current = ""
        for line in result.stdout.components(separatedBy: "\n") {
            if line.hasSuffix("\\") {
                current += line + "\n"  // kept: bash reads the continuation as make printed it
            } else {
                commands.append(current + line)
                current = ""
            }
        }
        return commands.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }

    /// NAME=VALUE assignments before `exec .build/debug/tokend` in the recipe.
    static func tokendEnvironment(_ commands: [String]) throws -> [String: String] {
        guard let line = commands.first(where: { $0.contains("exec .build/debug/tokend") }) else {
            throw HarnessError("the run recipe does not end in exec .build/debug/tokend")
        }
        var environment: [String: String] = [:]
        for word in line.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            guard let equals = word.firstIndex(of: "="), word.first?.isUppercase == true else { continue }
            environment[String(word[..<equals])] = String(word[word.index(after: equals)...])
        }
        return environment
    }

    @Test("tokend started as make run starts it; every command make run prints works as printed")
    func printedCommandsWork() async throws {
        let commands = try await Self.recipe()
        let recipeEnvironment = try Self.tokendEnvironment(commands)
        #expect(recipeEnvironment["TOKEND_SOCKET"] != nil && recipeEnvironment["TOKEND_ADMIN_SOCKET"] != nil)
        let printf = try #require(commands.first { $0.hasPrefix("printf") }, "make run prints no commands")

        let sandbox = try Sandbox("makerun")
        defer { sandbox.remove() }
        let bash = try #require(Binaries.which("bash"))
        _ = try await SystemPackages.ensure("curl", providing: "curl")  // the printed commands use it
        // What make run prints, exactly.
        let printed = try await run(bash, ["-c", printf], in: sandbox.path)
        let lines = printed.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.count >= 5, "make run should print the commands to try:\n\(printed.stdout)")

        // A clone's layout: ./run, ./var, ./keys as the recipe makes them, and .build/debug.
        for (directory, mode) in [("run", 0o755), ("var", 0o700)] { mkdir(sandbox.file(directory), mode_t(mode)) }
        try FileManager.default.createDirectory(atPath: sandbox.file(".build"), withIntermediateDirectories: true)
        let products = URL(fileURLWithPath: try Binaries.tokend()).deletingLastPathComponent().path
        try FileManager.default.createSymbolicLink(atPath: sandbox.file(".build/debug"), withDestinationPath: products)

        let log = sandbox.nextLogFile("tokend")
        let child = try ChildProcess(
            sandbox.file(".build/debug/tokend"),
            [],
            environment: minimalEnvironment(recipeEnvironment),
            stdout: log,
            stderr: log,
            name: "tokend",
            currentDirectory: sandbox.path
        )
        do {
            let api = sandbox.path + "/" + (recipeEnvironment["TOKEND_SOCKET"] ?? "")
            _ = try await eventually("tokend (as make run starts it) to serve") { () async throws -> Bool? in
                if let status = child.exitStatus {
                    throw HarnessError("tokend exited (\(status)):\n\(child.stderr.lastLines(20).redactingSecrets)")
                }
                guard FileManager.default.fileExists(atPath: api) else { return nil }
                return try await http(api, "GET", "/healthz", timeout: 5).status == 200 ? true : nil
            }

            // All printed commands in one bash session (TOKEN= carries over), each one's output
            // and exit code in files.
            var script = "cd \(sandbox.path.shellQuoted)\n"
            for (index, line) in lines.enumerated() {
                script += "{ \(line)\n} > out.\(index) 2> err.\(index); echo $? > rc.\(index)\n"
            }
            let session = try await run(
                bash,
                ["-c", script],
                environment: minimalEnvironment(),
                in: sandbox.path,
                timeout: .seconds(120)
            )
            #expect(session.succeeded)
            for (index, line) in lines.enumerated() {
                let shown = line.redactingSecrets
                let rc = (try? String(contentsOfFile: sandbox.file("rc.\(index)"), encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let out = (try? String(contentsOfFile: sandbox.file("out.\(index)"), encoding: .utf8)) ?? ""
                let err = (try? String(contentsOfFile: sandbox.file("err.\(index)"), encoding: .utf8)) ?? ""
                let context =
                    "\(shown)\n--- stdout\n\(out.redactingSecrets.prefix(600))\n--- stderr\n\(err.redactingSecrets.prefix(600))"
                #expect(rc == "0", "printed command failed (exit \(rc ?? "?")): \(context)")
                // Checked as booleans so a failure prints only the redacted context, never a token.
                var expected = true
                if line.contains("/oauth2/introspect") { expected = out.contains(#""active":true"#) }
                if line.contains("/v1/verify") { expected = out.hasPrefix("HTTP/1.1 200") }
                if line.contains("jwks.json") && line.hasPrefix("curl") { expected = out.contains(#""keys""#) }
                if line.contains("/admin/tokens") {
                    expected = out.contains("access_token") && out.contains("refresh_token")
                }
                if line.contains("tokenctl status") { expected = out.contains("serving") }
                if line.hasPrefix("TOKEN=") { expected = err.isEmpty }
                #expect(expected, "unexpected output: \(context)")
            }
        } catch {
            await child.stop()
            throw error
        }
        let (status, killed) = await child.stop()
        #expect(!killed && status == .exited(0))
    }
}

extension String {
    /// Single-quoted for a POSIX shell.
    var shellQuoted: String { "'" + replacingOccurrences(of: "'", with: #"'\''"#) + "'" }
}
