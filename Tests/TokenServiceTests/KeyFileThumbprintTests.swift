import Foundation
import JOSE
import Testing
import TokenCrypto
import TokenService
import TokenStore
import TokenTestSupport

/// Issue 10, finding 8: a key file that does not hold the key its kid names is refused at
/// start and on reload, and a refused reload keeps the keys that were serving.
@Suite("Key files must match their kid")
struct KeyFileThumbprintTests {
    /// A key directory with a current and a next key, the current file replaced by the next
    /// key's PEM (mode 0600).
    static func swappedDirectory() async throws -> (TemporaryDirectory, Keyring, current: String, next: String) {
        let temporary = try TemporaryDirectory()
        let directory = KeyDirectory(path: temporary.file("keys"))
        let keyring = try await Keyring(
            storage: directory,
            configuration: .test(),
            clock: TestClock().serviceClock,
            logger: StoreFixtures.quietLogger
        )
        let document = keyring.snapshot.document
        let current = try #require(KeyringState.kid(.current, in: document))
        let next = try #require(KeyringState.kid(.next, in: document))
        let pem = try Data(contentsOf: URL(fileURLWithPath: directory.keyPath(next)))
        try pem.write(to: URL(fileURLWithPath: directory.keyPath(current)))
        #expect(chmod(directory.keyPath(current), 0o600) == 0)
        return (temporary, keyring, current, next)
    }

    @Test("loading refuses the file, naming it, its kid and its thumbprint")
    func loadRefusesMismatch() async throws {
        let (temporary, _, current, next) = try await KeyFileThumbprintTests.swappedDirectory()
        let directory = KeyDirectory(path: temporary.file("keys"))
        let error = try await #require(throws: KeyDirectory.Failure.self) { try await directory.load() }
        #expect(error.description.contains(directory.keyPath(current)))
        #expect(error.description.contains("kid \(current)"))
        #expect(error.description.contains("thumbprint is \(next)"))
        #expect(!error.description.contains("PRIVATE KEY"))
    }

    @Test("a reload that meets a mismatched key keeps signing with the published key")
    func reloadKeepsPreviousKeys() async throws {
        let (temporary, keyring, current, _) = try await KeyFileThumbprintTests.swappedDirectory()
        let before = keyring.snapshot
        await #expect(throws: KeyDirectory.Failure.self) { try await keyring.reload() }
        #expect(keyring.snapshot === before)
        #expect(keyring.snapshot.signer.kid == current)
        // A fresh start refuses the directory.
        await #expect(throws: KeyDirectory.Failure.self) {
            _ = try await Keyring(
                storage: KeyDirectory(path: temporary.file("keys")),
                configuration: .test(),
                clock: TestClock().serviceClock,
                logger: StoreFixtures.quietLogger
            )
        }
    }
}
