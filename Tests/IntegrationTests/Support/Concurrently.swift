import Foundation
import Synchronization
import TokenTestSupport

/// Sends each request on its own connection at once (every connection is opened first, then
/// all are released together): the replies in the order of `requests`.
func concurrently(_ requests: [(socket: String, bytes: [UInt8])]) async throws -> [Result<Reply, HarnessError>] {
    let gate = Gate(parties: requests.count)
    return try await withThrowingTaskGroup(of: (Int, Result<Reply, HarnessError>).self) { group in
        for (index, request) in requests.enumerated() {
            group.addTask {
                let result = try await onThread { () -> Result<Reply, HarnessError> in
                    do {
                        let connection = try UnixConnection(path: request.socket, timeout: 30)
                        defer { connection.close() }
                        gate.arriveAndWait()
                        try connection.send(request.bytes)
                        return .success(try connection.readResponse())
                    } catch {
                        gate.arriveAndWait()  // never leave the others waiting (no-op once released)
                        return .failure(HarnessError("\(error)"))
                    }
                }
                return (index, result)
            }
        }
        var results: [(Int, Result<Reply, HarnessError>)] = []
        for try await result in group { results.append(result) }
        return results.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

/// `POST /oauth2/token` with grant_type=refresh_token, as the bytes of one request.
func refreshGrantRequest(_ refreshToken: String) -> [UInt8] {
    requestBytes(
        "POST",
        "/oauth2/token",
        body: .form([("grant_type", "refresh_token"), ("refresh_token", refreshToken)])
    )
}

/// The replies of `concurrently`, and its transport failures (connect, send, read) apart.
func repliesAndFailures(_ results: [Result<Reply, HarnessError>]) -> (replies: [Reply], failures: [HarnessError]) {
    var replies: [Reply] = []
    var failures: [HarnessError] = []
    for result in results {
        switch result {
        case .success(let reply): replies.append(reply)
        case .failure(let error): failures.append(error)
        }
    }
    return (replies, failures)
}

/// A one-shot barrier: the first `parties` arrivals wait until the last one arrives; later
/// arrivals pass straight through.
final class Gate: Sendable {
    private let condition = NSCondition()
    private let state: Mutex<Int>
    private let parties: Int

    init(parties: Int) {
        self.parties = parties
        state = Mutex(0)
    }

    func arriveAndWait() {
        condition.lock()
        defer { condition.unlock() }
        let arrived = state.withLock { value -> Int in
            value += 1
            return value
        }
        if arrived >= parties {
            condition.broadcast()
            return
        }
        let deadline = Date().addingTimeInterval(30)
        while state.withLock({ $0 }) < parties {
            if !condition.wait(until: deadline) { return }
        }
    }
}
