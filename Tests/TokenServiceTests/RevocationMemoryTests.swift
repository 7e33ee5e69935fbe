import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenService

#if canImport(Glibc)
import Glibc
#endif

/// What a revoked jti costs in memory (issue 10, finding 10): every revocation stays in
/// memory until its token expires, so the per-jti cost times a day of revocations is what
/// tokend's RSS grows by.
@Suite("Revocation memory", .serialized)
struct RevocationMemoryTests {
    static let count = 200_000

    @Test("200,000 revoked jtis of tokend's shape take at most 64 bytes each")
    func revokedJTIsAreSmall() throws {
        // tokend's jtis: 128 random bits, base64url (TokenService+Issuance), 22 characters.
        let jtis = (0..<Self.count).map { _ in Base64URL.encode(SecureRandom.bytes(16)) }
        let text = Array(jtis.joined().utf8)
        let expiry = 1_800_000_000.0
        let before = MemoryUse.now()
        let state = RevocationState()
        for index in 0..<Self.count {
            // A string of its own, as a jti parsed from a revoked token is.
            let jti = String(decoding: text[index * 22..<(index + 1) * 22], as: UTF8.self)
            state.revokeAccessToken(jti: jti, expiresAt: expiry)
        }
        let after = MemoryUse.now()

        // The resident set is the process's, shared with the tests running meanwhile: printed
        // for BENCHMARKS.md (run this test alone for the figure), not asserted. The tables are
        // this state's own, and what grows with revocations.
        let growth = after - before
        let table = state.revokedJTITableBytes
        print(
            "revocation memory: \(Self.count) jtis, RSS +\(growth) B "
                + "(\(String(format: "%.1f", Double(growth) / Double(Self.count))) B/jti), "
                + "tables \(table) B (\(String(format: "%.1f", Double(table) / Double(Self.count))) B/jti)"
        )
        #expect(state.counts.jtis == Self.count)
        #expect(table <= 64 * Self.count, "the tables take \(Double(table) / Double(Self.count)) B per revoked jti")
        #expect(state.isAccessTokenRevoked(jti: jtis[0]))
        #expect(state.isAccessTokenRevoked(jti: jtis[Self.count - 1]))
        #expect(!state.isAccessTokenRevoked(jti: Base64URL.encode(SecureRandom.bytes(16))))
    }
}

/// The process's resident set, in bytes.
enum MemoryUse {
    static func now() -> Int {
        // statm: size resident shared … in pages.
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
