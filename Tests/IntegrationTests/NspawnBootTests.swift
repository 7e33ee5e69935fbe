import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A real systemd boot (systemd-nspawn -b over a tmpfs overlay of `/`) with the project's units
/// and the built daemon at /usr/local/bin/tokend: the sockets start, the first connection starts
/// tokend, /healthz answers 200, and `systemctl is-active tokend` is active after READY=1.
///
/// systemd-nspawn is only ever started from a shell that has first moved itself into a fresh
/// cgroup subtree of its own (NspawnScripts.outer), as ../shared/reference/systemd/ requires:
/// unconfined, it would move every process of the machine into its cgroup.
@Suite("Real systemd boot with systemd-nspawn")
struct NspawnBootTests {
    @Test(
        "tokend.socket and tokend-admin.socket start, a connection to /run/tokend/tokend.sock gets /healthz 200, tokend.service is active after READY",
        .enabled(
            if: geteuid() == 0,
            "skipped: needs root (overlay mounts, cgroups and systemd-nspawn need it); not root here"
        ),
        .timeLimit(.minutes(5))
    )
    func bootWithUnits() async throws {
        let tokend = try Binaries.tokend()
        for unit in ["tokend.service", "tokend.socket", "tokend-admin.socket", "tokend.sysusers", "tokend.tmpfiles"] {
            #expect(
                FileManager.default.fileExists(atPath: "\(Binaries.systemdDirectory)/\(unit)"),
                "systemd/\(unit) is missing from the project"
            )
        }
        do {
            _ = try await SystemPackages.ensure("systemd-container", providing: "systemd-nspawn")
        } catch {
            try skip("systemd-nspawn is not installed and could not be installed (\(error))")
        }
        // curl runs inside the container, which is an overlay of this machine's /.
        _ = try await SystemPackages.ensure("curl", providing: "curl")
        _ = try #require(Binaries.which("unshare"), "unshare (util-linux) is missing")

        let sandbox = try Sandbox("nspawn")
        defer { sandbox.remove() }
        let cgroup = "tokend-it-nspawn-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { CgroupSubtree.remove(cgroup) }
        for (name, text) in [
            ("outer.sh", NspawnScripts.outer), ("boot.sh", NspawnScripts.boot), ("inner.sh", NspawnScripts.inner),
        ] {
            try text.write(toFile: sandbox.file(name), atomically: true, encoding: .utf8)
            chmod(sandbox.file(name), 0o755)
        }
        let environment = minimalEnvironment([
            "SCRATCH": sandbox.path, "CGROUP": cgroup, "TOKEND_BINARY": tokend, "UNITS_DIR": Binaries.systemdDirectory,
            "SWIFT_LIBDIR": Self.swiftRuntimeDirectory(of: tokend) ?? "",
            "MACHINE_UUID": UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
        ])
        let log = sandbox.file("nspawn.log")
        let clock = ContinuousClock()
        let started = clock.now
        let child = try ChildProcess(
            "/bin/sh",
            [sandbox.file("outer.sh")],
            environment: environment,
            stdout: log,
            stderr: log,
            name: "systemd-nspawn"
        )
        let status = await child.waitForExit(timeout: .seconds(150))
        if status == nil {
            // Everything nspawn started is in our subtree: stop exactly those pids.
            child.send(SIGKILL)
            CgroupSubtree.killAll(cgroup)
            _ = await child.waitForExit(timeout: .seconds(10))
        }
        let elapsed = clock.now - started
        let transcript =
            (try? String(contentsOfFile: sandbox.file("out/transcript.txt"), encoding: .utf8)) ?? "(no transcript)"
        switch status {
        case .exited(NspawnScripts.cgroupUnavailable)?:
            try skip(
                "cannot confine systemd-nspawn to its own cgroup subtree here (/sys/fs/cgroup not writable):\n\(child.stdout.lastLines(5))"
            )
        case .exited(NspawnScripts.overlayUnavailable)?:
            try skip("this sandbox cannot mount a tmpfs/overlay root for systemd-nspawn:\n\(child.stdout.lastLines(5))")
        default:
            break
        }
        func out(_ name: String) -> String? {
            (try? String(contentsOfFile: sandbox.file("out/\(name)"), encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines
            )
        }
        let context =
            "nspawn: \(status.map(\.description) ?? "timed out") after \(elapsed)\n--- nspawn output (tail)\n\(child.stdout.lastLines(25))\n--- inside the container\n\(transcript.redactingSecrets)"
        #expect(status == .exited(0), "\(context)")
        #expect(out("done.txt") == "DONE", "the in-container test did not finish\n\(context)")
        #expect(out("user.txt")?.hasPrefix("tokend:") == true, "sysusers did not create the tokend user")
        #expect(out("sockets.txt") == "active\nactive", "tokend.socket and tokend-admin.socket should be listening")
        #expect(out("service-before.txt") == "inactive", "tokend.service ran before the first connection")
        #expect(
            out("healthz.code") == "200",
            "/healthz through /run/tokend/tokend.sock: \(out("healthz.code") ?? "no answer")"
        )
        #expect(out("service.txt") == "active", "systemctl is-active tokend.service: \(out("service.txt") ?? "-")")
        #expect(out("status-text.txt")?.isEmpty == false, "no STATUS= reached systemd")
        #expect(out("admin.code") == "200", "/admin/status through /run/tokend/admin.sock")
        #expect(out("reload.rc") == "0", "systemctl reload tokend (SIGHUP, RELOADING=1 … READY=1) failed")
        #expect(out("reloaded.txt") == "1", "tokend did not log one keyring reload for the one SIGHUP")
        #expect(out("service-after-reload.txt") == "active")
        let stopped = out("stopped.txt") ?? ""
        #expect(
            stopped.contains("Result=success") && stopped.contains("ExecMainStatus=0"),
            "systemctl stop: \(stopped)"
        )
        #expect(out("socket-after-stop.txt") == "active", "the socket must outlive the service")
        let fields = out("journal-fields.txt") ?? ""
        #expect(
            fields.contains("LOGGER_LABEL=tokend"),
            "tokend's journal entries carry no structured fields:\n\(fields)"
        )
        print("nspawn boot test: \(status.map(\.description) ?? "timed out") in \(elapsed)")
    }

    /// Where the toolchain's Swift runtime lives (the debug build's RUNPATH points there).
    static func swiftRuntimeDirectory(of binary: String) -> String? {
        let candidates =
            ["/opt/swift/usr/lib/swift/linux"]
            + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .map {
                URL(fileURLWithPath: String($0)).deletingLastPathComponent().appendingPathComponent("lib/swift/linux")
                    .path
            }
        return candidates.first { FileManager.default.fileExists(atPath: "\($0)/libswiftCore.so") }
    }

    /// Skips the rest of the test, saying why on the console and in the test report.
    private func skip(_ reason: String) throws -> Never {
        print("NspawnBootTests skipped: \(reason)")
        try Test.cancel("skipped: \(reason)")
    }
}

/// A cgroup subtree the test created (in each mounted hierarchy), and its removal.
enum CgroupSubtree {
    static var roots: [String] {
        let hybrid = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"].filter {
            FileManager.default.fileExists(atPath: $0)
        }
        return hybrid.isEmpty ? ["/sys/fs/cgroup"] : hybrid
    }

    /// Directories of the subtree, deepest first.
    static func directories(_ name: String) -> [String] {
        var result: [String] = []
        for root in roots {
            let top = "\(root)/\(name)"
            guard FileManager.default.fileExists(atPath: top) else { continue }
            var stack = [top]
            var found: [String] = []
            while let directory = stack.popLast() {
                found.append(directory)
                for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                    var isDirectory: ObjCBool = false
                    let path = "\(directory)/\(entry)"
                    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                        stack.append(path)
                    }
                }
            }
            result += found.reversed()
        }
        return result
    }

    /// SIGKILL to every pid in the subtree: all of them were started by this test.
    static func killAll(_ name: String) {
        for directory in directories(name) {
            let procs = (try? String(contentsOfFile: "\(directory)/cgroup.procs", encoding: .utf8)) ?? ""
            for pid in procs.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
        }
    }

    /// Removes the (empty) subtree, deepest first; kills stragglers first.
    static func remove(_ name: String) {
        for attempt in 0..<50 {
            var busy = false
            for directory in directories(name) where rmdir(directory) != 0 && errno != ENOENT { busy = true }
            if !busy { return }
            if attempt == 10 { killAll(name) }
            usleep(100_000)
        }
    }
}
