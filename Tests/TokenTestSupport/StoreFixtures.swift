public import Logging
import TokenCrypto
public import TokenStore

/// Sample families, refresh-token records and hashes for store and service tests.
public enum StoreFixtures {
    /// A fixed "now": 2023-11-14T22:13:20Z.
    public static let now: Double = 1_700_000_000

    /// SHA-256 of `plaintext`, as the stores keep refresh tokens.
    public static func hash(_ plaintext: String) -> [UInt8] {
        SHA256.hash(Array(plaintext.utf8))
    }

    /// A live family of `subject`, created at `createdAt` and ending `lifetime` later.
    public static func family(
        id: String = "fam-1",
        subject: String = "user-1",
        createdAt: Double = now,
        lifetime: Double = 2_592_000,
        lastAccessJTI: String? = "jti-0",
        lastAccessExpiresAt: Double? = nil
    ) -> RefreshFamily {
        RefreshFamily(
            id: id,
            subject: subject,
            clientID: "client-1",
            scope: "openid profile",
            dialect: "native",
            createdAt: createdAt,
            expiresAt: createdAt + lifetime,
            lastAccessJTI: lastAccessJTI,
            lastAccessExpiresAt: lastAccessExpiresAt ?? createdAt + 3600
        )
    }

    /// The active token `plaintext` of `familyID`.
    public static func activeToken(
        _ plaintext: String,
        familyID: String = "fam-1",
        createdAt: Double = now
    )
        -> RefreshTokenRecord
    {
        RefreshTokenRecord(hash: hash(plaintext), familyID: familyID, state: .active, createdAt: createdAt)
    }
}

extension StoreFixtures {
    /// The 24-hex public id numbered `number`: `000000000000000000000001` for 1.
    public static func publicID(_ number: Int) -> String {
        let hex = String(number, radix: 16)
        return String(repeating: "0", count: max(0, 24 - hex.count)) + hex
    }

    /// An Argon2id PHC string that differs for every `seed` (not the hash of any password).
    public static func passwordHash(_ seed: String = "0") -> String {
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$\(seed)aGFzaGhhc2hoYXNoaGFzaA"
    }

    /// User number `number`: `user<number>` with `user<number>@example.com`, created at
    /// `createdAt` (default: `number` seconds after `now`).
    public static func newUser(
        _ number: Int,
        username: String? = nil,
        email: String? = nil,
        createdAt: Double? = nil
    ) -> NewUser {
        NewUser(
            publicID: publicID(number),
            username: username ?? "user\(number)",
            email: email ?? "user\(number)@example.com",
            passwordHash: passwordHash("\(number)"),
            createdAt: createdAt ?? now + Double(number)
        )
    }
}

extension StoreFixtures {
    /// A logger that drops everything, for stores opened by tests.
    public static let quietLogger = Logger(label: "tokend.test", factory: { _ in SwiftLogNoOpLogHandler() })
}
