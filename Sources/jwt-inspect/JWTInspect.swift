import JOSE
import TokenCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// jwt-inspect: decode a JWT and check it offline (DESIGN §8).
@main
enum JWTInspect {
    static let version = "0.1.0"

    /// DESIGN §8: 0–3 from the report, 4 for a token that does not decode or bad usage.
    static func main() {
        let request: Arguments.Request
        do {
            request = try Arguments.parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            fail(usage: error)
        }
        switch request {
        case .help:
            write(Arguments.help, to: 1)
        case .version:
            write(version + "\n", to: 1)
        case .completionScript(let shell):
            write(Completions.script(for: shell), to: 1)
        case .inspect(let arguments):
            do {
                exit(try run(arguments))
            } catch let error as Arguments.UsageError {
                fail(usage: error)
            } catch {
                SystemIO.writeError("Error: \(error)")
                exit(4)
            }
        }
        exit(0)
    }

    /// Inspects the token and prints the report; returns the exit code.
    static func run(_ arguments: Arguments) throws -> Int32 {
        let raw: String
        if let token = arguments.token, token != "-" {
            raw = token
        } else {
            if SystemIO.isTerminal(0) {
                throw Arguments.UsageError("no token: pass it as an argument or pipe it on standard input")
            }
            raw = String(decoding: try SystemIO.readStandardInput(), as: UTF8.self)
        }
        let token: String
        do { token = try TokenInput.extract(raw) } catch { throw Arguments.UsageError("\(error)") }

        var keySet = KeySet()
        let algorithm = arguments.alg.flatMap { SignatureAlgorithm(jwsName: $0) }
        for path in arguments.keys { try KeyLoading.loadKey(path: path, algorithm: algorithm, into: &keySet) }
        for path in arguments.jwks { try KeyLoading.loadJWKS(path: path, into: &keySet) }
        if let keysDir = arguments.keysDir { try KeyLoading.loadKeysDirectory(keysDir, into: &keySet) }
        if let secretFile = arguments.secretFile { try KeyLoading.loadSecret(path: secretFile, into: &keySet) }

        let options = ValidationOptions(
            leeway: Double(DurationText.parse(arguments.leeway) ?? 0),
            issuer: arguments.iss,
            audience: arguments.aud,
            requiredType: arguments.typ,
            requireExpiration: false
        )
        let choice: TokenInspector.PolicyChoice =
            switch arguments.policy?.lowercased() {
            case nil: .none
            case "auto": .auto
            default: .fixed(LifetimePolicy(parsing: arguments.policy!)!)
            }
        let moment = arguments.now.flatMap { NumericDate(parsing: $0)?.seconds } ?? SystemIO.now()
        let report = TokenInspector(keys: keySet, options: options, policy: choice).inspect(token, now: moment)

        if !arguments.quiet {
            let rendering = ReportRendering(
                report: report,
                token: token,
                colour: !arguments.json && SystemIO.isTerminal(1)
                    && (SystemIO.environment("NO_COLOR") ?? "").isEmpty
            )
            write((arguments.json ? rendering.json() : rendering.text()) + "\n", to: 1)
        }
        return report.exitCode
    }

    /// Bad usage: the message, the usage line, exit 4.
    static func fail(usage error: Arguments.UsageError) -> Never {
        SystemIO.writeError(
            "Error: \(error.description)\nUsage: \(Arguments.usage)\n  See 'jwt-inspect --help' for more information."
        )
        exit(4)
    }

    static func write(_ text: String, to fd: Int32) {
        SystemIO.write(text, to: fd)
    }
}
