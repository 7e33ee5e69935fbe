import Foundation
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Installs Debian packages a test drives (nginx, systemd-container) when they are missing, so
/// the suite works on a fresh CI machine. One install at a time within this process; apt's own
/// lock (waited for) guards against other processes.
enum SystemPackages {
    private actor Installer {
        func ensure(_ package: String, providing command: String) async throws -> String {
            if let path = Binaries.which(command) { return path }
            guard geteuid() == 0 else {
                throw HarnessError("\(command) is missing and only root can install it: apt-get install \(package)")
            }
            let scratch = try Sandbox("apt")
            defer { scratch.remove() }
            let environment = minimalEnvironment(["DEBIAN_FRONTEND": "noninteractive"])
            let lock = ["-o", "DPkg::Lock::Timeout=300"]
            // Debian's maintainer scripts start an installed daemon (nginx on port 80) unless
            // policy-rc.d says no; without one, provide it for the install only.
            let policy = "/usr/sbin/policy-rc.d"
            let addedPolicy = !FileManager.default.fileExists(atPath: policy)
            if addedPolicy {
                try "#!/bin/sh\n# added by tokend's integration tests for one apt-get install\nexit 101\n".write(
                    toFile: policy,
                    atomically: true,
                    encoding: .utf8
                )
                chmod(policy, 0o755)
            }
            defer { if addedPolicy { unlink(policy) } }
            let install = ["install", "-y", "-qq", "--no-install-recommends"] + lock + [package]
            var result = try await run(
                "/usr/bin/apt-get",
                install,
                environment: environment,
                in: scratch.path,
                timeout: .seconds(600)
            )
            if !result.succeeded {
                _ = try await run(
                    "/usr/bin/apt-get",
                    ["update", "-qq"] + lock,
                    environment: environment,
                    in: scratch.path,
                    timeout: .seconds(600)
                )
                result = try await run(
                    "/usr/bin/apt-get",
                    install,
                    environment: environment,
                    in: scratch.path,
                    timeout: .seconds(600)
                )
            }
            guard result.succeeded, let path = Binaries.which(command) else {
                throw HarnessError("could not install \(package) for \(command):\n\(result)")
            }
            return path
        }
    }

    private static let installer = Installer()

    /// The path of `command`, installing `package` first when it is missing.
    static func ensure(_ package: String, providing command: String) async throws -> String {
        try await installer.ensure(package, providing: command)
    }
}
