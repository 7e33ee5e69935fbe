// swift-tools-version:6.0
// The tokend benchmark harness (DESIGN §9). A package of its own so the root package and
// its CI never build it; it depends on the root package by path.
import PackageDescription

let package = Package(
    name: "tokend-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "tokend", path: "..")
    ],
    targets: [
        .executableTarget(
            name: "jose-bench",
            dependencies: [
                .product(name: "JOSE", package: "tokend"),
                .product(name: "TokenCrypto", package: "tokend"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("InternalImportsByDefault"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
