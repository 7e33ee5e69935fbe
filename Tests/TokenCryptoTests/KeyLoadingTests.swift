import Foundation
import Testing
import TokenCrypto

/// Public keys that tokend must refuse, embedded as text (public keys hold no secret).
enum RefusedPublicKeys {
    /// A 1024-bit RSA public key: below the 2048-bit minimum.
    static let rsa1024 = """
        -----BEGIN PUBLIC KEY-----
        MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCkIbr/dgFePfIUf7H0A/Z4JJAo
        Nrff8KQbpI0vTQHzbr2QFLGzZ4CPuLdai+9cFKSnWC5w7EFJAN/1fRhxy6B017Gv
        FEfJVqKE108RKfmnaNjSgE/qU9ypI+XsGUrVXhvAtig5VK6efiXZ+8N6ful6RtcI
        +WeEVVO7qGWhUOZDSQIDAQAB
        -----END PUBLIC KEY-----

        """

    /// secp256k1 (ES256K), a curve tokend does not support.
    static let secp256k1 = """
        -----BEGIN PUBLIC KEY-----
        MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEWy93QRXvaYXxzHHQa1LyRWfChUtepIHR
        kgCNgCyoRFm03mtnQBI1E4t4uNZL1iwMAllj2rsmk8s6gR8T4uawFA==
        -----END PUBLIC KEY-----

        """

    /// P-521 (ES512), not among tokend's algorithms.
    static let p521 = """
        -----BEGIN PUBLIC KEY-----
        MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQAbNQxt5nZhvCx4/5Es/Aneuklzd9M
        tIDF1TwJf1OQ5IGglZm8kmIFdS/L1ISJZiHtjGzO/5NO/fTqY66lwFUoHy8APykW
        F94vwDtcCSCXot8YqOmtsuP+YfyutSlBvw5Cc0DZzt9036QutTrAtFC16jDMmSpA
        cR60WSQPxYqMVPzAnrg=
        -----END PUBLIC KEY-----

        """

    /// Ed448, not among tokend's algorithms.
    static let ed448 = """
        -----BEGIN PUBLIC KEY-----
        MEMwBQYDK2VxAzoAUnmqb89hPYa3JbUpygH1X3MADZ1hycE6q8dqzyvya44CLY5W
        tvDfq157iD7lWWgGdyqpR6TZbqSA
        -----END PUBLIC KEY-----

        """

    /// A throwaway P-256 key encrypted with the passphrase "test".
    static let encryptedPrivate = """
        -----BEGIN ENCRYPTED PRIVATE KEY-----
        MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhuqic+5/aMUAICCAAw
        DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEGDLralfK6C5X95AjthKV9EEgZBf
        t3G9JzVnIa7VgEzz91Je8nmXmSG/o5kGhu7spaNg7LNtmsXls3p6DR/GNv+wfaDt
        fB9S+OLO3Orfv/X4IPHjdJU37vZiRynL6mI3gXsvg8LZCUC2eDadwar+6WQjpsgW
        ZR9i6K80qJ4mphF/gat1KSp42K6Mk7cs1bnTOCnC8pBaJirmsegAGgsIWutKPXk=
        -----END ENCRYPTED PRIVATE KEY-----

        """
}

/// The DER body of a PEM document.
func derBody(ofPEM pem: String) -> [UInt8] {
    let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    return [UInt8](Data(base64Encoded: body) ?? Data())
}

/// Expects `body` to throw a CryptoError with `code`.
func expectCryptoError(
    _ code: CryptoError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: CryptoError.self, sourceLocation: sourceLocation) { try body() }
    #expect(error?.code == code, "got \(error.map { "\($0.code)" } ?? "no error")", sourceLocation: sourceLocation)
}

@Suite("Key loading and key strength")
struct KeyLoadingTests {
    static let asymmetric: [SignatureAlgorithm] = [.es256, .es384, .edDSA, .rs256, .ps256]

    @Test("RSA keys below 2048 bits are refused when generated and when loaded")
    func weakRSA() throws {
        expectCryptoError(.weakKey) { _ = try SigningKey.generate(.rs256, rsaBits: 1024) }
        expectCryptoError(.weakKey) { _ = try SigningKey.generate(.ps256, rsaBits: 2047) }
        expectCryptoError(.weakKey) { _ = try VerifyingKey(pem: RefusedPublicKeys.rsa1024) }
        expectCryptoError(.weakKey) { _ = try VerifyingKey(pem: RefusedPublicKeys.rsa1024, algorithm: .ps256) }
        expectCryptoError(.weakKey) { _ = try VerifyingKey(spki: derBody(ofPEM: RefusedPublicKeys.rsa1024)) }
    }

    @Test("an HS256 secret needs at least 32 bytes", arguments: [0, 1, 16, 31])
    func shortSecrets(length: Int) {
        let secret = SecureRandom.bytes(length)
        expectCryptoError(.weakKey) { _ = try SigningKey(secret: secret) }
        expectCryptoError(.weakKey) { _ = try VerifyingKey(secret: secret) }
    }

    @Test("a 32-byte HS256 secret is accepted")
    func minimumSecret() throws {
        let key = try SigningKey(secret: SecureRandom.bytes(32))
        #expect(key.algorithm == .hs256)
        #expect(key.secretBytes?.count == 32)
    }

    @Test("a public key in PEM, DER or JWK form is never accepted as an HMAC secret", arguments: asymmetric)
    func publicKeyIsNotASecret(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let pem = try key.verifyingKey.publicPEM()
        let der = try key.verifyingKey.spkiDER()
        let privatePEM = try key.pkcs8PEM()
        let jwkText = "{\"kty\":\"\(algorithm.keyType)\",\"x\":\"...\",\"y\":\"...\",\"n\":\"...........\"}"
        let candidates: [(String, [UInt8])] = [
            ("public PEM", Array(pem.utf8)),
            ("public PEM after blank lines", Array(("\n\n  " + pem).utf8)),
            ("SPKI DER", der),
            ("private PEM", Array(privatePEM.utf8)),
            ("PKCS#8 DER", derBody(ofPEM: privatePEM)),
            ("JWK text", Array(jwkText.utf8)),
        ]
        for (form, bytes) in candidates {
            #expect(bytes.count >= 32, "\(form)")
            let signing = #expect(throws: CryptoError.self, "\(form)") { try SigningKey(secret: bytes) }
            #expect(signing?.code == .algorithmMismatch, "\(form)")
            let verifying = #expect(throws: CryptoError.self, "\(form)") { try VerifyingKey(secret: bytes) }
            #expect(verifying?.code == .algorithmMismatch, "\(form)")
        }
    }

    @Test("an OpenSSH public key line is not accepted as an HMAC secret")
    func sshKeyIsNotASecret() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1bm55IGJ1bm55IGJ1bm55IGJ1bm55IGJ1bm55 user@example"
        expectCryptoError(.algorithmMismatch) { _ = try VerifyingKey(secret: Array(line.utf8)) }
    }

    @Test("a key is bound to the algorithm of its type and curve")
    func algorithmInference() throws {
        for algorithm in KeyLoadingTests.asymmetric {
            let pem = try SigningKey.generate(algorithm).pkcs8PEM()
            let inferred = try SigningKey(pem: pem)
            // RSA keys default to RS256; PS256 must be asked for.
            #expect(inferred.algorithm == (algorithm == .ps256 ? .rs256 : algorithm))
            #expect(try SigningKey(pem: pem, algorithm: algorithm).algorithm == algorithm)
        }
    }

    @Test(
        "a key asked to serve another algorithm is refused",
        arguments: [
            (SignatureAlgorithm.es256, SignatureAlgorithm.es384), (.es256, .rs256), (.es384, .es256), (.edDSA, .es256),
            (.rs256, .es256), (.rs256, .edDSA), (.es256, .hs256), (.rs256, .hs256),
        ]
    )
    func algorithmMismatch(actual: SignatureAlgorithm, requested: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(actual)
        let pem = try key.pkcs8PEM()
        let publicPEM = try key.verifyingKey.publicPEM()
        expectCryptoError(.algorithmMismatch) { _ = try SigningKey(pem: pem, algorithm: requested) }
        expectCryptoError(.algorithmMismatch) { _ = try VerifyingKey(pem: publicPEM, algorithm: requested) }
        expectCryptoError(.algorithmMismatch) {
            _ = try VerifyingKey(spki: key.verifyingKey.spkiDER(), algorithm: requested)
        }
    }

    @Test(
        "keys of unsupported curves are refused",
        arguments: [RefusedPublicKeys.secp256k1, RefusedPublicKeys.p521, RefusedPublicKeys.ed448]
    )
    func unsupportedCurves(pem: String) {
        expectCryptoError(.algorithmMismatch) { _ = try VerifyingKey(pem: pem) }
    }

    @Test("an encrypted private key is refused with a message that says so, without prompting")
    func encryptedPEM() {
        let error = #expect(throws: CryptoError.self) { try SigningKey(pem: RefusedPublicKeys.encryptedPrivate) }
        #expect(error?.code == .invalidKey)
        #expect(error?.description.contains("encrypted") == true)
    }

    @Test("garbage is refused as a key and the message never echoes the input")
    func garbagePEM() {
        let marker = "SECRETMARKER0123456789"
        let inputs = [
            "no pem here \(marker)",
            "-----BEGIN PRIVATE KEY-----\n\(marker)\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\n\(marker)\n-----END PUBLIC KEY-----\n",
        ]
        for input in inputs {
            let signing = #expect(throws: CryptoError.self) { try SigningKey(pem: input) }
            #expect(signing?.code == .invalidKey)
            #expect(signing?.description.contains(marker) == false)
            let verifying = #expect(throws: CryptoError.self) { try VerifyingKey(pem: input) }
            #expect(verifying?.code == .invalidKey)
            #expect(verifying?.description.contains(marker) == false)
        }
        expectCryptoError(.invalidKey) { _ = try VerifyingKey(spki: Array(marker.utf8)) }
    }

    @Test("a public key PEM is not a signing key")
    func publicPEMIsNotPrivate() throws {
        let publicPEM = try SigningKey.generate(.es256).verifyingKey.publicPEM()
        expectCryptoError(.invalidKey) { _ = try SigningKey(pem: publicPEM) }
    }

    @Test("a private key PEM yields its public half for verification", arguments: asymmetric)
    func verifyingKeyFromPrivatePEM(algorithm: SignatureAlgorithm) throws {
        let key = try SigningKey.generate(algorithm)
        let verifier = try VerifyingKey(pem: key.pkcs8PEM(), algorithm: algorithm)
        let message = Array("payload".utf8)
        #expect(try verifier.verify(signature: key.sign(message), message: message))
        #expect(try verifier.thumbprint() == key.thumbprint())
        #expect(
            try VerifyingKey(spki: key.verifyingKey.spkiDER(), algorithm: algorithm).thumbprint() == key.thumbprint()
        )
    }

    @Test("an HS256 secret has no PEM or public form")
    func secretHasNoPublicForm() throws {
        let key = try SigningKey.generate(.hs256)
        expectCryptoError(.algorithmMismatch) { _ = try key.pkcs8PEM() }
        expectCryptoError(.algorithmMismatch) { _ = try key.verifyingKey.publicPEM() }
        expectCryptoError(.algorithmMismatch) { _ = try key.verifyingKey.spkiDER() }
        #expect(key.verifyingKey.keyDescription == "HMAC secret (32 bytes)")
    }

    @Test("key descriptions name the type and size, never the material")
    func keyDescriptions() throws {
        #expect(try SigningKey.generate(.es256).verifyingKey.keyDescription.hasPrefix("EC "))
        #expect(try SigningKey.generate(.edDSA).verifyingKey.keyDescription == "Ed25519")
        #expect(try SigningKey.generate(.rs256).verifyingKey.keyDescription == "RSA 2048-bit")
    }

    @Test("a JWK without the private member d is not a signing key", arguments: asymmetric)
    func jwkWithoutPrivateMember(algorithm: SignatureAlgorithm) throws {
        let publicJWK = try SigningKey.generate(algorithm).verifyingKey.jwkParameters()
        expectCryptoError(.notPrivate) { _ = try SigningKey(jwk: publicJWK, algorithm: algorithm) }
    }

    @Test("an EC JWK whose point is not on the curve is refused")
    func offCurvePoint() throws {
        var jwk = try SigningKey.generate(.es256).verifyingKey.jwkParameters()
        let index = try #require(jwk.members.firstIndex { $0.name == "y" })
        var y = try Base64URL.decode(jwk.members[index].value)
        y[y.count - 1] ^= 0x01
        jwk.members[index].value = Base64URL.encode(y)
        expectCryptoError(.invalidKey) { _ = try VerifyingKey(jwk: jwk) }
    }
}
