// swift-tools-version:6.0
// tokend-load: the daemon benchmark's load generator (DESIGN §9, issue 3 item 11, issue 4).
// A package of its own, like Benchmarks/, so the root package never builds it; it depends on
// the root package by path for JOSE/TokenCrypto (signing tokens with the daemon's key) and
// links libargon2 directly for the raw hash-rate reference and libsqlite3 for the raw
// refresh-rotation reference.
import PackageDescription

let package = Package(
    name: "tokend-load",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tokend", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
    ],
    targets: [
        .systemLibrary(name: "CArgon2Load", pkgConfig: "libargon2", providers: [.apt(["libargon2-dev"])]),
        .systemLibrary(name: "CSQLiteLoad", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .executableTarget(
            name: "tokend-load",
            dependencies: [
                "CArgon2Load",
                "CSQLiteLoad",
                .product(name: "JOSE", package: "tokend"),
                .product(name: "TokenCrypto", package: "tokend"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("InternalImportsByDefault"),
            ]
        ),
        .executableTarget(
            name: "nio-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
