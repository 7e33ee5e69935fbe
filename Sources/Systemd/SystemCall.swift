import Glibc

/// Small helpers over libc: environment lookup, EINTR retries, error text, clocks.
enum SystemCall {
    /// The value of an environment variable of this process, or nil.
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// Runs `body` again while it fails with EINTR; returns its result and the errno of a failure.
    static func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> (result: T, errno: Int32) {
        while true {
            let result = body()
            if result >= 0 { return (result, 0) }
            let code = errno
            if code != EINTR { return (result, code) }
        }
    }

    /// `strerror(3)` text with the symbolic number, e.g. "Connection refused (errno 111)".
    static func describe(errno code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        // The XSI strerror_r (what Swift's Glibc module sees) fills `buffer` and returns 0.
        let result = strerror_r(code, &buffer, buffer.count)
        let bytes = buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
        let text = result == 0 && !bytes.isEmpty ? String(decoding: bytes, as: UTF8.self) : "unknown error"
        return "\(text) (errno \(code))"
    }

    /// CLOCK_MONOTONIC in microseconds, as systemd's `MONOTONIC_USEC=` wants it.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    /// CLOCK_REALTIME as seconds and milliseconds since the epoch.
    static func realtime() -> (seconds: Int, milliseconds: Int) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (Int(now.tv_sec), Int(now.tv_nsec) / 1_000_000)
    }

    /// The text of a small file such as one under /proc (at most 64 KiB), or nil.
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65536 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
