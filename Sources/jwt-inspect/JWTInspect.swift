import ArgumentParser
import JOSE
import TokenCrypto

#if canImport(Glibc)
import Glibc
#endif

@main
struct JWTInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwt-inspect",
        abstract: "Decode a JWT and check it offline: signature, expiry, lifetime policy, issuer, audience.",
        discussion: """
            The token comes from the argument or standard input, as a bare token, "Bearer …", an \
            "Authorization: Bearer …" line, in quotes, or in a JSON object with token, accessToken \
            or access_token. A token that starts with "-" goes after "--" or on standard input.

            Without a key the signature is reported as not verified, never as valid.

            Exit codes:
              0  every check passed
              1  expired, not yet valid, or issued in the future
              2  lifetime policy, issuer, audience or type not as required
              3  signature invalid, key unknown or revoked, or a forbidden header (alg none, crit, …)
              4  not a decodable token (malformed, JWE, opaque), or bad usage
            """,
        version: "0.1.0"
    )

    @Argument(help: "The token, or - to read standard input (the default).")
    var token: String?

    @Option(help: ArgumentHelp("Lifetime policy to check: 1h, 24h, 30d, auto, or a duration like 15m or 7d.", valueName: "policy"))
    var policy: String?

    @Option(name: .customLong("key"), help: ArgumentHelp("PEM public key, certificate, private key, or JWK file. Repeatable.", valueName: "file"), completion: .file())
    var keys: [String] = []

    @Option(help: ArgumentHelp("JWK Set file (e.g. a saved /.well-known/jwks.json).", valueName: "file"), completion: .file())
    var jwks: [String] = []

    @Option(name: .customLong("keys-dir"), help: ArgumentHelp("tokend key directory (keyring.json and <kid>.pem).", valueName: "dir"), completion: .directory)
    var keysDir: String?

    @Option(name: .customLong("secret-file"), help: ArgumentHelp("HS256 shared secret file (one trailing newline ignored).", valueName: "file"), completion: .file())
    var secretFile: String?

    @Option(help: ArgumentHelp("Algorithm of the --key keys, for an RSA key used with PS256 (default: from the key; RSA means RS256).", valueName: "alg"))
    var alg: String?

    @Option(help: ArgumentHelp("Check as of this time: ISO 8601 (2024-05-01T12:00:00Z) or epoch seconds.", valueName: "time"))
    var now: String?

    @Option(help: ArgumentHelp("Clock skew allowed on exp, nbf and iat: seconds or a duration (30s, 2m).", valueName: "duration"))
    var leeway: String = "0"

    @Option(help: ArgumentHelp("Required issuer (exact match).", valueName: "issuer"))
    var iss: String?

    @Option(help: ArgumentHelp("Required audience (must be one of aud).", valueName: "audience"))
    var aud: String?

    @Option(help: ArgumentHelp("Required typ, e.g. at+jwt (case and an application/ prefix ignored).", valueName: "type"))
    var typ: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "Print nothing; only the exit code tells.")
    var quiet = false

    func validate() throws {
        if json && quiet { throw ValidationError("--json and --quiet cannot be used together") }
        if let policy, policy.lowercased() != "auto", LifetimePolicy(parsing: policy) == nil {
            throw ValidationError("--policy \(policy): expected 1h, 24h, 30d, auto, or a duration like 15m, 7d, 1h30m")
        }
        if let alg, SignatureAlgorithm(jwsName: alg) == nil {
            throw ValidationError("--alg \(alg): expected one of \(SignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let now, NumericDate(parsing: now) == nil {
            throw ValidationError("--now \(now): expected ISO 8601 like 2024-05-01T12:00:00Z, or epoch seconds")
        }
        if DurationText.parse(leeway) == nil {
            throw ValidationError("--leeway \(leeway): expected seconds or a duration like 30s or 2m")
        }
    }

    func run() throws {
        let raw: String
        if let token, token != "-" {
            raw = token
        } else {
            if SystemIO.isTerminal(0) {
                throw ValidationError("no token: pass it as an argument or pipe it on standard input")
            }
            raw = String(decoding: try SystemIO.readStandardInput(), as: UTF8.self)
        }
        let token: String
        do { token = try TokenInput.extract(raw) } catch { throw ValidationError("\(error)") }

        var keySet = KeySet()
        let algorithm = alg.flatMap { SignatureAlgorithm(jwsName: $0) }
        for path in keys { try KeyLoading.loadKey(path: path, algorithm: algorithm, into: &keySet) }
        for path in jwks { try KeyLoading.loadJWKS(path: path, into: &keySet) }
        if let keysDir { try KeyLoading.loadKeysDirectory(keysDir, into: &keySet) }
        if let secretFile { try KeyLoading.loadSecret(path: secretFile, into: &keySet) }

        let options = ValidationOptions(
            leeway: Double(DurationText.parse(leeway) ?? 0), issuer: iss, audience: aud, requiredType: typ,
            requireExpiration: false)
        let choice: TokenInspector.PolicyChoice =
            switch policy?.lowercased() {
            case nil: .none
            case "auto": .auto
            default: .fixed(LifetimePolicy(parsing: policy!)!)
            }
        let moment = now.flatMap { NumericDate(parsing: $0)?.seconds } ?? SystemIO.now()
        let report = TokenInspector(keys: keySet, options: options, policy: choice).inspect(token, now: moment)

        if !quiet {
            let rendering = ReportRendering(
                report: report, token: token,
                colour: !json && SystemIO.isTerminal(1) && (SystemIO.environment("NO_COLOR") ?? "").isEmpty)
            print(json ? rendering.json() : rendering.text())
        }
        throw ExitCode(report.exitCode)
    }

    /// DESIGN §8 reserves exit code 4 for bad usage, where ArgumentParser would use 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                Glibc.exit(0)
            }
            SystemIO.writeError(message.isEmpty ? "\(error)" : message)
            Glibc.exit(4)
        }
    }
}
