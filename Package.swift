// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "tokend",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TokenCrypto", targets: ["TokenCrypto"]),
        .library(name: "JOSE", targets: ["JOSE"]),
        .executable(name: "jwt-inspect", targets: ["jwt-inspect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "TokenCrypto", dependencies: ["COpenSSL"], swiftSettings: strict),
        .target(name: "JOSE", dependencies: ["TokenCrypto"], swiftSettings: strict),
        .executableTarget(
            name: "jwt-inspect",
            dependencies: [
                "JOSE", "TokenCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "TokenCryptoTests", dependencies: ["TokenCrypto"], swiftSettings: strict),
        .testTarget(name: "JOSETests", dependencies: ["JOSE", "TokenCrypto"], resources: [.copy("Fixtures")], swiftSettings: strict),
        .testTarget(name: "JWTInspectTests", dependencies: ["JOSE", "TokenCrypto"], swiftSettings: strict),
        .testTarget(name: "InteropTests", dependencies: ["JOSE", "TokenCrypto"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
