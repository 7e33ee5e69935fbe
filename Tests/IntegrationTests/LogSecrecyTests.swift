import Foundation
import Testing
import TokenCrypto
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// DESIGN §6: "Never log a token, a refresh token, a password or key material." tokend's stderr
/// is captured at the most verbose level through a whole scenario — issue, introspect, verify,
/// refresh, retry, revoke, reuse, rotate, explain, key revocation, reload, restart — and searched
/// for every secret the scenario produced.
@Suite("Logs hold no secrets")
struct LogSecrecyTests {
    /// The secrets seen during the scenario, with a label for each (labels are safe to print).
    final class Secrets: @unchecked Sendable {
        // Only touched from the test's own sequential code.
        var items: [(label: String, value: String)] = []

        func access(_ token: String, _ label: String) {
            items.append(("\(label) (whole token)", token))
            if let parts = try? TokenParts(token) {
                items.append(("\(label) payload segment", parts.payloadSegment))
                items.append(("\(label) signature", parts.signatureSegment))
            }
        }

        func refresh(_ token: String?, _ label: String) {
            if let token { items.append(("\(label) refresh token", token)) }
        }

        func add(_ value: String, _ label: String) { items.append((label, value)) }
    }

    /// Where `needle` (or any 16-character piece of it) appears in `haystack`, if anywhere.
    static func leak(of needle: String, in haystack: String) -> String? {
        if haystack.contains(needle) { return "whole value" }
        let characters = Array(needle)
        guard characters.count > 16 else { return nil }
        for start in stride(from: 0, through: characters.count - 16, by: 4) {
            let piece = String(characters[start..<start + 16])
            if haystack.contains(piece) { return "characters \(start)..<\(start + 16)" }
        }
        return nil
    }

    @Test("Through a whole scenario, tokend's stderr never holds a token, a refresh token, a signature or key material")
    func noSecretsInLogs() async throws {
        let sandbox = try Sandbox("logs")
        defer { sandbox.remove() }
        let environment = [
            "TOKEND_LOG_LEVEL": "trace", "TOKEND_REFRESH_GRACE": "1s", "TOKEND_JWKS_MAX_AGE": "1s",
        ]
        let secrets = Secrets()
        var logs: [String] = []
        var keyFilesSeen: Set<String> = []
        // Key material: every PEM body line, the whole body, and the private members as JWK
        // text. Collected before a key revocation removes a file, and at the end.
        func collectKeyMaterial() throws {
            for file in sandbox.privateKeyFiles where !keyFilesSeen.contains(file) {
                keyFilesSeen.insert(file)
                let name = URL(fileURLWithPath: file).lastPathComponent
                let pem = try String(contentsOfFile: file, encoding: .utf8)
                let bodyLines = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.map(String.init)
                secrets.add(bodyLines.joined(), "PEM body of \(name)")
                for (index, line) in bodyLines.enumerated() { secrets.add(line, "PEM line \(index + 1) of \(name)") }
                if let key = try? SigningKey(pem: pem), let jwk = try? key.jwkParameters(includePrivate: true) {
                    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                        if let value = jwk[member] { secrets.add(value, "private JWK member \(member) of \(name)") }
                    }
                }
            }
        }

        let daemon = try await Tokend.start(sandbox, environment: environment)
        defer { daemon.send(SIGKILL) }
        // Issue through the admin API and through tokenctl.
        let plain = try await daemon.issue(sub: "logs-alice", scope: "read")
        secrets.access(plain.accessToken, "admin-issued access token")
        let family = try await daemon.issue(sub: "logs-bob", refresh: true)
        secrets.access(family.accessToken, "family access token 0")
        secrets.refresh(family.refreshToken, "family 0")
        let cli = try await daemon.tokenctl(["token", "issue", "--sub", "logs-carol", "--refresh"])
        #expect(cli.succeeded, "\(cli)")
        let cliLines = cli.stdout.split(separator: "\n").map(String.init)
        if let token = cliLines.first { secrets.access(token, "tokenctl-issued access token") }
        if let line = cliLines.first(where: { $0.hasPrefix("refresh_token: ") }) {
            secrets.refresh(String(line.dropFirst("refresh_token: ".count)), "tokenctl-issued")
        }

        // Introspect (active, and a tampered token), verify, explain.
        #expect(try await daemon.isActive(plain.accessToken))
        let tampered = String(plain.accessToken.dropLast(4)) + "AAAA"
        secrets.access(tampered, "tampered token")
        #expect(try await daemon.isActive(tampered) == false)
        _ = try await http(
            daemon.apiSocket,
            "GET",
            "/v1/verify",
            headers: [("Authorization", "Bearer \(plain.accessToken)")]
        )
        _ = try await http(daemon.apiSocket, "GET", "/v1/verify", headers: [("Authorization", "Bearer \(tampered)")])
        let explained = try await daemon.tokenctl(["token", "explain", plain.accessToken])
        #expect(explained.succeeded, "\(explained)")
        _ = try await daemon.tokenctl(["token", "explain", tampered])
        _ = try await daemon.tokenctl(["token", "introspect", plain.accessToken])

        // Refresh, retry inside the grace window, then reuse after it (family revoked).
        let r0 = try #require(family.refreshToken)
        let first = try await daemon.refresh(r0)
        let successor = try #require(TokenResponse(first))
        secrets.access(successor.accessToken, "family access token 1")
        secrets.refresh(successor.refreshToken, "family 1")
        _ = try await daemon.refresh(r0)
        try await Task.sleep(for: .milliseconds(1300))
        let reuse = try await daemon.refresh(r0)
        #expect(reuse.status == 400)
        let unknownRefresh = Base64URL.encode((0..<32).map { UInt8($0 * 7 & 0xff) })
        secrets.refresh(unknownRefresh, "unknown")
        _ = try await daemon.refresh(unknownRefresh)

        // Revoke (RFC 7009) an access token and a refresh token; tokenctl revoke too.
        _ = try await daemon.revoke(plain.accessToken)
        if let refresh = successor.refreshToken { _ = try await daemon.revoke(refresh, hint: "refresh_token") }
        if let token = cliLines.first { _ = try await daemon.tokenctl(["token", "revoke", token]) }
        // Malformed bodies that carry a token.
        _ = try await http(
            daemon.apiSocket,
            "POST",
            "/oauth2/introspect",
            body: .raw(contentType: "text/plain", Array("token=\(plain.accessToken)".utf8))
        )
        _ = try await http(
            daemon.apiSocket,
            "POST",
            "/oauth2/introspect",
            body: .json("{\"token\":\(plain.accessToken.jsonQuoted)")
        )
        _ = try await http(daemon.apiSocket, "GET", "/v1/verify?token=\(plain.accessToken)")

        // Keys: forced rotation, unforced when due, a key revocation, a reload.
        let oldKid = try #require(plain.accessToken.kid)
        _ = try await daemon.tokenctl(["keys", "rotate", "--force"])
        _ = try await eventually("an unforced rotation", timeout: .seconds(15), interval: .milliseconds(250)) {
            try await daemon.tokenctl(["keys", "rotate"]).succeeded ? true : nil
        }
        let afterRotation = try await daemon.issue(sub: "logs-dave", refresh: true)
        secrets.access(afterRotation.accessToken, "post-rotation access token")
        secrets.refresh(afterRotation.refreshToken, "post-rotation")
        try collectKeyMaterial()
        _ = try await daemon.tokenctl(["keys", "revoke", oldKid])
        daemon.send(SIGHUP)
        _ = try await eventually("the reload") { daemon.log.contains("reloaded") ? true : nil }
        _ = try await daemon.tokenctl(["subject", "logout", "logs-dave"])
        #expect(await daemon.stop() == .exited(0))
        logs.append(daemon.log)

        // A restart reads the keys and the store back.
        let again = try await Tokend.start(sandbox, environment: environment)
        defer { again.send(SIGKILL) }
        _ = try await again.introspect(afterRotation.accessToken)
        #expect(await again.stop() == .exited(0))
        logs.append(again.log)

        try collectKeyMaterial()
        #expect(keyFilesSeen.count >= 4, "the scenario should have produced at least four keys")
        #expect(secrets.items.count > 20)

        let log = logs.joined(separator: "\n")
        let isLogfmt = log.contains("level=")
        #expect(isLogfmt, "tokend's stderr should hold logfmt lines; got \(log.count) bytes")
        // Control: the search reads the real log, where tokens are named by their jti instead.
        let jti = try #require(try TokenParts(plain.accessToken).jti)
        let namesJTI = log.contains(jti)
        #expect(namesJTI, "tokend should identify an issued token by its jti in the log")
        var leaks: [String] = []
        for (label, value) in secrets.items {
            if let piece = Self.leak(of: value, in: log) { leaks.append("\(label): \(piece)") }
        }
        // Only labels are printed, never the secret or the log line that holds it.
        #expect(leaks.isEmpty, "secrets found in tokend's logs:\n\(leaks.joined(separator: "\n"))")
    }
}
