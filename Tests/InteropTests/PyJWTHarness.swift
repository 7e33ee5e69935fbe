import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenTestSupport

/// What the interop tests need from Python, and how to get it. `make test` runs this
/// command before the tests, so a missing PyJWT is a failure, never a skip.
let pyjwtInstallHint = "python3 -m pip install 'pyjwt>=2.10' 'cryptography>=3.4'"

/// The PyJWT side of the interop tests. Written to each test's private temp directory and
/// run as `python3 pyjwt_interop.py COMMAND …`.
///
/// Output contract: a result is one JSON document (or a token) on stdout with exit 0.
/// A token PyJWT rejects exits 1 with `rejected: ErrorClass: message` on stderr. Usage
/// errors exit 2, missing modules exit 3. Key material is never printed, except the oct JWK
/// of an HS256 secret in `sign`'s JWKS, which the Swift side parses and never shows.
let pyjwtScript = #"""
    import base64
    import hashlib
    import json
    import sys


    def fail(message, code):
        print(message, file=sys.stderr)
        sys.exit(code)


    try:
        import cryptography
        import jwt
        from cryptography.hazmat.primitives import serialization
        from jwt.algorithms import get_default_algorithms
    except ImportError as error:
        fail("missing Python module %s" % error.name, 3)

    # The members RFC 7638 section 3.2 hashes, per kty.
    THUMBPRINT_MEMBERS = {
        "EC": ["crv", "kty", "x", "y"],
        "OKP": ["crv", "kty", "x"],
        "RSA": ["e", "kty", "n"],
        "oct": ["k", "kty"],
    }


    def algorithm(name):
        algorithms = get_default_algorithms()
        if name not in algorithms:
            fail("PyJWT %s does not offer %s (is cryptography installed?)" % (jwt.__version__, name), 2)
        return algorithms[name]


    def read(path):
        with open(path, "rb") as handle:
            return handle.read()


    def public_jwk(alg, public_key):
        """PyJWT's JWK of a public key (or an HS256 secret), as a dict."""
        return json.loads(algorithm(alg).to_jwk(public_key))


    def thumbprint(jwk):
        required = THUMBPRINT_MEMBERS[jwk["kty"]]
        canonical = json.dumps({name: jwk[name] for name in required}, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode("utf-8")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


    def command_version(args):
        print(json.dumps({
            "pyjwt": jwt.__version__,
            "cryptography": cryptography.__version__,
            "algorithms": sorted(get_default_algorithms()),
            "executable": sys.executable,
        }))


    def command_sign(args):
        """sign ALG KEYFILE KID CLAIMSFILE: a token over the claims, and PyJWT's JWKS of the key."""
        alg, key_path, kid, claims_path = args
        with open(claims_path, "r", encoding="utf-8") as handle:
            claims = json.load(handle)
        if alg == "HS256":
            key = read(key_path)
            public = key
        else:
            key = serialization.load_pem_private_key(read(key_path), password=None)
            public = key.public_key()
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"})
        if isinstance(token, bytes):
            token = token.decode("ascii")
        jwk = public_jwk(alg, public)
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        print(json.dumps({"token": token, "jwks": {"keys": [jwk]}}))


    def command_verify(args):
        """verify ALG pem|secret|jwks KEYFILE TOKENFILE AUDIENCE ISSUER: the header and claims."""
        alg, kind, key_path, token_path, audience, issuer = args
        token = read(token_path).decode("ascii").strip()
        if kind == "jwks":
            header = jwt.get_unverified_header(token)
            jwks = jwt.PyJWKSet.from_dict(json.loads(read(key_path)))
            matches = [jwk for jwk in jwks.keys if jwk.key_id == header.get("kid")]
            if len(matches) != 1:
                fail("rejected: no key with kid %r in the JWKS" % header.get("kid"), 1)
            key = matches[0].key
        elif kind in ("pem", "secret"):
            key = read(key_path)
        else:
            fail("unknown key kind %r" % kind, 2)
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=audience, issuer=issuer,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
            )
        except jwt.InvalidTokenError as error:
            fail("rejected: %s: %s" % (type(error).__name__, error), 1)
        print(json.dumps({"header": header, "claims": claims}))


    def command_jwk(args):
        """jwk ALG PUBLIC_PEM: PyJWT's JWK of the key and its RFC 7638 thumbprint."""
        alg, pem_path = args
        public = serialization.load_pem_public_key(read(pem_path))
        jwk = public_jwk(alg, public)
        print(json.dumps({"jwk": jwk, "thumbprint": thumbprint(jwk)}))


    COMMANDS = {
        "version": (command_version, 0),
        "sign": (command_sign, 4),
        "verify": (command_verify, 6),
        "jwk": (command_jwk, 2),
    }

    if __name__ == "__main__":
        if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
            fail("usage: pyjwt_interop.py %s ..." % "|".join(COMMANDS), 2)
        function, arity = COMMANDS[sys.argv[1]]
        if len(sys.argv) - 2 != arity:
            fail("%s takes %d arguments" % (sys.argv[1], arity), 2)
        try:
            function(sys.argv[2:])
        except SystemExit:
            raise
        except Exception as error:  # report the kind of failure, never key material or a traceback
            fail("error: %s: %s" % (type(error).__name__, error), 2)
    """#

/// Why the interop tests cannot run at all. Thrown, so every test fails with the fix.
struct PyJWTUnavailable: Error, CustomStringConvertible {
    let problem: String
    var description: String {
        "PyJWT interop tests need python3 with PyJWT and cryptography (\(problem)). "
            + "Install them with: \(pyjwtInstallHint)"
    }
}

/// A failure of the Python side that is not a plain rejection; never contains key material.
struct PyJWTFailure: Error, CustomStringConvertible {
    let description: String
}

/// The result of one `python3 pyjwt_interop.py …` run.
struct PythonRun: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String

    /// Stdout parsed as a JSON object.
    func jsonObject() throws -> JSONObject {
        guard case .object(let object) = try JSONParser().parse(stdout) else {
            throw PyJWTFailure(description: "python3 did not print a JSON object")
        }
        return object
    }
}

/// A private scratch directory (0700) for one test: the Python script, key files (0600),
/// tokens and captured output. Removed when the test lets go of it.
final class Scratch: Sendable {
    let directory: TemporaryDirectory
    let scriptPath: String
    /// The interpreter: `/usr/bin/env python3` until the version check has resolved
    /// `sys.executable` (which skips wrappers such as pyenv's shim on every later run).
    let interpreter: [String]

    init(interpreter: [String] = ["/usr/bin/env", "python3"]) throws {
        self.interpreter = interpreter
        directory = try TemporaryDirectory(prefix: "tokend-interop")
        scriptPath = try directory.write("pyjwt_interop.py", pyjwtScript)
    }

    /// Writes `bytes` to a new file readable only by the owner; returns its path.
    @discardableResult
    func write(_ bytes: [UInt8], to name: String) throws -> String { try directory.write(name, bytes) }

    func write(_ text: String, to name: String) throws -> String { try directory.write(name, text) }

    /// Runs the script with `arguments` in this test's environment; stdout and stderr go to
    /// files, so neither pipe can fill.
    func python(_ arguments: [String]) async throws -> PythonRun {
        let result: CommandResult
        do {
            result = try await run(
                interpreter[0],
                Array(interpreter.dropFirst()) + ["-B", scriptPath] + arguments,
                environment: ProcessInfo.processInfo.environment,
                in: directory.path,
                timeout: .seconds(120)
            )
        } catch {
            throw PyJWTUnavailable(problem: "cannot run \(interpreter.joined(separator: " ")): \(error)")
        }
        let run = PythonRun(status: result.status.shellCode, stdout: result.stdout, stderr: result.stderr)
        switch run.status {
        case 127: throw PyJWTUnavailable(problem: "python3 is not on PATH")
        case 3: throw PyJWTUnavailable(problem: run.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        default: return run
        }
    }

    /// Runs a command that must succeed; its stdout.
    func pythonSucceeding(_ arguments: [String], _ what: String) async throws -> PythonRun {
        let run = try await python(arguments)
        guard run.status == 0 else {
            let stderr = run.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw PyJWTFailure(description: "PyJWT \(what) failed (exit \(run.status)): \(stderr)")
        }
        return run
    }
}

/// Checked once per test process: python3 runs, PyJWT and cryptography import, and PyJWT
/// offers every algorithm tokend signs with.
let pyjwtAvailability = Task { () -> Result<(version: String, executable: String), PyJWTUnavailable> in
    do {
        let scratch = try Scratch()
        let run = try await scratch.python(["version"])
        guard run.status == 0, let info = try? run.jsonObject() else {
            return .failure(
                PyJWTUnavailable(
                    problem: "the version check failed: \(run.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
                )
            )
        }
        let version = info["pyjwt"]?.stringValue ?? "?"
        let offered = Set((info["algorithms"]?.arrayValue ?? []).compactMap(\.stringValue))
        let missing = SignatureAlgorithm.allCases.map(\.rawValue).filter { !offered.contains($0) }
        guard missing.isEmpty else {
            return .failure(PyJWTUnavailable(problem: "PyJWT \(version) lacks \(missing.joined(separator: ", "))"))
        }
        let parts = version.split(separator: ".").compactMap { Int($0.prefix { $0.isNumber }) }
        guard parts.count >= 2, (parts[0], parts[1]) >= (2, 10) else {
            return .failure(
                PyJWTUnavailable(problem: "PyJWT \(version) is too old; 2.10 pads EC JWK coordinates to full length")
            )
        }
        guard let executable = info["executable"]?.stringValue, executable.hasPrefix("/") else {
            return .failure(PyJWTUnavailable(problem: "python3 did not report its executable"))
        }
        return .success(("PyJWT \(version), cryptography \(info["cryptography"]?.stringValue ?? "?")", executable))
    } catch let error as PyJWTUnavailable {
        return .failure(error)
    } catch {
        return .failure(PyJWTUnavailable(problem: "\(error)"))
    }
}

/// A scratch directory with the script in it, after checking PyJWT is there.
func pyjwtScratch() async throws -> Scratch {
    try Scratch(interpreter: [await pyjwtAvailability.value.get().executable])
}
