import Glibc
import HTTPSyntax

/// Whose `X-Real-IP` and `X-Forwarded-For` tokend believes (`TOKEND_TRUSTED_PROXIES`,
/// DESIGN §11): peers on the Unix sockets by uid (SO_PEERCRED), peers on the TCP listener by
/// network. Everyone else is identified by the socket alone, whatever headers they send, so a
/// client can neither spread its attempts over made-up addresses nor spend a victim's budget.
public struct TrustedProxies: Sendable, Equatable, CustomStringConvertible {
    /// A value of `TOKEND_TRUSTED_PROXIES` that is not a list of proxies.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Unix-socket peers (by SO_PEERCRED uid) whose forwarding headers are believed.
    public var uids: Set<UInt32>
    /// Every peer of the Unix API socket is a trusted proxy (`unix`): for a socket whose file
    /// mode lets only the gateway connect, and under `PrivateUsers=yes`, where every outside
    /// uid reads as nobody and no uid can tell the gateway apart.
    public var allUnixPeers: Bool
    /// TCP peers (by address) whose forwarding headers are believed; also the hops skipped
    /// in `X-Forwarded-For`.
    public var networks: [IPNetwork]

    /// Trusts nobody: the default.
    public static let none = TrustedProxies(uids: [], networks: [])

    public init(uids: Set<UInt32>, networks: [IPNetwork], allUnixPeers: Bool = false) {
        self.uids = uids
        self.networks = networks
        self.allUnixPeers = allUnixPeers
    }

    /// Reads a list separated by commas or spaces of `uid:N` (a Unix-socket peer), `unix` (every
    /// Unix-socket peer), an IP address or a CIDR (`10.0.0.0/8`, `fd00::/8`) for TCP peers;
    /// `none` or nothing trusts nobody. Throws a sentence naming every entry that is not one of
    /// those.
    public init(parsing text: String) throws(Invalid) {
        var uids: Set<UInt32> = []
        var networks: [IPNetwork] = []
        var allUnixPeers = false
        var problems: [String] = []
        let entries = text.split { $0 == "," || $0 == " " || $0 == "\t" }.map(String.init)
        if entries.count == 1, entries[0].lowercased() == "none" {
            self = .none
            return
        }
        for entry in entries {
            if entry.lowercased() == "unix" {
                allUnixPeers = true
            } else if entry.lowercased().hasPrefix("uid:") {
                let number = entry.dropFirst(4)
                guard let uid = UInt32(number), uid != UInt32.max else {
                    problems.append("'\(entry.prefix(60))' is not uid:N with N a user id")
                    continue
                }
                guard uid != 65534 else {
                    problems.append(
                        "'\(entry)' is nobody: under PrivateUsers=yes every outside peer shows as nobody (to trust every peer the socket's mode lets in, say unix)"
                    )
                    continue
                }
                uids.insert(uid)
            } else {
                switch IPNetwork.parse(entry) {
                case .success(let network): networks.append(network)
                case .failure(let problem): problems.append(problem.description)
                }
            }
        }
        guard problems.isEmpty else {
            throw Invalid(
                description: problems.joined(separator: "; ")
                    + " (expected uid:N, unix, an IP address or a CIDR such as 10.0.0.0/8, separated by commas; or none)"
            )
        }
        self.init(uids: uids, networks: networks, allUnixPeers: allUnixPeers)
    }

    /// The list in the form `TOKEND_TRUSTED_PROXIES` takes (`none` when empty), for logs.
    public var description: String {
        let entries = (allUnixPeers ? ["unix"] : []) + uids.sorted().map { "uid:\($0)" } + networks.map(\.description)
        return entries.isEmpty ? "none" : entries.joined(separator: ",")
    }

    /// Whether `address` is one of the trusted networks.
    public func trusts(_ address: IPAddress) -> Bool {
        networks.contains { $0.contains(address) }
    }

    /// The client address rate limits count against.
    ///
    /// The socket's peer (`uid:N` on a Unix socket, the address on TCP) unless that peer is a
    /// trusted proxy; from a trusted proxy, the right-most `X-Forwarded-For` hop that is not
    /// itself a trusted proxy (hops to its left were written by the client and prove nothing);
    /// with no `X-Forwarded-For`, its `X-Real-IP` when it sent exactly one valid address; else
    /// the peer.
    /// IPv6 clients count per /64, the block one subscriber gets.
    public func clientAddress(of request: HTTPRequest) -> String {
        let peerKey: String
        let peerTrusted: Bool
        if let address = request.remoteAddress {
            peerKey = address.rateLimitKey
            peerTrusted = trusts(address)
        } else if let peer = request.peer {
            peerKey = "uid:\(peer.uid)"
            peerTrusted = allUnixPeers || uids.contains(peer.uid)
        } else if allUnixPeers, request.listener != .tcp {
            peerKey = "unix"
            peerTrusted = true
        } else {
            return "unknown"
        }
        guard peerTrusted else { return peerKey }
        // X-Forwarded-For first: a proxy that appends to it but passes other headers through
        // (nginx without `proxy_set_header X-Real-IP`) would otherwise hand tokend whatever
        // X-Real-IP its client wrote.
        var leftmostTrusted: IPAddress?
        let hops = request.headerValues("X-Forwarded-For").flatMap { $0.split(separator: ",") }
        for hop in hops.reversed() {
            // A hop that is not an address: nothing left of it can be placed.
            guard let address = IPAddress(HTTPSyntax.trimmed(hop)) else { break }
            if !trusts(address) { return address.rateLimitKey }
            leftmostTrusted = address
        }
        if let leftmostTrusted { return leftmostTrusted.rateLimitKey }
        guard hops.isEmpty else { return peerKey }
        let real = request.headerValues("X-Real-IP")
        if real.count == 1, let address = IPAddress(HTTPSyntax.trimmed(real[0])) { return address.rateLimitKey }
        return peerKey
    }
}

/// An IPv4 or IPv6 address; IPv4 is held as IPv4-mapped IPv6, so one comparison serves both.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bytes of the (mapped) IPv6 address, most significant first.
    let high: UInt64
    let low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses dotted IPv4 or textual IPv6 (no zone, no brackets, no port).
    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        // Plain byte buffers rather than in_addr/in6_addr: the address bytes are all we read.
        var v4 = [UInt8](repeating: 0, count: 4)
        if v4.withUnsafeMutableBytes({ inet_pton(AF_INET, text, $0.baseAddress) }) == 1 {
            let value = v4.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(value))
            return
        }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard bytes.withUnsafeMutableBytes({ inet_pton(AF_INET6, text, $0.baseAddress) }) == 1 else { return nil }
        self.init(
            high: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) },
            low: bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
        )
    }

    /// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`).
    public var isIPv4: Bool { high == 0 && low >> 32 == 0xFFFF }

    public var description: String {
        if isIPv4 {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        }
        var v6 = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            v6[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            v6[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i)))
        }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let written = v6.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard written != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// What rate limits count against: the address for IPv4, the /64 for IPv6 (one
    /// subscriber's block: counting single addresses there would count nothing).
    public var rateLimitKey: String {
        isIPv4 ? description : IPAddress(high: high, low: 0).description + "/64"
    }
}

/// An address block (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a block of one.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    /// Prefix length over the 128 bits of the (mapped) address.
    let prefix: Int

    /// Reads a CIDR or a bare address; refuses bits set beyond the prefix (`10.0.0.1/8` is
    /// more likely a typo than a network).
    public static func parse(_ text: String) -> Result<IPNetwork, TrustedProxies.Invalid> {
        let shown = String(text.prefix(60))
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else {
            return .failure(.init(description: "'\(shown)' is not an IP address or CIDR"))
        }
        let width = address.isIPv4 ? 32 : 128
        var length = width
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...width).contains(n) else {
                return .failure(.init(description: "'\(shown)' has a prefix length outside 0…\(width)"))
            }
            length = n
        }
        let network = IPNetwork(address: address, prefix: address.isIPv4 ? 96 + length : length)
        guard network.masked(address) == address else {
            return .failure(
                .init(
                    description:
                        "'\(shown)' has bits set beyond its prefix (did you mean \(network.masked(address))/\(length)?)"
                )
            )
        }
        return .success(network)
    }

    init(address: IPAddress, prefix: Int) {
        self.address = address
        self.prefix = prefix
    }

    func masked(_ other: IPAddress) -> IPAddress {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits)) }
        return IPAddress(high: other.high & mask(prefix), low: other.low & mask(prefix - 64))
    }

    public func contains(_ other: IPAddress) -> Bool { masked(other) == address }

    public var description: String {
        "\(address)/\(address.isIPv4 ? prefix - 96 : prefix)"
    }
}

extension HTTPRequest {
    /// Every value of a header, case-insensitively, in order.
    func headerValues(_ name: String) -> [String] {
        headers.filter { HTTPSyntax.equalsIgnoringCase($0.name, name) }.map(\.value)
    }
}
