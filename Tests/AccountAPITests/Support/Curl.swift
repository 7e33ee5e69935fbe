import Foundation
import TokenTestSupport

extension Tokend {
    /// Runs a seed document's curl command as a new user would: the same arguments, the
    /// document's host name swapped for `localhost` (plain HTTP) and `--unix-socket` added. The
    /// response is read from `-i` output. (Tokens on curl's command line stay out of messages.)
    func curl(_ arguments: [String]) async throws -> Reply {
        let rewritten = arguments.map { argument in
            argument.replacingOccurrences(of: "https://api.appmixer.com", with: "http://localhost")
                .replacingOccurrences(of: "https://api.example.com", with: "http://localhost")
        }
        let started = ContinuousClock.now
        let result = try await run(
            "/usr/bin/curl",
            ["-sS", "-i", "--max-time", "30", "--unix-socket", apiSocket] + rewritten,
            in: sandbox.path
        )
        guard result.status == .exited(0) else {
            throw HarnessError("curl failed (\(result.status)): \(result.output.redactingSecrets.prefix(400))")
        }
        guard let reply = Reply.parseAll(Array(result.stdout.utf8)).first else {
            throw HarnessError("curl printed no HTTP response")
        }
        return Reply(
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
            elapsed: ContinuousClock.now - started
        )
    }
}
