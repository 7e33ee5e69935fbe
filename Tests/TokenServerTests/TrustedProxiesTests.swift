import Testing

@testable import TokenServer

/// Issue 10, finding 5: whose forwarding headers are believed, and which address a request
/// counts against.
@Suite("TrustedProxies: parsing TOKEND_TRUSTED_PROXIES and choosing the client address")
struct TrustedProxiesTests {
    static let unixPeer = PeerCredentials(pid: 1, uid: 1000, gid: 1000)

    static func request(
        peer: PeerCredentials? = unixPeer,
        remote: String? = nil,
        _ headers: [(String, String)] = []
    ) -> HTTPRequest {
        HTTPRequest(
            method: "POST",
            path: "/user/auth",
            headers: headers.map { (name: $0.0, value: $0.1) },
            peer: remote == nil ? peer : nil,
            remoteAddress: remote.flatMap(IPAddress.init)
        )
    }

    @Test("uids, addresses and CIDRs are read; none and nothing trust nobody")
    func parses() throws {
        let proxies = try TrustedProxies(parsing: "uid:33, 10.0.0.0/8 ,192.0.2.1  fd00::/8")
        #expect(proxies.uids == [33])
        #expect(proxies.networks.map(\.description) == ["10.0.0.0/8", "192.0.2.1/32", "fd00::/8"])
        #expect(proxies.trusts(try #require(IPAddress("10.255.0.1"))))
        #expect(!proxies.trusts(try #require(IPAddress("11.0.0.1"))))
        #expect(proxies.trusts(try #require(IPAddress("fdab::1"))))
        #expect(!proxies.trusts(try #require(IPAddress("192.0.2.2"))))
        #expect(proxies.description == "uid:33,10.0.0.0/8,192.0.2.1/32,fd00::/8")
        #expect(try TrustedProxies(parsing: "none") == .none)
        #expect(TrustedProxies.none.description == "none")
        #expect(try TrustedProxies(parsing: " , ") == .none)
    }

    @Test(
        "entries that are not proxies are refused, each named, with the accepted form",
        arguments: [
            "uid:", "uid:-1", "uid:4294967295", "uid:65534", "10.0.0.1/8", "10.0.0.0/33", "fd00::/129",
            "example.com", "10.0.0.0/", "1.2.3",
        ]
    )
    func refuses(entry: String) {
        #expect {
            _ = try TrustedProxies(parsing: "uid:0, \(entry)")
        } throws: { error in
            let text = "\(error)"
            return text.contains("'\(entry)") && text.contains("expected uid:N")
        }
    }

    @Test("an untrusted peer is known by its socket, whatever headers it sends")
    func untrusted() throws {
        let proxies = try TrustedProxies(parsing: "uid:33, 10.0.0.0/8")
        let spoofed = [("X-Real-IP", "198.51.100.7"), ("X-Forwarded-For", "198.51.100.7")]
        #expect(proxies.clientAddress(of: Self.request(spoofed)) == "uid:1000")
        #expect(proxies.clientAddress(of: Self.request(remote: "192.0.2.5", spoofed)) == "192.0.2.5")
        #expect(TrustedProxies.none.clientAddress(of: Self.request(remote: "::1", spoofed)) == "::/64")
        #expect(TrustedProxies.none.clientAddress(of: Self.request(peer: nil, spoofed)) == "unknown")
    }

    @Test("unix trusts every Unix-socket peer, and no TCP peer")
    func allUnixPeers() throws {
        let proxies = try TrustedProxies(parsing: "unix")
        #expect(proxies.description == "unix")
        let forwarded = [("X-Real-IP", "198.51.100.7")]
        #expect(proxies.clientAddress(of: Self.request(forwarded)) == "198.51.100.7")
        #expect(proxies.clientAddress(of: Self.request(peer: nil, forwarded)) == "198.51.100.7")
        #expect(proxies.clientAddress(of: Self.request(peer: nil)) == "unix")
        #expect(proxies.clientAddress(of: Self.request(remote: "127.0.0.1", forwarded)) == "127.0.0.1")
    }

    @Test("from a trusted proxy: the right-most X-Forwarded-For hop that is no proxy, else X-Real-IP")
    func trusted() throws {
        let proxies = try TrustedProxies(parsing: "uid:1000, 10.0.0.0/8")
        func client(_ headers: [(String, String)], remote: String? = nil) -> String {
            proxies.clientAddress(of: TrustedProxiesTests.request(remote: remote, headers))
        }
        // A proxy that appends to X-Forwarded-For but passes its client's X-Real-IP through:
        // the header the client wrote loses.
        #expect(client([("X-Real-IP", " 198.51.100.7 "), ("X-Forwarded-For", "203.0.113.1")]) == "203.0.113.1")
        #expect(client([("X-Real-IP", " 198.51.100.7 ")]) == "198.51.100.7")
        #expect(client([("X-Forwarded-For", "1.1.1.1, 203.0.113.9, 10.0.0.2")]) == "203.0.113.9")
        #expect(client([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "203.0.113.9,10.1.1.1")]) == "203.0.113.9")
        #expect(client([("X-Forwarded-For", "10.0.0.1, 10.0.0.2")]) == "10.0.0.1")
        // Not an address: ignored (X-Real-IP), or the end of what can be placed (a hop).
        #expect(client([("X-Real-IP", "unknown"), ("X-Forwarded-For", "203.0.113.9")]) == "203.0.113.9")
        #expect(client([("X-Real-IP", "192.0.2.1"), ("X-Real-IP", "192.0.2.2")]) == "uid:1000")
        #expect(client([("X-Forwarded-For", "203.0.113.9, garbage, 10.0.0.3")]) == "10.0.0.3")
        #expect(client([]) == "uid:1000")
        // A trusted TCP proxy; IPv6 clients count per /64, IPv4-mapped ones as IPv4.
        #expect(client([("X-Forwarded-For", "2001:db8:1:2:3:4:5:6")], remote: "10.0.0.9") == "2001:db8:1:2::/64")
        #expect(client([("X-Real-IP", "::ffff:192.0.2.33")], remote: "10.0.0.9") == "192.0.2.33")
        #expect(client([("X-Real-IP", "192.0.2.33")], remote: "10.0.0.9") == "192.0.2.33")
    }
}
