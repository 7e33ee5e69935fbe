#if canImport(Glibc)
import Glibc
#endif

/// A fresh private directory (0700) under `$TMPDIR` (or `/tmp`), removed with its contents
/// when the value is released or `remove()` is called.
public final class TemporaryDirectory: Sendable {
    /// The directory's absolute path, without a trailing slash.
    public let path: String

    /// Creates the directory; `prefix` names it for whoever finds one left behind.
    public init(prefix: String = "tokend-test") throws {
        var base = "/tmp"
        if let tmp = getenv("TMPDIR"), let value = String(validatingCString: tmp), !value.isEmpty { base = value }
        while base.count > 1, base.hasSuffix("/") { base.removeLast() }
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer in mkdtemp(buffer.baseAddress!) }
        guard let created else {
            throw TemporaryDirectoryError(
                description: "mkdtemp under \(base) failed: \(String(cString: strerror(errno)))"
            )
        }
        path = String(cString: created)
    }

    /// `name` inside the directory.
    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `bytes` to `name` (mode 0600, created or truncated; missing parent directories
    /// are created 0700) and returns its path.
    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let target = file(name)
        var parent = ""
        for component in name.split(separator: "/").dropLast() {
            parent += "/\(component)"
            mkdir(path + parent, 0o700)
        }
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw TemporaryDirectoryError(description: "cannot create \(target): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard writeAll(fd, bytes) else {
            throw TemporaryDirectoryError(description: "cannot write \(target): \(String(cString: strerror(errno)))")
        }
        return target
    }

    /// Writes `text` as UTF-8 to `name` (mode 0600) and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        try write(name, Array(text.utf8))
    }

    /// Removes the directory and everything in it (also done on release).
    public func remove() {
        Self.removeTree(path)
    }

    deinit { Self.removeTree(path) }

    private static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            if let dir = opendir(path) {
                var children: [String] = []
                while let entry = readdir(dir) {
                    let name = withUnsafePointer(to: entry.pointee.d_name) {
                        $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
                    }
                    if name != "." && name != ".." { children.append(name) }
                }
                closedir(dir)
                for child in children { removeTree("\(path)/\(child)") }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR; false on an error (errno).
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return false }
        offset += written
    }
    return true
}

/// `TemporaryDirectory` could not be created.
public struct TemporaryDirectoryError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Runs `body` with a fresh temporary directory, removed afterwards whatever happens.
public func withTemporaryDirectory<T>(
    prefix: String = "tokend-test",
    _ body: (TemporaryDirectory) async throws -> T
) async throws -> T {
    let directory = try TemporaryDirectory(prefix: prefix)
    defer { directory.remove() }
    return try await body(directory)
}
