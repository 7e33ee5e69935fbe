import JOSE
import TokenCrypto

/// jwt-inspect's command line, parsed by hand: a dozen options do not need a reflective
/// parser, and the one this replaced cost more start-up time than everything else the tool
/// does (BENCHMARKS.md).
///
/// Accepted forms: `--name value`, `--name=value`, `-q`/`-h` (also grouped, `-qh`), flags
/// and options in any order around the one positional token, `-` for standard input, and
/// `--` to end the options (a token that starts with `-` goes after it).
struct Arguments {
    var token: String?
    var policy: String?
    var keys: [String] = []
    var jwks: [String] = []
    var keysDir: String?
    var secretFile: String?
    var alg: String?
    var now: String?
    var leeway = "0"
    var iss: String?
    var aud: String?
    var typ: String?
    var json = false
    var quiet = false

    /// What the command line asks for.
    enum Request {
        case inspect(Arguments)
        case help
        case version
        case completionScript(Completions.Shell)
    }

    /// A command line that cannot be run: exit 4 with the message and the usage line.
    struct UsageError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The options that take a value, as `--name`, and the name of their value in messages.
    static let valueOptions: [(name: String, value: String)] = [
        ("--policy", "policy"), ("--key", "file"), ("--jwks", "file"), ("--keys-dir", "dir"),
        ("--secret-file", "file"), ("--alg", "alg"), ("--now", "time"), ("--leeway", "duration"),
        ("--iss", "issuer"), ("--aud", "audience"), ("--typ", "type"), ("--generate-completion-script", "shell"),
    ]

    /// Parses `arguments` (without the program name).
    static func parse(_ arguments: [String]) throws(UsageError) -> Request {
        // --help and --version win over everything else before `--`, as they did before.
        for argument in arguments.prefix(while: { $0 != "--" }) {
            if argument == "--help" || argument == "-h" || isShortGroup(argument, containing: "h") { return .help }
        }
        for argument in arguments.prefix(while: { $0 != "--" }) where argument == "--version" { return .version }

        var parsed = Arguments()
        var shell: String?
        var positionals: [String] = []
        var index = 0
        var optionsEnded = false
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if optionsEnded || argument == "-" || !argument.hasPrefix("-") {
                positionals.append(argument)
                continue
            }
            if argument == "--" {
                optionsEnded = true
                continue
            }
            if !argument.hasPrefix("--") {
                // A token may begin with "-" (one in 64 of the all-random refresh tokens): a long
                // run of token characters is the token, not a cluster of short options.
                if looksLikeToken(argument) {
                    positionals.append(argument)
                    continue
                }
                guard isShortGroup(argument, containing: nil) else { throw UsageError("Unknown option '\(argument)'") }
                parsed.quiet = true  // -q is the only short flag left once -h was handled
                continue
            }
            var name = argument
            var inlineValue: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            switch name {
            case "--json", "--quiet":
                if inlineValue != nil { throw UsageError("The flag '\(name)' does not take a value") }
                if name == "--json" { parsed.json = true } else { parsed.quiet = true }
                continue
            default:
                break
            }
            guard let option = valueOptions.first(where: { $0.name == name }) else {
                throw UsageError("Unknown option '\(name)'")
            }
            let value: String
            if let inlineValue {
                value = inlineValue
            } else {
                guard index < arguments.count, !looksLikeOption(arguments[index]) else {
                    throw UsageError("Missing value for '\(option.name) <\(option.value)>'")
                }
                value = arguments[index]
                index += 1
            }
            switch name {
            case "--policy": parsed.policy = value
            case "--key": parsed.keys.append(value)
            case "--jwks": parsed.jwks.append(value)
            case "--keys-dir": parsed.keysDir = value
            case "--secret-file": parsed.secretFile = value
            case "--alg": parsed.alg = value
            case "--now": parsed.now = value
            case "--leeway": parsed.leeway = value
            case "--iss": parsed.iss = value
            case "--aud": parsed.aud = value
            case "--typ": parsed.typ = value
            default: shell = value
            }
        }

        if let shell {
            guard let kind = Completions.Shell(rawValue: shell) else {
                throw UsageError("--generate-completion-script \(shell): expected bash, zsh or fish")
            }
            return .completionScript(kind)
        }
        if positionals.count > 1 { throw UsageError("Unexpected argument '\(positionals[1])'") }
        parsed.token = positionals.first
        try parsed.validate()
        return .inspect(parsed)
    }

    /// The checks that need no file or token: each names its option and what it accepts.
    func validate() throws(UsageError) {
        if json && quiet { throw UsageError("--json and --quiet cannot be used together") }
        if let policy, policy.lowercased() != "auto", LifetimePolicy(parsing: policy) == nil {
            throw UsageError("--policy \(policy): expected 1h, 24h, 30d, auto, or a duration like 15m, 7d, 1h30m")
        }
        if let alg, SignatureAlgorithm(jwsName: alg) == nil {
            throw UsageError(
                "--alg \(alg): expected one of \(SignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        if let now, NumericDate(parsing: now) == nil {
            throw UsageError("--now \(now): expected ISO 8601 like 2024-05-01T12:00:00Z, or epoch seconds")
        }
        if DurationText.parse(leeway) == nil {
            throw UsageError("--leeway \(leeway): expected seconds or a duration like 30s or 2m")
        }
    }

    /// `-q`, `-h` or a group of them (`-qh`); with `containing`, only a group holding it.
    private static func isShortGroup(_ argument: String, containing letter: Character?) -> Bool {
        guard argument.count >= 2, argument.hasPrefix("-"), !argument.hasPrefix("--") else { return false }
        let letters = argument.dropFirst()
        guard letters.allSatisfy({ $0 == "q" || $0 == "h" }) else { return false }
        return letter.map { letters.contains($0) } ?? true
    }

    /// At least 16 characters, all base64url or `.`: a token (opaque or JWS), never an option.
    private static func looksLikeToken(_ argument: String) -> Bool {
        argument.utf8.count >= 16
            && argument.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
                    true
                default: false
                }
            }
    }

    /// An argument that is an option rather than an option's value.
    private static func looksLikeOption(_ argument: String) -> Bool {
        argument.hasPrefix("-") && argument != "-"
    }

    static let usage = "jwt-inspect [<options>] [<token>]"

    static let help = """
        OVERVIEW: Decode a JWT and check it offline: signature, expiry, lifetime policy, issuer,
        audience.

        The token comes from the argument or standard input, as a bare token, "Bearer …", an
        "Authorization: Bearer …" line, in quotes, or in a JSON object with token, accessToken
        or access_token. A token that starts with "-" goes after "--" or on standard input.

        Without a key the signature is reported as not verified, never as valid.

        Exit codes:
          0  every check passed
          1  expired, not yet valid, or issued in the future
          2  lifetime policy, issuer, audience or type not as required
          3  signature invalid, key unknown or revoked, or a forbidden header (alg none, crit, …)
          4  not a decodable token (malformed, JWE, opaque), or bad usage

        USAGE: \(usage)

        ARGUMENTS:
          <token>                 The token, or - to read standard input (the default).

        OPTIONS:
          --policy <policy>       Lifetime policy to check: 1h, 24h, 30d, auto, or a
                                  duration like 15m or 7d.
          --key <file>            PEM public key, certificate, private key, or JWK
                                  file. Repeatable.
          --jwks <file>           JWK Set file (e.g. a saved /.well-known/jwks.json).
                                  Repeatable.
          --keys-dir <dir>        tokend key directory (keyring.json and <kid>.pem).
          --secret-file <file>    HS256 shared secret file (one trailing newline
                                  ignored).
          --alg <alg>             Algorithm of the --key keys, binding: a token of
                                  another alg is refused (default: from the key; an
                                  RSA key takes the token's RS256 or PS256).
          --now <time>            Check as of this time: ISO 8601
                                  (2024-05-01T12:00:00Z) or epoch seconds.
          --leeway <duration>     Clock skew allowed on exp, nbf and iat: seconds or a
                                  duration (30s, 2m). (default: 0)
          --iss <issuer>          Required issuer (exact match).
          --aud <audience>        Required audience (must be one of aud).
          --typ <type>            Required typ, e.g. at+jwt (case and an application/
                                  prefix ignored).
          --json                  Print one JSON object instead of text.
          -q, --quiet             Print nothing; only the exit code tells.
          --generate-completion-script <shell>
                                  Print a completion script for bash, zsh or fish.
          --version               Show the version.
          -h, --help              Show help information.

        """
}
