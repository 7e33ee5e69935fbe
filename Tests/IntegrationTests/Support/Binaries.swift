import Foundation
import Testing

/// The built executables the integration tests drive: `tokend`, `tokenctl`, `jwt-inspect`.
///
/// Found next to the test bundle (`swift test` runs from the products directory) or in
/// `<package>/.build/debug`, derived from this file's path.
enum Binaries {
    /// `<package>`: this file is `<package>/Tests/IntegrationTests/Support/Binaries.swift`.
    static let packageDirectory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The project's unit files.
    static var systemdDirectory: String { packageDirectory.appendingPathComponent("systemd").path }

    private static let productDirectories: [URL] = {
        var candidates: [URL] = []
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
        }
        #endif
        candidates.append(Bundle.main.bundleURL)
        candidates.append(packageDirectory.appendingPathComponent(".build/debug"))
        return candidates
    }()

    /// The absolute path of product `name`, or an error that says to build it first.
    static func path(_ name: String) throws -> String {
        for directory in productDirectories {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw HarnessError(
            "\(name) not found next to the test bundle nor in .build/debug: run swift build first "
                + "(swift build --product \(name), or swift build --build-tests)"
        )
    }

    static func tokend() throws -> String { try path("tokend") }
    static func tokenctl() throws -> String { try path("tokenctl") }
}

/// A failure of the harness itself (a missing binary, a timeout), with a message for the reader.
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
