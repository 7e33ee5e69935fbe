// jose-bench: single-thread, in-process timing of tokend's JWT verification hot path.
//
//   jose-bench verify [--alg ES256|all|ES256,RS256] [--seconds 3] [--warmup 1]
//                     [--modes full,raw,introspect,members,tree-parse]
//   jose-bench token --alg ES256 --out DIR [--lifetime 3600]
//
// `verify` prints one machine-readable line per (mode, alg):
//   mode=full        JWTVerifier.verify: split, strict base64url, strict JSON header, header
//                    rules (RFC 8725), kid lookup, signature, claims scan and type checks,
//                    exp/nbf/iat, iss/aud/typ, lifetime policy. The number held against the
//                    targets.
//   mode=raw         VerifyingKey.verify(signature:message:) on pre-decoded bytes: the crypto
//                    floor (hash + public-key operation) that `openssl speed` is compared with.
//   mode=introspect  full, then every claim tokend's introspection reads, read as
//                    TokenService reads them today (custom claims through claims.json, which
//                    builds the claim set's tree).
//   mode=members     the same reads with JWTClaims.member(_:) for the custom claims.
//   mode=tree-parse  the tree-based parse minus the signature (CompactJWS, KeySet.resolve,
//                    JWTClaims, the checks): what every verification did before the scanner.
// and one `mode=overhead` line per alg comparing full with raw.
//
// `token` writes DIR/ALG.jwt (a token with the same claims, valid for `lifetime` seconds)
// and its key as DIR/ALG.pub.pem and DIR/ALG.jwks.json (or DIR/ALG.key, the raw HS256
// secret), for the CLI benchmarks.

import JOSE
import TokenCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Output

func emit(_ line: String) {
    print(line)
    fflush(nil)
}

func fail(_ message: String, code: Int32 = 2) -> Never {
    let bytes = Array("jose-bench: \(message)\n".utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(code)
}

/// `value` with `decimals` digits after the point (no Foundation).
func format(_ value: Double, decimals: Int = 1) -> String {
    guard value.isFinite else { return "nan" }
    var scale: Int64 = 1
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int64((value * Double(scale)).rounded())
    let sign = scaled < 0 ? "-" : ""
    let magnitude = scaled.magnitude
    let whole = magnitude / UInt64(scale)
    guard decimals > 0 else { return sign + String(whole) }
    let fraction = String(magnitude % UInt64(scale))
    return sign + String(whole) + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
}

// MARK: - Clocks

/// CPU time consumed by the calling thread, in seconds.
/// User CPU time of the calling thread, in seconds: the clock `openssl speed` divides by
/// (it reads the process's user time with getrusage), read the same way.
func threadUserSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD, which Glibc's Swift module leaves out
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
}

func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Seconds since the epoch, for the tokens' iat/nbf/exp and the verifier's `now`.
func unixNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

// MARK: - Timing loop

struct Measurement {
    var iterations = 0
    var wallSeconds = 0.0
    var cpuSeconds = 0.0
    var userSeconds = 0.0
    var batchRates: [Double] = []
    var checksum = 0

    var perSecond: Double { Double(iterations) / wallSeconds }
    var perCPUSecond: Double { Double(iterations) / cpuSeconds }
    var perUserSecond: Double { Double(iterations) / userSeconds }
    var nanosecondsPerOp: Double { wallSeconds * 1e9 / Double(iterations) }
    var medianBatchRate: Double {
        guard !batchRates.isEmpty else { return .nan }
        let sorted = batchRates.sorted()
        return sorted[sorted.count / 2]
    }
}

/// Runs `operation` for `warmup` seconds (also sizing batches to ~10 ms), then in batches
/// until `seconds` of wall-clock time have passed. `operation` returns something derived
/// from its result so the optimiser cannot drop the work.
func measure(seconds: Double, warmup: Double, _ operation: () throws -> Int) rethrows -> Measurement {
    let clock = ContinuousClock()
    var checksum = 0

    // Warm-up: caches, branch predictors, OpenSSL's lazily fetched algorithms, the key's
    // context pool, the allocator's free lists.
    var warmupCount = 0
    let warmupStart = clock.now
    var warmupElapsed = 0.0
    repeat {
        for _ in 0..<16 { checksum &+= try operation() }
        warmupCount += 16
        warmupElapsed = (clock.now - warmupStart).seconds
    } while warmupElapsed < warmup || warmupCount < 64
    let perOp = warmupElapsed / Double(warmupCount)
    let batch = max(1, min(1_000_000, Int(0.010 / perOp)))

    var result = Measurement()
    let cpuStart = threadCPUSeconds()
    let userStart = threadUserSeconds()
    let start = clock.now
    var elapsed = 0.0
    repeat {
        let batchStart = clock.now
        for _ in 0..<batch { checksum &+= try operation() }
        let now = clock.now
        result.iterations += batch
        result.batchRates.append(Double(batch) / (now - batchStart).seconds)
        elapsed = (now - start).seconds
    } while elapsed < seconds
    result.wallSeconds = elapsed
    result.cpuSeconds = threadCPUSeconds() - cpuStart
    result.userSeconds = threadUserSeconds() - userStart
    result.checksum = checksum
    return result
}

// MARK: - Fixtures

/// An RFC 9068-style access token's claims: the registered claims plus the dialect claims
/// tokend sees from common issuers (client_id, azp, auth_time, acr, amr): about 300 bytes.
func benchmarkClaims(now: Double, lifetime: Int64) -> JSONObject {
    let issuedAt = Int64(now) - 60
    var claims = JSONObject()
    claims["iss"] = "https://auth.example.com"
    claims["sub"] = "user-8d4f2c1e52a7"
    claims["aud"] = ["tokend", "https://api.example.com"]
    claims["iat"] = .number(JSONNumber(issuedAt))
    claims["nbf"] = .number(JSONNumber(issuedAt))
    claims["exp"] = .number(JSONNumber(issuedAt + lifetime))
    claims["jti"] = "01JD4Y6W9Q1ZK8M3T5V7X2B4N6"
    claims["scope"] = "openid profile tokens:read"
    claims["client_id"] = "billing-service"
    claims["azp"] = "billing-service"
    claims["auth_time"] = .number(JSONNumber(issuedAt - 300))
    claims["acr"] = "mfa"
    claims["amr"] = ["pwd", "otp"]
    return claims
}

let issuer = "https://auth.example.com"
let audience = "tokend"

struct Fixture {
    let algorithm: SignatureAlgorithm
    let kid: String
    let token: String
    let claimsBytes: Int
    let signingKey: SigningKey
    let verifier: JWTVerifier
    let verifyingKey: VerifyingKey
    let signature: [UInt8]
    let signingInput: [UInt8]
    let now: Double

    init(_ algorithm: SignatureAlgorithm, lifetime: Int64 = 3_600) throws {
        self.algorithm = algorithm
        now = unixNow()
        signingKey = try SigningKey.generate(algorithm, rsaBits: 2048)
        kid = "\(algorithm.rawValue.lowercased())-2026-11"
        let claims = benchmarkClaims(now: now, lifetime: lifetime)
        claimsBytes = JSONValue.object(claims).compactBytes.count
        token = try JWSSigner(key: signingKey, kid: kid).sign(claims: claims)

        // A keyring as tokend holds it: the current key plus the previous one.
        let previous = try SigningKey.generate(algorithm, rsaBits: 2048)
        verifyingKey = signingKey.verifyingKey
        let keys = KeySet([
            KeySet.Entry(
                kid: "\(algorithm.rawValue.lowercased())-2026-10",
                key: previous.verifyingKey,
                state: .previous,
                source: "jose-bench"
            ),
            KeySet.Entry(kid: kid, key: verifyingKey, state: .current, source: "jose-bench"),
        ])
        let options = ValidationOptions(
            leeway: 30,
            issuer: issuer,
            audience: audience,
            requiredType: "at+jwt",
            policy: .oneHour,
            requireExpiration: true
        )
        verifier = JWTVerifier(keys: keys, options: options)

        let parts = try JWSParts(compact: token)
        signature = parts.signature
        signingInput = parts.signingInput
    }

    /// Proves each mode accepts the fixture before anything is timed.
    func check() throws {
        let verified = try verifier.verify(token, now: now)
        guard verified.claims.iss == issuer, verified.header.algorithm == algorithm else {
            fail("\(algorithm): verified token has unexpected contents")
        }
        guard try verifyRaw() == 1 else { fail("\(algorithm): raw signature does not verify") }
        var tampered = signingInput
        tampered[tampered.count - 1] ^= 1
        let rejected = try signature.withUnsafeBytes { s in
            try tampered.withUnsafeBytes { m in try verifyingKey.verify(signature: s, message: m) }
        }
        guard !rejected else { fail("\(algorithm): a tampered message verifies") }
    }

    /// `JWTVerifier.verify` and a look at its result (the claim set's JSON tree is built
    /// only when a caller asks for it; see `introspect`).
    @inline(never)
    func verifyFull() throws -> Int {
        let verified = try verifier.verify(token, now: now)
        return Int(verified.claims.exp?.seconds ?? 0) &+ (verified.key.kid?.utf8.count ?? 0)
            &+ verified.header.algorithm.rawValue.utf8.count
    }

    /// `verify`, then every claim tokend's introspection reads, the way
    /// `TokenService.verifyAndExtract` reads them today: registered claims from their
    /// properties, `client_id`, `username`/`userName` and `sid` through `claims.json`, which
    /// builds the claim set's tree.
    @inline(never)
    func verifyAndReadAsIntrospection() throws -> Int {
        let verified = try verifier.verify(token, now: now)
        let claims = verified.claims
        var sum = (claims.sub?.utf8.count ?? 0) &+ (claims.jti?.utf8.count ?? 0) &+ Int(claims.exp?.seconds ?? 0)
        sum &+= Int(claims.iat?.seconds ?? 0) &+ Int(claims.nbf?.seconds ?? 0)
        sum &+= (claims.scope ?? []).joined(separator: " ").utf8.count &+ (claims.iss?.utf8.count ?? 0)
        sum &+= claims.aud?.count ?? 0
        sum &+= claims.json["client_id"]?.stringValue?.utf8.count ?? 0
        sum &+= (claims.json["username"]?.stringValue ?? claims.json["userName"]?.stringValue)?.utf8.count ?? 0
        sum &+= claims.json["sid"]?.stringValue?.utf8.count ?? 0
        return sum
    }

    /// The same reads with `JWTClaims.member(_:)` for the custom claims, which parses only
    /// the member asked for.
    @inline(never)
    func verifyAndReadMembers() throws -> Int {
        let verified = try verifier.verify(token, now: now)
        let claims = verified.claims
        var sum = (claims.sub?.utf8.count ?? 0) &+ (claims.jti?.utf8.count ?? 0) &+ Int(claims.exp?.seconds ?? 0)
        sum &+= Int(claims.iat?.seconds ?? 0) &+ Int(claims.nbf?.seconds ?? 0)
        sum &+= (claims.scope ?? []).joined(separator: " ").utf8.count &+ (claims.iss?.utf8.count ?? 0)
        sum &+= claims.aud?.count ?? 0
        sum &+= claims.member("client_id")?.stringValue?.utf8.count ?? 0
        sum &+= (claims.member("username")?.stringValue ?? claims.member("userName")?.stringValue)?.utf8.count ?? 0
        sum &+= claims.member("sid")?.stringValue?.utf8.count ?? 0
        return sum
    }

    /// The tree-based parse without the signature: `CompactJWS`, `KeySet.resolve`,
    /// `JWTClaims(payload:)` and the checks, i.e. what every verification cost before the
    /// scanner, and what `TokenInspector` (jwt-inspect, explain) still does.
    @inline(never)
    func verifyWithoutSignature() throws -> Int {
        let jws = try CompactJWS(token, maxLength: verifier.options.maxTokenLength)
        let entry = try verifier.keys.resolve(jws.header)
        let claims = try JWTClaims(payload: jws.parts.payload)
        let options = verifier.options
        try JWTVerifier.checkTime(
            claims,
            now: now,
            leeway: options.leeway,
            requireExpiration: options.requireExpiration
        )
        guard claims.iss == options.issuer, claims.aud?.contains(audience) == true,
            JOSEHeader.typ(jws.header.typ, matches: "at+jwt"),
            options.policy?.violation(of: claims, now: now, leeway: options.leeway) == nil
        else { fail("\(algorithm): identity checks failed") }
        return claims.json.count &+ jws.parts.signature.count &+ (entry.kid?.utf8.count ?? 0)
    }

    @inline(never)
    func verifyRaw() throws -> Int {
        try signature.withUnsafeBytes { s in
            try signingInput.withUnsafeBytes { m in try verifyingKey.verify(signature: s, message: m) ? 1 : 0 }
        }
    }
}

// MARK: - Commands

struct Arguments {
    var values: [String: String] = [:]

    init(_ list: ArraySlice<String>, allowed: Set<String>) {
        var iterator = list.makeIterator()
        while let arg = iterator.next() {
            guard arg.hasPrefix("--") else { fail("unexpected argument \(arg)") }
            var name = String(arg.dropFirst(2))
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard allowed.contains(name) else { fail("unknown option --\(name)") }
            if value == nil {
                guard let next = iterator.next() else { fail("--\(name) needs a value") }
                value = next
            }
            values[name] = value
        }
    }

    func double(_ name: String, default value: Double) -> Double {
        guard let text = values[name] else { return value }
        guard let number = Double(text), number >= 0 else { fail("--\(name) must be a number of seconds") }
        return number
    }

    func algorithms() -> [SignatureAlgorithm] {
        let text = values["alg"] ?? "all"
        if text == "all" { return SignatureAlgorithm.allCases }
        return text.split(separator: ",").map {
            guard let alg = SignatureAlgorithm(jwsName: $0) else {
                fail(
                    "unknown alg \($0); one of \(SignatureAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")) or all"
                )
            }
            return alg
        }
    }
}

enum Mode: String, CaseIterable {
    case full, raw, introspect, members
    case treeParse = "tree-parse"
}

func runVerify(_ args: Arguments) throws {
    let seconds = args.double("seconds", default: 3)
    let warmup = args.double("warmup", default: 1)
    let modes: [Mode] = (args.values["modes"] ?? "full,raw,introspect,members,tree-parse").split(separator: ",").map {
        guard let mode = Mode(rawValue: String($0)) else {
            fail("unknown mode \($0); one of \(Mode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return mode
    }
    for algorithm in args.algorithms() {
        let fixture = try Fixture(algorithm)
        try fixture.check()
        var results: [Mode: Measurement] = [:]
        for mode in modes {
            let m: Measurement
            switch mode {
            case .full: m = try measure(seconds: seconds, warmup: warmup) { try fixture.verifyFull() }
            case .raw: m = try measure(seconds: seconds, warmup: warmup) { try fixture.verifyRaw() }
            case .introspect:
                m = try measure(seconds: seconds, warmup: warmup) { try fixture.verifyAndReadAsIntrospection() }
            case .members: m = try measure(seconds: seconds, warmup: warmup) { try fixture.verifyAndReadMembers() }
            case .treeParse: m = try measure(seconds: seconds, warmup: warmup) { try fixture.verifyWithoutSignature() }
            }
            results[mode] = m
            emit(
                "mode=\(mode.rawValue) alg=\(algorithm) verifies_per_sec=\(format(m.perSecond)) ns_per_op=\(format(m.nanosecondsPerOp))"
                    + " cpu_verifies_per_sec=\(format(m.perCPUSecond)) user_verifies_per_sec=\(format(m.perUserSecond))"
                    + " median_batch_per_sec=\(format(m.medianBatchRate))"
                    + " iterations=\(m.iterations) seconds=\(format(m.wallSeconds, decimals: 3))"
                    + " claims_bytes=\(fixture.claimsBytes) token_bytes=\(fixture.token.utf8.count)"
                    + " signing_input_bytes=\(fixture.signingInput.count) checksum=\(m.checksum & 0xFFFF)"
            )
        }
        if let full = results[.full], let raw = results[.raw] {
            let overhead = full.nanosecondsPerOp - raw.nanosecondsPerOp
            emit(
                "mode=overhead alg=\(algorithm) full_ns=\(format(full.nanosecondsPerOp)) raw_ns=\(format(raw.nanosecondsPerOp))"
                    + " overhead_ns=\(format(overhead)) full_over_raw=\(format(raw.perSecond > 0 ? full.perSecond / raw.perSecond : .nan, decimals: 3))"
            )
        }
    }
}

func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    guard fd >= 0 else { fail("cannot write \(path)") }
    defer { close(fd) }
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        guard n > 0 else { fail("cannot write \(path)") }
        written += n
    }
}

func runToken(_ args: Arguments) throws {
    guard let out = args.values["out"] else { fail("token needs --out DIR") }
    let lifetime = Int64(args.double("lifetime", default: 3_600))
    for algorithm in args.algorithms() {
        let fixture = try Fixture(algorithm, lifetime: lifetime)
        writeFile("\(out)/\(algorithm).jwt", Array((fixture.token + "\n").utf8))
        if let secret = fixture.signingKey.secretBytes {
            writeFile("\(out)/\(algorithm).key", secret, mode: 0o600)
        } else {
            writeFile("\(out)/\(algorithm).pub.pem", Array(try fixture.verifyingKey.publicPEM().utf8))
            // The same public key as a JWK Set, for the key-loading comparison.
            var jwk = JSONObject()
            for (name, value) in try fixture.verifyingKey.jwkParameters().members { jwk[name] = .string(value) }
            jwk["kid"] = .string(fixture.kid)
            jwk["alg"] = .string(algorithm.rawValue)
            jwk["use"] = "sig"
            var set = JSONObject()
            set["keys"] = .array([.object(jwk)])
            writeFile("\(out)/\(algorithm).jwks.json", JSONValue.object(set).compactBytes + [0x0A])
        }
        emit(
            "alg=\(algorithm) token=\(out)/\(algorithm).jwt claims_bytes=\(fixture.claimsBytes) token_bytes=\(fixture.token.utf8.count)"
        )
    }
}

let usage = """
    usage: jose-bench verify [--alg ES256|ES256,RS256|all] [--seconds 3] [--warmup 1] [--modes full,raw,introspect,members,tree-parse]
           jose-bench token --out DIR [--alg …|all] [--lifetime 3600]
    """

let argv = CommandLine.arguments
guard argv.count >= 2 else { fail(usage) }
do {
    switch argv[1] {
    case "verify":
        try runVerify(Arguments(argv.dropFirst(2), allowed: ["alg", "seconds", "warmup", "modes"]))
    case "token":
        try runToken(Arguments(argv.dropFirst(2), allowed: ["alg", "out", "lifetime"]))
    case "-h", "--help", "help":
        print(usage)
    default:
        fail(usage)
    }
} catch {
    fail("\(error)", code: 1)
}
