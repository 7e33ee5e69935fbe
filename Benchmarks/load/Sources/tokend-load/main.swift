#if canImport(Glibc)
import Glibc
#endif

let usage = """
    tokend-load — HTTP/1.1 keep-alive load over a Unix socket, one thread per connection.

    tokend-load [run] --socket PATH --connections N --seconds S [--warmup S] [--rate R/s]
                [--label TEXT] [--no-preflight] WORKLOAD
      WORKLOAD is one of
        --mode introspect-unique --tokens FILE [--token-offset K] [--path /oauth2/introspect]
            every request carries the next unused token of FILE (connection c sends tokens
            K+c, K+c+N, …); expects 200 and "active":true
        --mode introspect-repeated (--token JWT | --tokens FILE) [--path /oauth2/introspect]
            the same token (FILE's first line) on every request; expects 200 and "active":true
        --mode signin --users U [--user-prefix P] [--password PW] [--dialect appmixer|v1|classic]
            connection c signs in as user P<c mod U> (email P<i>@load.example, username P<i>);
            expects 200 and the dialect's token member
        --mode refresh --admin-socket PATH [--subject-prefix P]
            issues one refresh family per connection through the admin socket (POST /admin/tokens,
            subjects P<c>), then each connection rotates its family back to back with
            POST /oauth2/token grant_type=refresh_token, presenting the newest refresh token it
            got; anything but 200 with a new refresh_token is an error and ends that connection
            (one thread per connection; with --busy-poll each polls its socket, yielding between
            polls, instead of sleeping in read)
        --request-file F [--expect-status CODE] [--expect-body TEXT]
            F's bytes (a whole HTTP/1.1 request) sent as they are
      Requests go back to back on each connection, all connections driven by one thread's
      epoll loop (as wrk does; --thread-per-connection: one blocking thread per connection
      instead; --busy-poll: the loop polls without sleeping, --no-busy-poll overrides it); with --rate, one thread per connection, each paced to
      R/N per second and latency counts from the scheduled send time. Only responses that
      complete inside the measuring window (after --warmup, default 1 s) count. A response
      with another status or without the expected text is an error; the last line is
      RESULT key=value …; the exit status is 2 when there were errors.

    tokend-load tokens --keys-dir DIR --count N --out FILE [--threads T] [--issuer ISS]
                [--audience AUD] [--lifetime SECONDS]
      signs N distinct ES256 (the current key's algorithm) access tokens with the current key
      of tokend's key directory, claims as tokend issues them; one per line.

    tokend-load sqlite-rotate --schema-from TOKEND_DB --db PATH [--threads T] [--seconds S]
                [--warmup S] [--sealed-bytes B] [--label TEXT] [--transaction one-step|read-decide]
      the raw SQLite reference for refresh rotations: copies tokend's schema from TOKEND_DB (read
      only) into a new PATH (WAL, synchronous = FULL), then T threads (one connection and family
      each, one writer at a time) run a rotation and its event back to back, prepared statements
      on libsqlite3: the four statements of SQLiteTokenStore.rotateIfCurrent (one-step, the
      default) or the seven of updateRefreshToken's rotation (read-decide).
      --serve handoff|inline [--request-work-us N] [--client-core C]: the same transaction
      served to one client thread on core C (default 1) over a Unix socket, as a bare model of a
      server: a thread polling the socket reads each 400-byte request, spins N µs (default 0;
      what HTTP, the grant and its cryptography would cost), and either hands the rotation to a
      writer thread and writes the 1,500-byte answer when it is told the commit is done
      (handoff, the shape DESIGN §9 requires: no store write on an event loop) or runs it
      itself (inline).

    tokend-load propagation --revoke-socket PATH --admin-socket PATH --watch-sockets P1,P2,…
                [--count N] [--poll-us U] [--jitter-ms J] [--timeout S] [--label TEXT]
      a fleet's propagation (issue 12): N times, a token issued on the revoking node (admin
      socket) and introspected active on each watched node, then after a random pause of up to
      J ms (default 100) revoked on the revoking node's API socket; from the revocation's 200,
      each watched node is introspected every U µs (default 500) until it says
      {"active":false}: that time is its sample. NODE lines per watched node, then RESULT with
      p50/p90/p99/max over all; a node still active after S s (default 10) is a miss.

    tokend-load revocations --socket PATH --admin-socket PATH --seconds S [--rate R/s]
                [--label TEXT]
      a revocation stream on one node: issue (admin socket) and revoke (API socket) an access
      token, back to back or R per second, for S seconds.

    tokend-load argon2-rate [--seconds S] [--threads T] [--memory-kib M] [--iterations T]
                [--parallelism P]
      libargon2's raw Argon2id rate (argon2id_hash_raw) on T threads (default m=19456, t=2, p=1).
    """

struct Arguments {
    var values: [String: String] = [:]
    var flags: Set<String> = []
    static let flagNames: Set<String> = [
        "--no-preflight", "--thread-per-connection", "--busy-poll", "--no-busy-poll", "--help", "-h",
    ]

    init(_ list: ArraySlice<String>) throws {
        var i = list.startIndex
        while i < list.endIndex {
            let name = list[i]
            guard name.hasPrefix("-") else { throw LoadError("unexpected argument \(name)\n\n\(usage)") }
            if Arguments.flagNames.contains(name) {
                flags.insert(name)
                i += 1
                continue
            }
            guard i + 1 < list.endIndex else { throw LoadError("\(name) needs a value") }
            values[name] = list[i + 1]
            i += 2
        }
    }

    func string(_ name: String) -> String? { values[name] }

    func required(_ name: String) throws -> String {
        guard let v = values[name] else { throw LoadError("\(name) is required\n\n\(usage)") }
        return v
    }

    func int(_ name: String, default value: Int? = nil, range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let text = values[name] else {
            if let value { return value }
            throw LoadError("\(name) is required")
        }
        guard let n = Int(text), range.contains(n) else {
            throw LoadError("\(name) must be a whole number in \(range)")
        }
        return n
    }

    func double(_ name: String, default value: Double? = nil) throws -> Double? {
        guard let text = values[name] else { return value }
        guard let n = Double(text), n >= 0 else { throw LoadError("\(name) must be a number ≥ 0") }
        return n
    }
}

func runLoad(_ arguments: Arguments) throws -> Int32 {
    let socket = try arguments.required("--socket")
    let connections = try arguments.int("--connections", default: 1, range: 1...4096)
    let seconds = try arguments.double("--seconds", default: 10)!
    let warmup = try arguments.double("--warmup", default: 1)!
    let rate = try arguments.double("--rate")
    guard seconds > 0 else { throw LoadError("--seconds must be > 0") }
    let path = arguments.string("--path") ?? "/oauth2/introspect"
    let plan: RequestPlan
    let preflightRequest: [UInt8]
    var expect = Expectation(status: 200, bodyContains: Array(#""active":true"#.utf8))
    var label: String
    if let file = arguments.string("--request-file") {
        let request = try readFile(file)
        plan = .fixed([request])
        preflightRequest = request
        expect = Expectation(
            status: try arguments.int("--expect-status", default: 200, range: 100...599),
            bodyContains: Array((arguments.string("--expect-body") ?? "").utf8)
        )
        label = "request-file"
    } else {
        let mode = try arguments.required("--mode")
        label = mode
        switch mode {
        case "introspect-unique":
            let tokens = try TokenList(file: try arguments.required("--tokens"))
            let offset = try arguments.int("--token-offset", default: 0) % tokens.count
            plan = .uniqueTokens(tokens, path: path, offset: offset)
            // The list's last token: sent twice only if the run wraps the whole list.
            preflightRequest = tokens.withToken(tokens.count - 1) { RequestPlan.introspection(path: path, token: $0) }
        case "introspect-repeated":
            let token: [UInt8]
            if let text = arguments.string("--token") {
                token = Array(text.utf8)
            } else {
                token = try TokenList(file: try arguments.required("--tokens")).withToken(0) { Array($0) }
            }
            let request = token.withUnsafeBytes { RequestPlan.introspection(path: path, token: $0) }
            plan = .fixed([request])
            preflightRequest = request
        case "refresh":
            let tokens = try RefreshRunner.issue(
                adminSocket: try arguments.required("--admin-socket"),
                count: connections,
                subjectPrefix: arguments.string("--subject-prefix") ?? "load-refresh-"
            )
            let settings = RunSettings(
                socket: socket,
                connections: connections,
                seconds: seconds,
                warmup: warmup,
                rate: nil,
                label: arguments.string("--label") ?? mode
            )
            let summary = try RefreshRunner.run(
                settings,
                tokens: tokens,
                busyPoll: arguments.flags.contains("--busy-poll") && !arguments.flags.contains("--no-busy-poll")
            )
            print(summary.report(), terminator: "")
            fflush(nil)
            return summary.verdict == "ok" ? 0 : 2
        case "signin":
            let users = try arguments.int("--users", range: 1...1_000_000)
            let prefix = arguments.string("--user-prefix") ?? "load-user-"
            let password = arguments.string("--password") ?? "load-password-123"
            let dialect = arguments.string("--dialect") ?? "appmixer"
            let requests: [[UInt8]] = try (0..<min(users, connections)).map { c in
                let email = "\(prefix)\(c % users)@load.example"
                switch dialect {
                case "appmixer":
                    return RequestPlan.json(
                        path: "/user/auth",
                        body: #"{"email":"\#(email)","password":"\#(password)"}"#
                    )
                case "classic":
                    return RequestPlan.json(
                        path: "/api/user/login",
                        body: #"{"email":"\#(email)","password":"\#(password)"}"#
                    )
                case "v1":
                    return RequestPlan.json(
                        path: "/api/v1/auths/sign-in",
                        body: #"{"username":"\#(prefix)\#(c % users)","password":"\#(password)"}"#
                    )
                default:
                    throw LoadError("--dialect must be appmixer, v1 or classic")
                }
            }
            plan = .fixed(requests)
            preflightRequest = requests[0]
            expect = Expectation(
                status: 200,
                bodyContains: Array((dialect == "v1" ? #""accessToken""# : #""token""#).utf8)
            )
            label = "signin-\(dialect)"
        default:
            throw LoadError("--mode must be introspect-unique, introspect-repeated, signin or refresh\n\n\(usage)")
        }
    }
    if let text = arguments.string("--label") { label = text }
    if !arguments.flags.contains("--no-preflight") {
        try LoadRunner.preflight(socket: socket, request: preflightRequest, expect: expect)
    }
    let settings = RunSettings(
        socket: socket,
        connections: connections,
        seconds: seconds,
        warmup: warmup,
        rate: rate,
        label: label
    )
    let threaded = arguments.flags.contains("--thread-per-connection")
    let summary =
        rate == nil && !threaded
        ? try MultiplexedRunner.run(
            settings,
            plan: plan,
            expect: expect,
            busyPoll: arguments.flags.contains("--busy-poll") && !arguments.flags.contains("--no-busy-poll")
        )
        : try LoadRunner.run(settings, plan: plan, expect: expect)
    print(summary.report(), terminator: "")
    fflush(nil)
    return summary.verdict == "ok" ? 0 : 2
}

func mintTokens(_ arguments: Arguments) throws -> Int32 {
    var settings = TokenMint.Settings(
        keysDirectory: try arguments.required("--keys-dir"),
        count: try arguments.int("--count", range: 1...50_000_000),
        threads: try arguments.int("--threads", default: 2, range: 1...256)
    )
    if let issuer = arguments.string("--issuer") { settings.issuer = issuer }
    settings.audience = arguments.string("--audience")
    settings.lifetime = Int64(try arguments.int("--lifetime", default: 3600, range: 60...(30 * 86400)))
    let out = try arguments.required("--out")
    let started = monotonicNanos()
    let tokens = try TokenMint.generate(settings)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(tokens.reduce(0) { $0 + $1.count + 1 })
    for token in tokens {
        bytes.append(contentsOf: token)
        bytes.append(UInt8(ascii: "\n"))
    }
    try writeFile(out, bytes)
    let elapsed = Double(monotonicNanos() - started) / 1e9
    print(
        "RESULT label=tokens count=\(tokens.count) token_bytes=\(tokens.first?.count ?? 0) seconds=\(elapsed.fixed(2)) out=\(out)"
    )
    return 0
}

func sqliteRotate(_ arguments: Arguments) throws -> Int32 {
    var settings = SQLiteRotate.Settings()
    settings.schemaFrom = try arguments.required("--schema-from")
    settings.database = try arguments.required("--db")
    settings.threads = try arguments.int("--threads", default: 1, range: 1...1024)
    settings.seconds = try arguments.double("--seconds", default: 5)!
    settings.warmup = try arguments.double("--warmup", default: 1)!
    settings.sealedBytes = try arguments.int("--sealed-bytes", default: 900, range: 0...65536)
    if let label = arguments.string("--label") { settings.label = label }
    if let transaction = arguments.string("--transaction") {
        guard let known = SQLiteRotate.Transaction(rawValue: transaction) else {
            throw LoadError("--transaction must be one-step or read-decide")
        }
        settings.transaction = known
    }
    if let serve = arguments.string("--serve") {
        guard let shape = SQLiteHandoff.Shape(rawValue: serve) else {
            throw LoadError("--serve must be handoff or inline")
        }
        guard settings.threads == 1 else { throw LoadError("--serve takes one client (--threads 1)") }
        settings.serve = shape
        settings.requestWorkMicros = try arguments.int("--request-work-us", default: 0, range: 0...100_000)
        settings.clientCore = Int32(try arguments.int("--client-core", default: 1, range: 0...1023))
    }
    guard settings.seconds > 0 else { throw LoadError("--seconds must be > 0") }
    let summary = try SQLiteRotate.run(settings)
    print(summary.report(), terminator: "")
    fflush(nil)
    return summary.verdict == "ok" ? 0 : 2
}

func propagation(_ arguments: Arguments) throws -> Int32 {
    var settings = Propagation.Settings()
    settings.revokeSocket = try arguments.required("--revoke-socket")
    settings.adminSocket = try arguments.required("--admin-socket")
    settings.watchSockets = try arguments.required("--watch-sockets").split(separator: ",").map(String.init)
    guard !settings.watchSockets.isEmpty else { throw LoadError("--watch-sockets needs at least one socket") }
    settings.count = try arguments.int("--count", default: 500, range: 1...1_000_000)
    settings.pollMicros = try arguments.int("--poll-us", default: 500, range: 50...1_000_000)
    settings.jitterMillis = try arguments.int("--jitter-ms", default: 100, range: 0...60_000)
    settings.timeout = try arguments.double("--timeout", default: 10)!
    if let label = arguments.string("--label") { settings.label = label }
    let outcome = try Propagation.run(settings)
    print(Propagation.report(outcome, settings: settings), terminator: "")
    fflush(nil)
    return outcome.misses.allSatisfy { $0 == 0 } ? 0 : 2
}

func revocations(_ arguments: Arguments) throws -> Int32 {
    let text = try RevocationStream.run(
        apiSocket: try arguments.required("--socket"),
        adminSocket: try arguments.required("--admin-socket"),
        seconds: try arguments.double("--seconds", default: 10)!,
        rate: try arguments.double("--rate"),
        label: arguments.string("--label") ?? "revocations"
    )
    print(text, terminator: "")
    fflush(nil)
    return text.contains("verdict=ok") ? 0 : 2
}

func argon2Rate(_ arguments: Arguments) throws -> Int32 {
    var settings = Argon2Rate.Settings()
    settings.seconds = try arguments.double("--seconds", default: 10)!
    settings.threads = try arguments.int("--threads", default: 1, range: 1...256)
    settings.memoryKiB = UInt32(try arguments.int("--memory-kib", default: 19456, range: 8...(4 << 20)))
    settings.iterations = UInt32(try arguments.int("--iterations", default: 2, range: 1...100))
    settings.parallelism = UInt32(try arguments.int("--parallelism", default: 1, range: 1...64))
    let cpuBefore = processCPUSeconds()
    let outcome = try Argon2Rate.measure(settings)
    let cpu = processCPUSeconds() - cpuBefore
    print(
        "argon2id m=\(settings.memoryKiB) t=\(settings.iterations) p=\(settings.parallelism): \(outcome.hashes) hashes on \(settings.threads) thread(s) in \(outcome.seconds.fixed(2)) s = \(outcome.rate.fixed(2)) hashes/s (\((1000 * Double(settings.threads) / max(outcome.rate, 1e-9)).fixed(1)) ms per hash per thread)"
    )
    print(
        "RESULT label=argon2-rate threads=\(settings.threads) m=\(settings.memoryKiB) t=\(settings.iterations) p=\(settings.parallelism) hashes=\(outcome.hashes) seconds=\(outcome.seconds.fixed(3)) rate=\(outcome.rate.fixed(2)) cpu_s=\(cpu.fixed(2)) rate_per_cpu_s=\((Double(outcome.hashes) / max(cpu, 1e-9)).fixed(2))"
    )
    return 0
}

signal(SIGPIPE, SIG_IGN)
let argv = CommandLine.arguments
var command = "run"
var rest = argv.dropFirst()
if let first = rest.first, !first.hasPrefix("-") {
    command = first
    rest = rest.dropFirst()
}
do {
    let arguments = try Arguments(rest)
    if arguments.flags.contains("--help") || arguments.flags.contains("-h") || argv.count == 1 {
        print(usage)
        exit(argv.count == 1 ? 1 : 0)
    }
    let status: Int32
    switch command {
    case "run": status = try runLoad(arguments)
    case "tokens": status = try mintTokens(arguments)
    case "argon2-rate": status = try argon2Rate(arguments)
    case "sqlite-rotate": status = try sqliteRotate(arguments)
    case "propagation": status = try propagation(arguments)
    case "revocations": status = try revocations(arguments)
    default: throw LoadError("unknown command \(command)\n\n\(usage)")
    }
    exit(status)
} catch {
    printError("tokend-load: \(error)")
    exit(1)
}
