import Foundation
import TokenTestSupport

/// The repository's unit files (in `Binaries.systemdDirectory`) and the systemd tools that
/// check them.
enum UnitFiles {
    static let units = ["tokend.service", "tokend.socket", "tokend-admin.socket"]

    static func text(_ name: String) throws -> String {
        try String(contentsOfFile: Binaries.systemdDirectory + "/" + name, encoding: .utf8)
    }

    /// Runs a systemd tool with `directory` as its working directory (and the place its output
    /// is kept), without a pager or colours.
    static func run(
        _ tool: String,
        _ arguments: [String],
        in directory: TemporaryDirectory
    ) async throws
        -> CommandResult
    {
        try await TokenTestSupport.run(
            tool,
            arguments,
            environment: minimalEnvironment(["SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"]),
            in: directory.path,
            currentDirectory: directory.path
        )
    }

    /// `Key=value` assignments of a unit file, in order (comments and sections dropped).
    static func assignments(_ name: String) throws -> [(key: String, value: String)] {
        try text(name).split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), !trimmed.hasPrefix(";"), !trimmed.hasPrefix("["),
                let equals = trimmed.firstIndex(of: "=")
            else { return nil }
            return (String(trimmed[..<equals]), String(trimmed[trimmed.index(after: equals)...]))
        }
    }

    static func values(_ key: String, in name: String) throws -> [String] {
        try assignments(name).filter { $0.key == key }.map(\.value)
    }
}
