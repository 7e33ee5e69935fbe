internal import CSystemd
import Glibc

/// A listening socket that systemd passed to this process.
public struct ActivatedSocket: Sendable, Hashable {
    /// The file descriptor (3, 4, … in the order of the socket units), close-on-exec.
    public let fd: Int32
    /// Its `FileDescriptorName=` (`api`, `admin` for tokend).
    public let name: String

    public init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }
}

/// Socket activation (sd_listen_fds(3)): the sockets systemd opened for this process.
public enum SocketActivation {
    /// The first passed descriptor (SD_LISTEN_FDS_START).
    public static let firstDescriptor: Int32 = 3

    /// The sockets passed through `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES`, each close-on-exec.
    ///
    /// Returns `[]` when `LISTEN_FDS` is unset (not socket-activated). Afterwards the three variables
    /// are removed from the environment, so no child process takes the sockets for its own.
    ///
    /// - Throws: ``SystemdError`` when `LISTEN_PID` is missing or names another process, when
    ///   `LISTEN_FDNAMES` is missing or has the wrong number of names, or when the values are malformed.
    public static func listenedSockets() throws(SystemdError) -> [ActivatedSocket] {
        var environment: [String: String] = [:]
        for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            environment[name] = SystemCall.environment(name)
        }
        let expected = try self.validate(environment: environment, processID: getpid())
        guard expected > 0 else {
            if environment["LISTEN_FDS"] != nil { _ = sd_listen_fds(1) }  // "0": just clear the environment
            return []
        }

        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        let count = sd_listen_fds_with_names(1, &names)
        defer { tokend_sd_free_names(names) }
        guard count >= 0 else {
            throw .systemCallFailed("sd_listen_fds_with_names", errno: -count)
        }
        guard count == expected else {
            throw .invalidListenEnvironment(
                "LISTEN_FDS announced \(expected) sockets but libsystemd accepted \(count)"
            )
        }

        var sockets: [ActivatedSocket] = []
        sockets.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let fd = self.firstDescriptor + Int32(index)
            // sd_listen_fds() already set FD_CLOEXEC; make sure, since a leaked listener is a security bug.
            let flags = fcntl(fd, F_GETFD)
            guard flags >= 0 else { throw .systemCallFailed("fcntl(\(fd), F_GETFD)", errno: errno) }
            if flags & FD_CLOEXEC == 0, fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0 {
                throw .systemCallFailed("fcntl(\(fd), F_SETFD, FD_CLOEXEC)", errno: errno)
            }
            let name = names?[index].map { String(cString: $0) } ?? ""
            sockets.append(ActivatedSocket(fd: fd, name: name))
        }
        return sockets
    }

    /// Checks the socket activation variables for `processID`; returns how many sockets were passed.
    ///
    /// Zero when `LISTEN_FDS` is unset or `0`.
    public static func validate(environment: [String: String], processID: Int32) throws(SystemdError) -> Int32 {
        guard let fdsText = environment["LISTEN_FDS"] else { return 0 }
        guard let count = Int32(fdsText), count >= 0, count <= Int32.max - self.firstDescriptor else {
            throw .invalidListenEnvironment(
                "LISTEN_FDS=\(Self.quoted(fdsText)) is not a number of sockets (accepted: 0, 1, 2, …)"
            )
        }
        guard let pidText = environment["LISTEN_PID"] else {
            throw .listenPIDMismatch(
                "LISTEN_FDS is set but LISTEN_PID is not; the sockets are not known to be meant for this process"
            )
        }
        guard let pid = Int32(pidText), pid > 0 else {
            throw .invalidListenEnvironment(
                "LISTEN_PID=\(Self.quoted(pidText)) is not a process id (accepted: a positive number)"
            )
        }
        guard pid == processID else {
            throw .listenPIDMismatch(
                "LISTEN_PID=\(pid) but this process is \(processID): the sockets were meant for another process"
            )
        }
        guard count > 0 else { return 0 }
        guard let namesText = environment["LISTEN_FDNAMES"] else {
            throw .listenFDNamesMissing(
                "LISTEN_FDS=\(count) but LISTEN_FDNAMES is not set; name each socket with FileDescriptorName= (api, admin)"
            )
        }
        let names = namesText.split(separator: ":", omittingEmptySubsequences: false)
        guard names.count == Int(count) else {
            throw .listenFDNamesMismatch(
                "LISTEN_FDNAMES has \(names.count) names for LISTEN_FDS=\(count) sockets (accepted: one name per socket, separated by ':')"
            )
        }
        return count
    }

    private static func quoted(_ text: String) -> String {
        "\""
            + String(text.prefix(32)).unicodeScalars.map {
                $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "?"
            }.joined() + "\""
    }
}
