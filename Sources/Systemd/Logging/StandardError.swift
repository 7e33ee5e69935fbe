import Glibc
import Synchronization

/// Whole-line writes to stderr: one lock so concurrent lines never interleave, EINTR retried,
/// partial writes continued.
enum StandardError {
    private static let lock = Mutex(())

    static func write(line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        self.lock.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let (written, code) = SystemCall.retryingEINTR {
                        Glibc.write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                    }
                    if written < 0 {
                        if code == EAGAIN {
                            // A non-blocking stderr that is full: wait for room, but not forever.
                            var descriptor = pollfd(fd: STDERR_FILENO, events: Int16(POLLOUT), revents: 0)
                            if poll(&descriptor, 1, 1_000) > 0 { continue }
                        }
                        return  // Nowhere left to report a failing stderr.
                    }
                    offset += written
                }
            }
        }
    }
}
