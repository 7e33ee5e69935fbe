import JOSE
import TokenCrypto

#if canImport(Glibc)
import Glibc
#endif

/// Access tokens signed with the daemon's current key, without going through the daemon:
/// keyring.json names the `current` kid, `<kid>.pem` holds its private key. The claims are
/// the ones `TokenService.mintAccess` writes, in the same order (iss, sub, [aud], iat, nbf,
/// exp, jti, scope, client_id) under the header {alg, kid, typ: at+jwt}.
enum TokenMint {
    struct Settings: Sendable {
        var keysDirectory: String
        var count: Int
        var threads: Int
        var issuer = "tokend"
        var audience: String?
        var lifetime: Int64 = 3600
        var subjects = 1000
        var scope = "read write"
        var clientID = "tokend-load"
    }

    static func signer(keysDirectory: String) throws -> JWSSigner {
        let document = try KeyringDocument.parse(try readFile(keysDirectory + "/keyring.json"))
        guard let current = document.keys.first(where: { $0.state == .current }) else {
            throw LoadError("\(keysDirectory)/keyring.json has no current key (has tokend started once?)")
        }
        let pem = String(decoding: try readFile(keysDirectory + "/\(current.kid).pem"), as: UTF8.self)
        let key = try SigningKey(pem: pem, algorithm: current.algorithm)
        return JWSSigner(key: key, kid: current.kid)
    }

    /// `settings.count` distinct tokens (each has a fresh random jti), signed on
    /// `settings.threads` threads.
    static func generate(_ settings: Settings) throws -> [[UInt8]] {
        let signer = try signer(keysDirectory: settings.keysDirectory)
        let now = Int64(unixTime())
        let threads = max(1, min(settings.threads, settings.count))
        let slots = (0..<threads).map { _ in Slot<Result<[[UInt8]], LoadError>>(.success([])) }
        try Threads.runAll(threads) { t in
            let first = settings.count * t / threads
            let last = settings.count * (t + 1) / threads
            var tokens: [[UInt8]] = []
            tokens.reserveCapacity(last - first)
            do {
                for i in first..<last {
                    var claims = JSONObject()
                    claims["iss"] = .string(settings.issuer)
                    claims["sub"] = .string("load-user-\(i % max(1, settings.subjects))")
                    if let audience = settings.audience { claims["aud"] = .string(audience) }
                    claims["iat"] = .number(JSONNumber(now))
                    claims["nbf"] = .number(JSONNumber(now))
                    claims["exp"] = .number(JSONNumber(now + settings.lifetime))
                    claims["jti"] = .string(Base64URL.encode(SecureRandom.bytes(16)))
                    claims["scope"] = .string(settings.scope)
                    claims["client_id"] = .string(settings.clientID)
                    tokens.append(Array(try signer.sign(claims: claims, type: "at+jwt").utf8))
                }
                slots[t].value = .success(tokens)
            } catch {
                slots[t].value = .failure(LoadError("signing failed: \(error)"))
            }
        }
        var all: [[UInt8]] = []
        all.reserveCapacity(settings.count)
        for slot in slots { all.append(contentsOf: try slot.value.get()) }
        return all
    }
}
