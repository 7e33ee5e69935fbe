import Foundation
import Testing
import TokenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Two tokend processes over one key directory (issue 11, item 4, on the store of one host):
/// keyring changes are transactions under the directory's lock, so the daemons never make
/// two keyrings or two rotations, and both serve the one keyring.
@Suite("Two daemons over one key directory")
struct SharedKeyDirectoryTests {
    @Test("two daemons starting at once on an empty key directory make one keyring, and rotating at once rotate once")
    func oneKeyringOneRotation() async throws {
        let sandbox = try Sandbox("sharedkeys")
        defer { sandbox.remove() }
        let environment = ["TOKEND_JWKS_MAX_AGE": "2s"]
        // The store first, by one daemon alone; then the key directory is emptied again.
        let creator = try await Tokend.start(sandbox, name: "a", environment: environment)
        #expect(await creator.stop() == .exited(0))
        for file in try FileManager.default.contentsOfDirectory(atPath: sandbox.keysDirectory) {
            try FileManager.default.removeItem(atPath: "\(sandbox.keysDirectory)/\(file)")
        }

        async let startA = Tokend.start(sandbox, name: "a", environment: environment)
        async let startB = Tokend.start(sandbox, name: "b", environment: environment)
        let (a, b) = try await (startA, startB)
        defer {
            a.send(SIGKILL)
            b.send(SIGKILL)
        }
        #expect([a, b].filter { $0.log.contains("generated a new keyring") }.count == 1)
        #expect(sandbox.privateKeyFiles.count == 2)
        let jwks = try await http(a.apiSocket, "GET", "/.well-known/jwks.json").text
        #expect(try await http(b.apiSocket, "GET", "/.well-known/jwks.json").text == jwks)

        // Once the next key has been published for the max-age, both are asked to rotate at once.
        try await Task.sleep(for: .milliseconds(2500))
        async let rotateA = a.tokenctl(["keys", "rotate"])
        async let rotateB = b.tokenctl(["keys", "rotate"])
        let results = try await [rotateA, rotateB]
        #expect(results.filter(\.succeeded).count == 1, "\(results)")
        let refused = try #require(results.first { !$0.succeeded })
        #expect(refused.stderr.contains("max-age"), "\(refused)")
        #expect(sandbox.privateKeyFiles.count == 3)
        // The refused daemon adopted the rotation: both publish the same three keys.
        let rotated = try await http(a.apiSocket, "GET", "/.well-known/jwks.json").text
        #expect(rotated != jwks)
        #expect(try await http(b.apiSocket, "GET", "/.well-known/jwks.json").text == rotated)
        #expect(await a.stop() == .exited(0))
        #expect(await b.stop() == .exited(0))
    }
}
