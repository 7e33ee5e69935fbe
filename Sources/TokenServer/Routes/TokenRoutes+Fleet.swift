import JOSE
import TokenService
import TokenStore

/// The fleet on the admin socket (issue 12 items 3-4): `GET /admin/fleet`, and `?wait=` on the
/// routes that revoke (a token, a key, a user's sessions, a user).
extension TokenRoutes {
    func addFleet(to router: inout Router) {
        let service = self.service
        router.add(
            "GET",
            "/admin/fleet",
            name: "admin_fleet",
            .async { _ in
                await TokenRoutes.fleetBody(service)
            }
        )
    }

    /// Every node's row with its lag; on a store of its own (SQLite), says there is no fleet.
    static func fleetBody(_ service: TokenService) async -> HTTPResponse {
        guard let fleet = service.fleet else {
            return .json(
                200,
                .object(
                    JSONObject([
                        ("fleet", .bool(false)),
                        (
                            "reason",
                            .string(
                                "this node keeps its own store (SQLite): it is the only node, there is no fleet to list"
                            )
                        ),
                        ("nodes", .array([])),
                    ])
                )
            )
        }
        do {
            let nodes = try await fleet.registry.nodes(lag: true)
            let newest = try await fleet.registry.newestFollowedPosition()
            let rows: [JSONValue] = nodes.map { node in
                var object = JSONObject()
                object["id"] = .string(node.id)
                object["host"] = .string(node.host)
                object["pid"] = .number(JSONNumber(Int(node.pid)))
                object["version"] = .string(node.version)
                object["started"] = .string(NumericDate(seconds: node.started)?.iso8601 ?? "?")
                object["last_seen"] = .string(NumericDate(seconds: node.lastSeen)?.iso8601 ?? "?")
                object["seconds_since_seen"] = number(node.silentFor)
                object["state"] = .string(node.silentFor > FleetNode.stoppedAfter ? "stopped" : "live")
                object["this_node"] = .bool(node.id == fleet.id)
                object["applied"] = .string(node.applied.description)
                object["behind_events"] = .number(JSONNumber(node.behindEvents ?? 0))
                object["behind_seconds"] = number(node.behindSeconds ?? 0)
                object["clock_offset_seconds"] = node.clockOffset.map { number($0) } ?? .null
                object["next_kid"] = node.nextKid.map { .string($0) } ?? .null
                object["jwks_etag"] = .string(node.jwksETag)
                return .object(object)
            }
            return .json(
                200,
                .object(
                    JSONObject([
                        ("fleet", .bool(true)),
                        ("newest_event", newest.map { .string($0.description) } ?? .null),
                        ("stopped_after_seconds", number(FleetNode.stoppedAfter)),
                        ("nodes", .array(rows)),
                    ])
                )
            )
        } catch {
            return .error(
                status: 503,
                error: "temporarily_unavailable",
                description: "cannot read the fleet's heartbeats: the token store is unavailable; retry shortly",
                headers: [("Retry-After", "1")]
            )
        }
    }

    static func number(_ value: Double) -> JSONValue {
        .number(JSONNumber((value * 1000).rounded() / 1000) ?? JSONNumber(0))
    }

    /// The longest a `?wait=` waits; a longer duration is cut to it.
    static let longestWait: Double = 300

    /// The `wait` query parameter: absent, a duration (`2s`, `500ms`, `1m`; at most
    /// `longestWait`), or a 400 when it is not a duration.
    static func waitParameter(_ request: HTTPRequest) -> WaitParameter {
        guard let text = request.queryValue("wait") else { return .absent }
        let seconds: Double?
        if text.hasSuffix("ms"), let milliseconds = Int64(text.dropLast(2)), milliseconds >= 0 {
            seconds = Double(milliseconds) / 1000
        } else {
            seconds = DurationText.parse(text).map(Double.init)
        }
        guard let seconds else {
            return .refused(
                .error(
                    status: 400,
                    error: "invalid_request",
                    description:
                        "wait must be a duration like 5s, 500ms or 1m (at most \(Int(longestWait))s is waited); it was \(text.prefix(40))"
                )
            )
        }
        return .wait(.milliseconds(Int64(min(seconds, longestWait) * 1000)))
    }

    enum WaitParameter {
        case absent
        case wait(Duration)
        case refused(HTTPResponse)
    }

    /// Runs `change`; with `?wait=DURATION`, answers only once every live node has applied what
    /// it wrote (the position the store recorded), or 504 naming the nodes that have not.
    /// Without `wait` (or when `change` fails), `change`'s answer as it is.
    static func waiting(
        _ request: HTTPRequest,
        _ service: TokenService,
        _ change: @Sendable () async -> HTTPResponse
    ) async -> HTTPResponse {
        let wait: Duration
        switch waitParameter(request) {
        case .absent: return await change()
        case .wait(let value): wait = value
        case .refused(let refusal): return refusal
        }
        let written = WrittenPositions()
        let response = await WrittenPositions.$current.withValue(written) { await change() }
        guard (200..<300).contains(response.status) else { return response }
        let outcome: FleetWaitOutcome
        do {
            outcome = try await service.waitForFleet(positions: written.all, timeout: wait)
        } catch {
            return .error(
                status: 503,
                error: "temporarily_unavailable",
                description:
                    "the change is made, but whether every node applied it cannot be read: the token store is unavailable",
                headers: [("Retry-After", "1")]
            )
        }
        var summary = JSONObject()
        summary["fleet"] = .bool(outcome.fleet)
        summary["applied"] = .array(outcome.applied.map { .string($0) })
        summary["not_waited_for"] = .array(outcome.stopped.map { .string($0) })
        summary["pending"] = .array(outcome.pending.map { .string($0) })
        guard outcome.succeeded else {
            summary["error"] = .string("fleet_wait_timeout")
            summary["error_description"] = .string(
                "the change is made, but \(outcome.pending.count) live node(s) have not applied it within "
                    + "\(describe(wait)): \(outcome.pending.joined(separator: ", "))"
            )
            return .json(504, .object(summary))
        }
        var body = (try? JSONParser().parse(response.body))?.objectValue ?? JSONObject()
        body["fleet_wait"] = .object(summary)
        var headers = response.headers.filter { $0.name.lowercased() != "content-type" }
        headers.insert(("Content-Type", "application/json"), at: 0)
        return HTTPResponse(status: response.status, headers: headers, body: JSONValue.object(body).compactBytes)
    }

    static func describe(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }
}
