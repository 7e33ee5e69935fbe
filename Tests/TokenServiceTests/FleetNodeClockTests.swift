import Logging
import Testing
import TokenService
import TokenStore
import TokenTestSupport

/// Issue 12 item 3: a node whose clock is off the database's by more than half the leeway
/// warns once per change, and says so where `/healthz` reads it.
@Suite("FleetNode: the clock offset")
struct FleetNodeClockTests {
    /// A registry nobody calls here.
    struct NoRegistry: FleetRegistry {
        func heartbeat(_ beat: NodeHeartbeat) async throws -> Double { 0 }
        func leave(id: String) async throws {}
        func nodes(lag: Bool) async throws -> [NodeRecord] { [] }
        func newestFollowedPosition() async throws -> FollowCursor? { nil }
        func runningTransactions() async throws -> [Int64] { [] }
        func keyPublication(kid: String, liveWithin: Double) async throws -> KeyPublication {
            KeyPublication(kid: kid, missing: [], everywhereFor: nil)
        }
    }

    @Test("beyond half the leeway: one warning when it goes off, one notice when it comes back, none in between")
    func warnsOncePerChange() {
        let node = FleetNode(registry: NoRegistry(), version: "test", initialNextKid: nil, leeway: 30, started: 0)
        let capture = LogCapture()
        let logger = capture.logger()
        node.note(offset: 0.01, logger: logger)
        #expect(node.clockWarning == nil)
        #expect(capture.all.isEmpty)
        node.note(offset: -16, logger: logger)
        node.note(offset: -17, logger: logger)
        node.note(offset: -18, logger: logger)
        #expect(capture.warnings.count == 1, "\(capture.all.map(\.message))")
        #expect(capture.warnings.first?.metadata["offset_seconds"] == "-16.000")
        #expect(node.clockOffset == -18)
        #expect(node.clockWarning?.contains("-18.000 s off the database's") == true, "\(node.clockWarning ?? "")")
        node.note(offset: 14.9, logger: logger)
        #expect(node.clockWarning == nil)
        #expect(capture.all.count == 2)
        #expect(capture.all.last?.level == .notice)
        #expect(FleetNode.signed(0.0025) == "+0.003" || FleetNode.signed(0.0025) == "+0.002")
        #expect(FleetNode.signed(-1.5) == "-1.500")
    }

    @Test("a node whose heartbeat stopped is waited for until the staleness bound has passed, at least 5 s")
    func waitCutoff() {
        #expect(FleetNode.waitCutoff(maxStaleness: 30) == 31)
        #expect(FleetNode.waitCutoff(maxStaleness: 3) == 5)
        #expect(FleetNode.waitCutoff(maxStaleness: 0) == 5)
    }
}
