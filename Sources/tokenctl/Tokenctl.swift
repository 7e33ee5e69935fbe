import ArgumentParser
import CodedErrors
import JOSE
import TokenClient

#if canImport(Glibc)
import Glibc
#endif

/// The operator's client: talks to tokend's admin socket.
@main
struct Tokenctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenctl",
        abstract: "Operate tokend over its admin socket: keys, tokens, sign-outs.",
        discussion:
            "The admin socket is --socket, else TOKEND_ADMIN_SOCKET, else ./run/tokend-admin.sock (make run) when it "
            + "exists, else /run/tokend/admin.sock (the systemd units).",
        version: "0.1.0",
        subcommands: [Status.self, Fleet.self, Keys.self, Token.self, Subject.self, User.self]
    )
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("socket"),
        help:
            "Admin socket path (default $TOKEND_ADMIN_SOCKET, else ./run/tokend-admin.sock if it exists, else /run/tokend/admin.sock).",
        completion: .file()
    )
    var socket: String?

    @Flag(help: "Print the daemon's JSON answer instead of a table.")
    var json = false

    /// Where tokenctl looks for the admin socket when neither `--socket` nor
    /// TOKEND_ADMIN_SOCKET says: a development tree's (`make run`), then a system install's.
    static let defaultSockets = ["./run/tokend-admin.sock", "/run/tokend/admin.sock"]

    var socketPath: String {
        if let socket { return socket }
        if let variable = getenv("TOKEND_ADMIN_SOCKET") { return String(cString: variable) }
        return Self.defaultSockets.first { access($0, F_OK) == 0 } ?? Self.defaultSockets[0]
    }

    /// Sends a request and returns the JSON object answered; a non-2xx answer becomes an
    /// error carrying the daemon's description. `timeout` covers a `--wait`.
    func call(_ request: AdminRequest, timeout: Duration = .seconds(30)) throws -> JSONObject {
        let client = UnixHTTPClient(path: socketPath, timeout: timeout)
        defer { client.close() }
        let answer: AdminAnswer
        do {
            answer = try client.send(request)
        } catch {
            if socket == nil, getenv("TOKEND_ADMIN_SOCKET") == nil,
                Self.defaultSockets.allSatisfy({ access($0, F_OK) != 0 })
            {
                throw CommandFailure(
                    message: "no admin socket at \(Self.defaultSockets.joined(separator: " or ")): is tokend running? "
                        + "Name its socket with --socket or TOKEND_ADMIN_SOCKET"
                )
            }
            throw CommandFailure(message: error.reason)
        }
        if answer.status == 504, answer.object["error"]?.stringValue == "fleet_wait_timeout" {
            throw CommandFailure(
                message: "not in force everywhere yet: \(answer.refusal)",
                json: json ? JSONValue.object(answer.object).prettyText() : nil
            )
        }
        guard answer.succeeded else {
            throw CommandFailure(
                message: "tokend refused: \(answer.refusal)",
                json: json ? JSONValue.object(answer.object).prettyText() : nil
            )
        }
        return answer.object
    }

    func emit(_ object: JSONObject, text: () -> String) {
        print(json ? JSONValue.object(object).prettyText() : text())
    }
}

/// A failure with a message for stderr (and the daemon's JSON with --json).
struct CommandFailure: Error, CustomStringConvertible {
    let message: String
    var json: String?
    var description: String { message }
}

/// Reads a token from the argument or, for "-" or none, standard input.
func readToken(_ argument: String?) throws -> String {
    if let argument, argument != "-" { return argument.trimmedToken }
    guard isatty(0) == 0 else { throw ValidationError("pass the token as an argument or on standard input") }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(0, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
        if bytes.count > 65536 { throw ValidationError("standard input is larger than 64 KiB") }
    }
    return String(decoding: bytes, as: UTF8.self).trimmedToken
}

extension String {
    /// Without whitespace and a `Bearer ` prefix.
    var trimmedToken: String {
        var text = Substring(self)
        while let c = text.first, c.isWhitespace { text = text.dropFirst() }
        while let c = text.last, c.isWhitespace { text = text.dropLast() }
        if text.lowercased().hasPrefix("bearer ") { text = text.dropFirst(7) }
        return String(text)
    }
}

/// Aligned columns for people.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { $0.element.padding(widths[$0.offset], last: $0.offset == row.count - 1) }.joined(
            separator: "  "
        )
    }.joined(separator: "\n")
}

extension String {
    func padding(_ width: Int, last: Bool) -> String {
        last || count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

extension Tokenctl {
    /// Flags that take no value; every other `--name` takes the next argument as its value.
    static let valuelessFlags: Set<String> = [
        "--json", "--force", "--refresh", "--help", "-h", "--version", "--wait",
    ]

    /// Moves values that begin with `-` (a kid is an RFC 7638 thumbprint in base64url, and a
    /// refresh token from before schema v5 is random base64url: one in 64 begins with `-`)
    /// after a `--`, so the argument parser reads them as the positional values they are.
    /// Without this, `tokenctl keys revoke -AB…h…` was read as a cluster of short options
    /// holding `-h`: it printed help and exited 0 without revoking anything.
    static func positionalsAfterDashes(_ arguments: [String]) -> [String] {
        guard !arguments.contains("--") else { return arguments }
        var kept: [String] = []
        var moved: [String] = []
        var previousTakesValue = false
        for argument in arguments {
            defer {
                previousTakesValue =
                    argument.hasPrefix("--") && !argument.contains("=") && !valuelessFlags.contains(argument)
            }
            if !previousTakesValue, argument.hasPrefix("-"), !argument.hasPrefix("--"), argument.utf8.count > 2 {
                moved.append(argument)
            } else {
                kept.append(argument)
            }
        }
        return moved.isEmpty ? arguments : kept + ["--"] + moved
    }

    static func main() {
        do {
            var command = try parseAsRoot(positionalsAfterDashes(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let failure as CommandFailure {
            if let json = failure.json { print(json) }
            var text = "tokenctl: \(failure.message)\n"
            fflush(nil)
            text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
            Glibc.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show whether tokend serves, its keys and revocation counts."
    )
    @OptionGroup var options: GlobalOptions

    func run() throws {
        let status = try options.call(.status)
        options.emit(status) {
            var lines = [
                // "serving", or the state and what fails ("degraded: writes failing (…)").
                "status     \(status["reason"]?.stringValue ?? status["status"]?.stringValue ?? "?")",
                "issuer     \(status["issuer"]?.stringValue ?? "?")",
                "revoked    \(status["revoked_access_tokens"]?.numberValue?.text ?? "0") access tokens, \(status["ended_sessions"]?.numberValue?.text ?? "0") sessions, \(status["signed_out_subjects"]?.numberValue?.text ?? "0") signed-out users",
                "",
            ]
            lines.append(Keys.List.render(status))
            return lines.joined(separator: "\n")
        }
    }
}

/// `--wait` on the commands that revoke (issue 12 item 4).
struct WaitOptions: ParsableArguments {
    @Flag(
        help: ArgumentHelp(
            "Return only once every live node of the fleet has applied the change; exit 1 naming the nodes that have not within --wait-timeout.",
            discussion:
                "A node whose heartbeat stopped is no longer waited for after max(5s, TOKEND_MAX_STALENESS + 1s): by then it refuses token checks until it has caught up. With SQLite (one node) there is nothing to wait for."
        )
    )
    var wait = false

    @Option(name: .customLong("wait-timeout"), help: "How long --wait waits (default 40s, at most 300s).")
    var waitTimeout: String?

    func validate() throws {
        if waitTimeout != nil, !wait { throw ValidationError("--wait-timeout needs --wait") }
        if let waitTimeout, Self.seconds(waitTimeout) == nil {
            throw ValidationError("--wait-timeout must be a duration up to 300s, like 10s, 500ms or 1m")
        }
    }

    /// The `?wait=` value, or nil without `--wait`.
    var parameter: String? { wait ? (waitTimeout ?? "40s") : nil }

    /// The client's timeout: the wait and 10 s more.
    var clientTimeout: Duration {
        .milliseconds(Int64(((parameter.flatMap(Self.seconds) ?? 0) + 30) * 1000))
    }

    static func seconds(_ text: String) -> Double? {
        if text.hasSuffix("ms"), let value = Int64(text.dropLast(2)), value >= 0, value <= 300_000 {
            return Double(value) / 1000
        }
        guard let value = DurationText.parse(text), value <= 300 else { return nil }
        return Double(value)
    }

    /// "; in force on 3 nodes (not waited for: …)" from the answer's `fleet_wait`.
    static func summary(_ body: JSONObject) -> String {
        guard let wait = body["fleet_wait"]?.objectValue else { return "" }
        guard wait["fleet"]?.boolValue != false else { return "; one node (no fleet), nothing to wait for" }
        let applied = wait["applied"]?.arrayValue?.count ?? 0
        var text = "; in force on every live node (\(applied))"
        let stopped = (wait["not_waited_for"]?.arrayValue ?? []).compactMap(\.stringValue)
        if !stopped.isEmpty { text += "; not waited for (heartbeat stopped): " + stopped.joined(separator: ", ") }
        return text
    }
}

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the nodes of the fleet: heartbeat, lag and clock offset.",
        discussion:
            "A node whose heartbeat is older than 5s shows as stopped. With SQLite there is one node and no fleet."
    )
    @OptionGroup var options: GlobalOptions

    func run() throws {
        let body = try options.call(.fleet)
        options.emit(body) { Fleet.render(body) }
    }

    static func render(_ body: JSONObject) -> String {
        guard body["fleet"]?.boolValue == true else {
            return "no fleet: \(body["reason"]?.stringValue ?? "this node keeps its own store")"
        }
        let rows = (body["nodes"]?.arrayValue ?? []).compactMap(\.objectValue).map { node -> [String] in
            let seen = node["seconds_since_seen"]?.numberValue?.doubleValue ?? 0
            let offset = node["clock_offset_seconds"]?.numberValue?.doubleValue
            let me = node["this_node"]?.boolValue == true ? "*" : ""
            return [
                String((node["id"]?.stringValue ?? "?").prefix(8)) + me,
                node["host"]?.stringValue ?? "?",
                node["pid"]?.numberValue?.text ?? "?",
                node["state"]?.stringValue ?? "?",
                String(format1(seen)) + "s ago",
                "\(node["behind_events"]?.numberValue?.text ?? "?") events / \(format1(node["behind_seconds"]?.numberValue?.doubleValue ?? 0))s",
                offset.map { ($0 >= 0 ? "+" : "") + format3($0) + "s" } ?? "-",
                node["applied"]?.stringValue ?? "?",
                node["version"]?.stringValue ?? "?",
            ]
        }
        return table(["NODE", "HOST", "PID", "STATE", "LAST SEEN", "BEHIND", "CLOCK", "APPLIED", "VERSION"], rows)
            + "\n\nnewest followed event \(body["newest_event"]?.stringValue ?? "none"); * is the node answering"
    }

    static func format1(_ value: Double) -> String { fixed(value, digits: 1) }
    static func format3(_ value: Double) -> String { fixed(value, digits: 3) }

    static func fixed(_ value: Double, digits: Int) -> String {
        var scale: Double = 1
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        let fraction = String(scaled % Int64(scale))
        return (value < 0 && scaled > 0 ? "-" : "") + "\(whole)."
            + String(repeating: "0", count: digits - fraction.count) + fraction
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, rotate and revoke signing keys.",
        subcommands: [List.self, Rotate.self, Revoke.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keyring: kid, algorithm, state and times.")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            let keys = try options.call(.keys)
            options.emit(keys) { List.render(keys) }
        }

        static func render(_ body: JSONObject) -> String {
            let rows = (body["keys"]?.arrayValue ?? []).compactMap(\.objectValue).map { key in
                [
                    key["kid"]?.stringValue ?? "?", key["alg"]?.stringValue ?? "?", key["state"]?.stringValue ?? "?",
                    key["created"]?.stringValue ?? "-", key["activated"]?.stringValue ?? "-",
                ]
            }
            var text = table(["KID", "ALG", "STATE", "CREATED", "ACTIVATED"], rows)
            if let safe = body["rotation_safe_at"]?.stringValue { text += "\n\nrotation is safe from \(safe)" }
            let waiting = (body["rotation_waits_for"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !waiting.isEmpty {
                text +=
                    "\n\nrotation waits until every live node publishes the next key; not yet: "
                    + waiting.joined(separator: ", ")
            }
            if let unknown = body["rotation_fleet_unknown"]?.stringValue { text += "\n(\(unknown))" }
            return text
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Promote the next key to current.",
            discussion:
                "Refused while the next key has been published for less than the JWKS max-age, unless --force (emergency)."
        )
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Rotate even though verifiers may not have fetched the next key yet.")
        var force = false

        func run() throws {
            let body = try options.call(.rotateKeys(force: force))
            options.emit(body) {
                let change = body["change"]?.objectValue
                return
                    "rotated: current \(change?["current"]?.stringValue ?? "?"), previous \(change?["previous"]?.stringValue ?? "?"), next \(change?["next"]?.stringValue ?? "?")\n\n"
                    + List.render(body)
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key now: every token it signed is refused at once."
        )
        @OptionGroup var options: GlobalOptions
        @OptionGroup var waiting: WaitOptions
        @Argument(help: "The kid to revoke.") var kid: String

        func validate() throws {
            guard KeyringDocument.isSafeKid(kid) else { throw ValidationError("\(kid) is not a kid (A-Z a-z 0-9 - _)") }
        }

        func run() throws {
            let body = try options.call(.revokeKey(kid, wait: waiting.parameter), timeout: waiting.clientTimeout)
            options.emit(body) {
                let change = body["change"]?.objectValue
                var text = "revoked \(kid)"
                if let current = change?["current"]?.stringValue { text += "; \(current) now signs" }
                return text + WaitOptions.summary(body) + "\n\n" + List.render(body)
            }
        }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue, introspect, revoke and explain tokens.",
        subcommands: [Issue.self, Introspect.self, Revoke.self, Explain.self]
    )

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue an access token (and a refresh token) for a subject."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Subject (sub).") var sub: String
        @Option(help: "Space-separated scope.") var scope: String?
        @Option(help: "Lifetime: 1h, 24h, 30d or a duration (default the access policy).") var policy: String?
        @Option(name: .customLong("client-id"), help: "client_id claim.") var clientID: String?
        @Flag(help: "Also issue a refresh token.") var refresh = false

        func run() throws {
            let body = try options.call(
                .issueToken(subject: sub, scope: scope, policy: policy, clientID: clientID, refresh: refresh)
            )
            options.emit(body) {
                var lines = [body["access_token"]?.stringValue ?? ""]
                if let refresh = body["refresh_token"]?.stringValue { lines.append("refresh_token: \(refresh)") }
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Introspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask tokend whether a token is active (RFC 7662).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The token, or - for standard input.") var token: String?

        func run() throws {
            let body = try options.call(.introspect(try readToken(token)))
            options.emit(body) {
                guard body["active"]?.boolValue == true else { return "inactive" }
                let rows = body.members.filter { $0.key != "active" }.map {
                    [$0.key, $0.value.stringValue ?? $0.value.compactText]
                }
                return "active\n" + table(["CLAIM", "VALUE"], rows)
            }
            if body["active"]?.boolValue != true { throw ExitCode(1) }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an access or refresh token (RFC 7009).")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var waiting: WaitOptions
        @Argument(help: "The token, or - for standard input.") var token: String?

        func run() throws {
            let body = try options.call(
                .revokeToken(try readToken(token), wait: waiting.parameter),
                timeout: waiting.clientTimeout
            )
            var shown = body
            shown["revoked"] = .bool(true)
            options.emit(shown) {
                "revoked (or unknown, which RFC 7009 treats the same)" + WaitOptions.summary(body)
            }
        }
    }

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every check tokend makes on a token and its result."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The token, or - for standard input.") var token: String?

        func run() throws {
            let body = try options.call(.explain(try readToken(token)))
            options.emit(body) {
                let rows = (body["checks"]?.arrayValue ?? []).compactMap(\.objectValue).map {
                    [$0["status"]?.stringValue ?? "?", $0["name"]?.stringValue ?? "?", $0["detail"]?.stringValue ?? ""]
                }
                return table(["RESULT", "CHECK", "DETAIL"], rows) + "\n\n" + (body["verdict"]?.stringValue ?? "")
            }
        }
    }
}

struct Subject: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Act on every token of a user.",
        subcommands: [Logout.self]
    )

    struct Logout: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a user out everywhere: every token issued to them until now stops working."
        )
        @OptionGroup var options: GlobalOptions
        @OptionGroup var waiting: WaitOptions
        @Argument(help: "The subject (user id).") var subject: String

        func run() throws {
            let body = try options.call(.logout(subject, wait: waiting.parameter), timeout: waiting.clientTimeout)
            options.emit(body) { "\(subject) signed out everywhere" + WaitOptions.summary(body) }
        }
    }
}

/// Reads a password from standard input (never from the command line, where `ps` shows it).
func readPassword() throws -> String {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(0, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
        if bytes.count > 4096 { throw ValidationError("the password on standard input is longer than 4096 bytes") }
    }
    while bytes.last == 0x0A || bytes.last == 0x0D { bytes.removeLast() }
    guard !bytes.isEmpty else {
        throw ValidationError("give the password on standard input, e.g. printf %s \"$PASSWORD\" | tokenctl …")
    }
    return String(decoding: bytes, as: UTF8.self)
}

struct User: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, find, activate, deactivate and sign out users of the account APIs.",
        subcommands: [Create.self, List.self, Show.self, Activate.self, Deactivate.self, Logout.self, SetPassword.self]
    )

    static func render(_ user: JSONObject) -> String {
        let rows = user.members.map { [$0.key, $0.value.stringValue ?? $0.value.compactText] }
        return table(["FIELD", "VALUE"], rows)
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a user without the sign-up rate limits; the password is read from standard input."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Username.") var username: String
        @Option(help: "Email address.") var email: String
        @Option(name: .customLong("first-name")) var firstName: String?
        @Option(name: .customLong("last-name")) var lastName: String?
        @Option(help: "Role (v1 rol).") var role: String?

        func run() throws {
            let user = try options.call(
                .createUser(
                    username: username,
                    email: email,
                    password: try readPassword(),
                    firstName: firstName,
                    lastName: lastName,
                    role: role
                )
            )
            options.emit(user) { "created\n" + User.render(user) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List users, optionally searching by email or username."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Part of the email.") var email: String?
        @Option(help: "Part of the username.") var username: String?
        @Option(help: "active or inactive.") var status: String?
        @Option(help: "At most this many (1-1000).") var limit: Int = 100

        func run() throws {
            let body = try options.call(.users(email: email, username: username, status: status, limit: limit))
            options.emit(body) {
                let rows = (body["users"]?.arrayValue ?? []).compactMap(\.objectValue).map {
                    [
                        $0["id"]?.stringValue ?? "?", $0["numericId"]?.numberValue?.text ?? "?",
                        $0["username"]?.stringValue ?? "?",
                        $0["email"]?.stringValue ?? "?", $0["status"]?.stringValue ?? "?",
                        $0["lastLogin"]?.stringValue ?? "-",
                    ]
                }
                return table(["ID", "NUMBER", "USERNAME", "EMAIL", "STATUS", "LAST LOGIN"], rows)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one user (by public id or numeric id).")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String

        func run() throws {
            let user = try options.call(.user(id))
            options.emit(user) { User.render(user) }
        }
    }

    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a user sign in again.")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String

        func run() throws {
            let user = try options.call(.activateUser(id))
            options.emit(user) { "activated \(user["username"]?.stringValue ?? id)" }
        }
    }

    struct Deactivate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Refuse a user's sign-ins and refreshes; every token issued to them stops working at once."
        )
        @OptionGroup var options: GlobalOptions
        @OptionGroup var waiting: WaitOptions
        @Argument var id: String

        func run() throws {
            let user = try options.call(.deactivateUser(id, wait: waiting.parameter), timeout: waiting.clientTimeout)
            options.emit(user) {
                "deactivated \(user["username"]?.stringValue ?? id); their tokens are revoked"
                    + WaitOptions.summary(user)
            }
        }
    }

    struct Logout: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a user out everywhere.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var waiting: WaitOptions
        @Argument var id: String

        func run() throws {
            let body = try options.call(.logout(id, wait: waiting.parameter), timeout: waiting.clientTimeout)
            options.emit(body) { "\(id) signed out everywhere" + WaitOptions.summary(body) }
        }
    }

    struct SetPassword: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-password",
            abstract: "Set a user's password, read from standard input; their existing tokens stop working."
        )
        @OptionGroup var options: GlobalOptions
        @Argument var id: String

        func run() throws {
            let body = try options.call(.setPassword(id, password: try readPassword()))
            options.emit(body) { "password changed for \(body["username"]?.stringValue ?? id)" }
        }
    }
}
