/// A maximum token lifetime (DESIGN §3). A token complies when it has `exp` and `iat`,
/// `exp − iat ≤ seconds`, and `iat` is not in the future beyond the leeway.
public struct LifetimePolicy: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let seconds: Int64

    public init(name: String, seconds: Int64) {
        self.name = name
        self.seconds = seconds
    }

    public static let oneHour = LifetimePolicy(name: "1h", seconds: 3_600)
    public static let oneDay = LifetimePolicy(name: "24h", seconds: 86_400)
    public static let thirtyDays = LifetimePolicy(name: "30d", seconds: 2_592_000)

    /// The built-in policies, shortest first.
    public static let builtIn: [LifetimePolicy] = [.oneHour, .oneDay, .thirtyDays]

    /// `1h`, `24h`, `30d`, or any positive duration (`15m`, `7d`, `1h30m`, `900`).
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces
        if let builtIn = LifetimePolicy.builtIn.first(where: { $0.name == trimmed.lowercased() }) {
            self = builtIn
            return
        }
        guard let seconds = DurationText.parse(trimmed), seconds > 0 else { return nil }
        self.init(name: trimmed, seconds: seconds)
    }

    public var description: String {
        LifetimePolicy.builtIn.contains(self) ? name : "\(name) (\(seconds)s)"
    }

    /// The smallest built-in policy a lifetime fits, or nil when it is longer than 30d.
    public static func smallestFitting(lifetime: Double) -> LifetimePolicy? {
        lifetime < 0 ? nil : builtIn.first { lifetime <= Double($0.seconds) }
    }

    /// Checks `claims` against this policy; returns the violation, or nil when it complies.
    public func violation(of claims: JWTClaims, now: Double, leeway: Double) -> JOSEError? {
        guard let exp = claims.exp else {
            return JOSEError(.lifetime, "token has no exp, so it never expires; the \(name) policy requires one")
        }
        guard let iat = claims.iat else {
            return JOSEError(
                .lifetime,
                "token has no iat, so its lifetime cannot be checked against the \(name) policy"
            )
        }
        if iat.seconds > now + leeway {
            return JOSEError(
                .lifetime,
                "iat is \(DurationText.describe(iat.seconds - now)) in the future; the \(name) policy cannot hold"
            )
        }
        let lifetime = exp.seconds - iat.seconds
        if lifetime < 0 {
            return JOSEError(
                .lifetime,
                "exp (\(exp.iso8601)) is before iat (\(iat.iso8601)); the token's lifetime is not meaningful"
            )
        }
        if lifetime > Double(seconds) {
            return JOSEError(
                .lifetime,
                "lifetime \(DurationText.describe(lifetime)) exceeds the \(description) policy"
            )
        }
        return nil
    }
}
