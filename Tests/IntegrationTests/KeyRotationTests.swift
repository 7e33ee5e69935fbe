import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Key rotation as an operator does it (DESIGN §4, issue 3 acceptance): `tokenctl keys rotate`
/// refused while the next key is younger than the JWKS max-age unless forced, the previous key's
/// tokens still active, new tokens under the new kid, SIGHUP reloading the directory, and
/// `tokenctl keys revoke` making a key's tokens inactive at once — also after a restart.
@Suite("Key rotation and revocation through tokenctl")
struct KeyRotationTests {
    /// kid → state, from `tokenctl keys list --json`.
    private func keyStates(_ daemon: Tokend) async throws -> [String: String] {
        let listed = try await daemon.tokenctl(["keys", "list", "--json"])
        guard listed.succeeded, let data = listed.stdout.data(using: .utf8),
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]]
        else { throw HarnessError("tokenctl keys list --json:\n\(listed)") }
        var states: [String: String] = [:]
        for key in keys { if let kid = key["kid"] as? String { states[kid] = key["state"] as? String } }
        return states
    }

    private func kid(_ states: [String: String], _ state: String) -> String? {
        states.first { $0.value == state }?.key
    }

    private func issue(_ daemon: Tokend, _ sub: String) async throws -> String {
        let result = try await daemon.tokenctl(["token", "issue", "--sub", sub])
        guard result.succeeded, let token = result.stdout.split(separator: "\n").first.map(String.init),
            token.kid != nil
        else {
            throw HarnessError("tokenctl token issue:\n\(result)")
        }
        return token
    }

    @Test("a kid or token that begins with - reaches the daemon: tokenctl does not read it as options")
    func dashValues() async throws {
        try await withTokend("dash") { daemon in
            // One kid in 64 begins with "-" (base64url); this one also holds "h", which the
            // argument parser used to read as -h: help printed, exit 0, nothing revoked.
            let kid = "-hQx0Yk2zZ8a3Vq7RkL9mN4pT6wE1cB5dF0gH2jK4lM"
            let revoke = try await daemon.tokenctl(["keys", "revoke", kid])
            #expect(!revoke.succeeded, "\(revoke)")
            #expect(!revoke.stdout.contains("USAGE"), "tokenctl printed help instead of asking the daemon")
            // The daemon was asked, and answered that it has no such key.
            #expect(revoke.stderr.contains("no key \(kid)"), "\(revoke)")
            // Options may come after the value as well as before it.
            let json = try await daemon.tokenctl(["keys", "revoke", kid, "--json"])
            #expect(!json.succeeded && !json.stdout.contains("USAGE"), "\(json)")
            // A refresh token that begins with "-" is revoked like any other (RFC 7009: 200 even when unknown).
            let token = try await daemon.tokenctl(["token", "revoke", "-hAbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCd"])
            #expect(token.succeeded, "\(token)")
            #expect(!token.stdout.contains("USAGE"), "\(token)")
        }
    }

    @Test(
        "rotate refused while the next key is young, --force rotates; old tokens stay active, new ones carry the new kid; SIGHUP reload; revoke"
    )
    func rotationLifecycle() async throws {
        // Room for a loaded machine: the refusal below must come within the max-age of the
        // forced rotation, or the rest of the test sees a rotation it did not ask for.
        let maxAge = 8
        try await withTokend("rotate", environment: ["TOKEND_JWKS_MAX_AGE": "\(maxAge)s"]) { daemon in
            let initial = try await keyStates(daemon)
            let first = try #require(kid(initial, "current"))
            let second = try #require(kid(initial, "next"))
            let tokenA = try await issue(daemon, "alice")
            #expect(tokenA.kid == first)

            // Forced (emergency) rotation: next → current at once, a fresh next key is made.
            let clock = ContinuousClock()
            let forcedAt = clock.now
            let forced = try await daemon.tokenctl(["keys", "rotate", "--force"])
            #expect(forced.succeeded, "\(forced)")
            let afterForce = try await keyStates(daemon)
            #expect(afterForce[second] == "current")
            #expect(afterForce[first] == "previous")
            let third = try #require(kid(afterForce, "next"))

            // The fresh next key has been published for less than the max-age: refused, and says
            // when. It was made after `forcedAt`, so an answer that came before `forcedAt` plus
            // the max-age was decided before the key could be safe, whole seconds or not.
            let refused = try await daemon.tokenctl(["keys", "rotate"])
            if clock.now - forcedAt < .seconds(maxAge) {
                #expect(!refused.succeeded, "rotation of a next key younger than the JWKS max-age was accepted")
                #expect(refused.stderr.contains("max-age"), "the refusal should explain why:\n\(refused)")
                #expect(try await keyStates(daemon)[second] == "current", "a refused rotation changed the keyring")
            }

            let tokenB = try await issue(daemon, "bob")
            #expect(tokenB.kid == second, "new tokens must carry the new current kid")
            #expect(try await daemon.isActive(tokenA), "a token of the previous key must stay active")

            // Unforced rotation succeeds once the next key has been published for max-age. The
            // bound is generous: tokenctl is a process per attempt on a loaded machine. A refusal
            // is thrown, so a timeout names the last answer.
            let rotated = try await eventually(
                "an unforced rotation to be accepted",
                timeout: .seconds(maxAge + 45),
                interval: .milliseconds(250)
            ) {
                let attempt = try await daemon.tokenctl(["keys", "rotate"])
                guard attempt.succeeded else { throw HarnessError("tokenctl keys rotate:\n\(attempt)") }
                return attempt
            }
            #expect(rotated.stdout.contains(third))
            #expect(
                clock.now - forcedAt >= .seconds(maxAge),
                "rotation was accepted before the max-age passed"
            )
            let afterRotate = try await keyStates(daemon)
            #expect(afterRotate[third] == "current")
            #expect(afterRotate[second] == "previous")
            let tokenC = try await issue(daemon, "carol")
            #expect(tokenC.kid == third)
            #expect(try await daemon.isActive(tokenA), "the key before the previous one still covers a live token")
            #expect(try await daemon.isActive(tokenB))

            // SIGHUP reloads the key directory the rotation wrote: same current key, same answers.
            let reloadsBefore = daemon.log.components(separatedBy: "keyring reloaded").count
            daemon.send(SIGHUP)
            _ = try await eventually("the reload to be logged") {
                daemon.log.components(separatedBy: "keyring reloaded").count > reloadsBefore ? true : nil
            }
            let status = try await daemon.tokenctl(["status", "--json"])
            #expect(status.succeeded)
            let statusKeys =
                (try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["keys"]
                as? [[String: Any]]
            let statusCurrent = statusKeys?.first { $0["state"] as? String == "current" }?["kid"] as? String
            #expect(statusCurrent == third, "tokenctl status after SIGHUP shows current \(statusCurrent ?? "none")")
            let afterReload = try await keyStates(daemon)
            #expect(afterReload == afterRotate, "SIGHUP changed the keyring: \(afterRotate) → \(afterReload)")
            #expect(try await issue(daemon, "dave").kid == third)
            #expect(try await daemon.isActive(tokenA))

            // Emergency revocation of the first key: its token is inactive at once, exactly.
            let revoked = try await daemon.tokenctl(["keys", "revoke", first])
            #expect(revoked.succeeded, "\(revoked)")
            let answer = try await daemon.introspect(tokenA)
            #expect(answer.status == 200)
            #expect(answer.text == #"{"active":false}"#)
            #expect(try await daemon.isActive(tokenB))
            #expect(try await daemon.isActive(tokenC))
            let jwks = try await http(daemon.apiSocket, "GET", "/.well-known/jwks.json")
            #expect(!jwks.text.contains(first), "a revoked key is still published in the JWKS")
            #expect(jwks.text.contains(third))

            // Still revoked after a restart on the same directories.
            #expect(await daemon.stop() == .exited(0))
            let restarted = try await Tokend.start(
                daemon.sandbox,
                environment: ["TOKEND_JWKS_MAX_AGE": "\(maxAge)s"]
            )
            do {
                let afterRestart = try await restarted.introspect(tokenA)
                #expect(afterRestart.text == #"{"active":false}"#)
                #expect(try await restarted.isActive(tokenC))
                #expect(try await keyStates(restarted)[first] == "revoked")
            } catch {
                await restarted.stop()
                throw error
            }
            #expect(await restarted.stop() == .exited(0))
        }
    }
}
