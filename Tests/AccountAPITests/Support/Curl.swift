import Foundation
import TokenTestSupport

extension Daemon {
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
            in: directory.path
        )
        guard result.status == .exited(0) else {
            throw HarnessError("curl failed (\(result.status)): \(result.output.redactingSecrets.prefix(400))")
        }
        guard let split = result.stdout.range(of: "\r\n\r\n") else {
            throw HarnessError("curl printed no HTTP response head")
        }
        var lines = result.stdout[..<split.lowerBound].components(separatedBy: "\r\n")
        let parts = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw HarnessError("curl printed no status line") }
        let headers = lines.compactMap { line -> Header? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return Header(
                name: String(line[..<colon]),
                value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        return Reply(
            status: status,
            headers: headers,
            body: Array(result.stdout[split.upperBound...].utf8),
            elapsed: ContinuousClock.now - started
        )
    }
}
