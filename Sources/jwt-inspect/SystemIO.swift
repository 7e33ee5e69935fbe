#if canImport(Glibc)
import Glibc
#endif

/// The little I/O jwt-inspect needs, straight from libc so the binary starts fast
/// (no Foundation).
enum SystemIO {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Reads a whole file, refusing anything over `limit` bytes.
    static func readFile(_ path: String, limit: Int = 1 << 20) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot read \(path): \(errorText())") }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            throw Failure(description: "cannot read \(path): it is a directory")
        }
        return try readAll(fd, limit: limit, what: path)
    }

    /// Reads standard input to the end, refusing more than `limit` bytes.
    static func readStandardInput(limit: Int = 1 << 20) throws -> [UInt8] {
        try readAll(0, limit: limit, what: "standard input")
    }

    private static func readAll(_ fd: Int32, limit: Int, what: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot read \(what): \(errorText())")
            }
            out += buffer[0..<n]
            if out.count > limit { throw Failure(description: "\(what) is larger than \(limit) bytes") }
        }
        return out
    }

    /// Names of regular files in a directory.
    static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw Failure(description: "cannot open directory \(path): \(errorText())")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// Seconds since the epoch, with sub-second precision.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func errorText() -> String { String(cString: strerror(errno)) }

    /// Writes `text` and a final newline, if it lacks one, to standard error.
    static func writeError(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        write(line, to: 2)
    }

    /// Writes all of `text` to `fd`, retrying on EINTR; gives up quietly on a closed pipe.
    static func write(_ text: String, to fd: Int32) {
        fflush(nil)
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = posixWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// libc's write(2), outside `SystemIO` whose own `write` would hide it.
private func posixWrite(_ fd: Int32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int {
    write(fd, bytes, count)
}
