import CodedErrors
import Glibc
import Testing

@testable import Systemd

@Suite("SocketActivation reads LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES")
struct SocketActivationTests {
    @Test("not socket-activated: no sockets")
    func notActivated() throws {
        #expect(try SocketActivation.validate(environment: [:], processID: 42) == 0)
        #expect(
            try SocketActivation.validate(environment: ["LISTEN_FDS": "0", "LISTEN_PID": "42"], processID: 42) == 0
        )
    }

    @Test("the sockets systemd passed for this process, one name each")
    func valid() throws {
        let environment = ["LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "api:admin"]
        #expect(try SocketActivation.validate(environment: environment, processID: 42) == 2)
    }

    @Test(
        "a clear error for sockets meant for someone else, unnamed or malformed",
        arguments: [
            (
                ["LISTEN_FDS": "2", "LISTEN_PID": "41", "LISTEN_FDNAMES": "api:admin"],
                SystemdError.Code.listenPIDMismatch
            ),
            (["LISTEN_FDS": "2", "LISTEN_FDNAMES": "api:admin"], .listenPIDMismatch),
            (["LISTEN_FDS": "2", "LISTEN_PID": "42"], .listenFDNamesMissing),
            (["LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "api"], .listenFDNamesMismatch),
            (["LISTEN_FDS": "1", "LISTEN_PID": "42", "LISTEN_FDNAMES": "api:admin"], .listenFDNamesMismatch),
            (["LISTEN_FDS": "two", "LISTEN_PID": "42", "LISTEN_FDNAMES": "api:admin"], .invalidListenEnvironment),
            (["LISTEN_FDS": "-1", "LISTEN_PID": "42"], .invalidListenEnvironment),
            (["LISTEN_FDS": "1", "LISTEN_PID": "me", "LISTEN_FDNAMES": "api"], .invalidListenEnvironment),
        ] as [([String: String], SystemdError.Code)]
    )
    func errors(environment: [String: String], code: SystemdError.Code) {
        #expect {
            try SocketActivation.validate(environment: environment, processID: 42)
        } throws: { error in
            guard let error = error as? SystemdError else { return false }
            return error.code == code && !error.reason.isEmpty
        }
    }

    @Test("the error says which variable is wrong and what is accepted")
    func message() throws {
        do {
            _ = try SocketActivation.validate(environment: ["LISTEN_FDS": "2", "LISTEN_PID": "7"], processID: 42)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("LISTEN_PID=7"))
            #expect(error.description.contains("42"))
        }
        do {
            _ = try SocketActivation.validate(environment: ["LISTEN_FDS": "2", "LISTEN_PID": "42"], processID: 42)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("LISTEN_FDNAMES"))
            #expect(error.description.contains("FileDescriptorName="))
        }
    }

    // libsystemd always starts at fd 3 and reads the real environment: run it in a child process,
    // where changing the environment races with nothing. Descriptors 3 and 4 are usually open
    // there (the runtime's epoll and eventfd); only their close-on-exec flag is touched.
    @Test("listenedSockets() returns fds 3… with their names, close-on-exec, and clears the environment")
    func listenedSocketsInChild() async {
        await #expect(processExitsWith: .success) {
            // Descriptors 3 and 4 not open yet get a socket so libsystemd finds one. `socket`
            // takes the lowest free number, so it never replaces a descriptor the runtime opens
            // meanwhile (a `dup2` onto a number found closed could, and libdispatch then traps).
            while fcntl(3, F_GETFD) < 0 || fcntl(4, F_GETFD) < 0 {
                let socket = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                if socket < 0 { exit(6) }
                if socket > 4 {
                    close(socket)
                    break
                }
            }
            for fd: Int32 in [3, 4] {
                _ = fcntl(fd, F_SETFD, 0)  // clear FD_CLOEXEC: the call must set it
            }
            setenv("LISTEN_FDS", "2", 1)
            setenv("LISTEN_PID", "\(getpid())", 1)
            setenv("LISTEN_FDNAMES", "api:admin", 1)
            let sockets = try SocketActivation.listenedSockets()
            guard sockets == [ActivatedSocket(fd: 3, name: "api"), ActivatedSocket(fd: 4, name: "admin")] else {
                exit(2)
            }
            for socket in sockets where fcntl(socket.fd, F_GETFD) & FD_CLOEXEC == 0 { exit(3) }
            for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] where getenv(name) != nil { exit(4) }
            // A second call finds nothing: the sockets cannot be taken twice.
            guard try SocketActivation.listenedSockets().isEmpty else { exit(5) }
            exit(0)
        }
    }

    @Test("listenedSockets() refuses sockets meant for another process and leaves them alone")
    func listenedSocketsForeignPID() async {
        await #expect(processExitsWith: .success) {
            setenv("LISTEN_FDS", "1", 1)
            setenv("LISTEN_PID", "\(getpid() + 1)", 1)
            setenv("LISTEN_FDNAMES", "api", 1)
            do {
                _ = try SocketActivation.listenedSockets()
                exit(2)
            } catch let error as SystemdError {
                guard error.code == .listenPIDMismatch else { exit(3) }
            } catch {
                exit(3)
            }
            exit(getenv("LISTEN_FDS") == nil ? 4 : 0)
        }
    }

    @Test("without LISTEN_FDS there is nothing to adopt")
    func listenedSocketsUnset() async {
        await #expect(processExitsWith: .success) {
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDNAMES")
            exit(try SocketActivation.listenedSockets().isEmpty ? 0 : 2)
        }
    }
}
