// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Linux only: tokend is a systemd daemon (sd_notify, socket activation, SO_PEERCRED) and every
// module calls Glibc (or Musl, for the fully static jwt-inspect). No `platforms` are claimed.
let package = Package(
    name: "tokend",
    products: [
        .library(name: "TokenCrypto", targets: ["TokenCrypto"]),
        .library(name: "JOSE", targets: ["JOSE"]),
        // For the fuzz targets in Tests/Fuzz (a package of their own).
        .library(name: "TokenServer", targets: ["TokenServer"]),
        .executable(name: "jwt-inspect", targets: ["jwt-inspect"]),
        .executable(name: "tokend", targets: ["tokend"]),
        .executable(name: "tokenctl", targets: ["tokenctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // postgres-nio's own TLS dependency: its TLS modes take NIOSSL's configuration.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // C libraries
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CArgon2", pkgConfig: "libargon2", providers: [.apt(["libargon2-dev"])]),
        // statx(2) for the store's file checks (glibc's statx needs _GNU_SOURCE, which Swift's
        // Glibc module is not built with).
        .systemLibrary(name: "CFileIdentity"),
        // Thread names and SCHED_IDLE for background threads (prctl is variadic).
        .systemLibrary(name: "CThread"),

        // Libraries, lowest layer first
        .target(name: "CodedErrors", swiftSettings: strict),
        .target(name: "TokenCrypto", dependencies: ["COpenSSL", "CThread"], swiftSettings: strict),
        .target(name: "JOSE", dependencies: ["TokenCrypto"], swiftSettings: strict),
        .target(name: "HTTPSyntax", swiftSettings: strict),
        .target(
            name: "Systemd",
            dependencies: [
                "CSystemd", "CodedErrors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TokenStore",
            dependencies: [
                "JOSE", "TokenCrypto", "CodedErrors", "CFileIdentity",
                .product(name: "GRDB", package: "GRDB.swift"),
                // The SQLite C API under GRDB, for the rotation's statements (DirectBinding).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The fleet store (DESIGN §10): its own module, so that only tokend and the tests link
        // postgres-nio and its TLS stack.
        .target(
            name: "PostgresStore",
            dependencies: [
                "TokenStore", "JOSE", "TokenCrypto", "CodedErrors",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PasswordHashing",
            dependencies: [
                "CArgon2", "CodedErrors", "TokenCrypto",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TokenService",
            dependencies: [
                "JOSE", "TokenCrypto", "TokenStore", "PasswordHashing", "CodedErrors",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The client side of the socket: a blocking HTTP/1.1 client and the admin API requests,
        // for tokenctl (which must not link NIO, GRDB or libargon2) and the tests.
        .target(name: "TokenClient", dependencies: ["JOSE", "HTTPSyntax", "CodedErrors"], swiftSettings: strict),
        .target(
            name: "TokenServer",
            dependencies: [
                "TokenService", "TokenStore", "TokenClient", "JOSE", "TokenCrypto", "Systemd", "HTTPSyntax",
                "CodedErrors",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // Executables
        .executableTarget(
            name: "jwt-inspect",
            dependencies: [
                "JOSE", "TokenCrypto",
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tokend",
            dependencies: [
                "TokenServer", "TokenService", "TokenStore", "PostgresStore", "PasswordHashing", "Systemd", "JOSE",
                "TokenCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tokenctl",
            dependencies: [
                "TokenClient", "JOSE", "CodedErrors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // Tests
        .target(
            name: "TokenTestSupport",
            dependencies: [
                "JOSE", "TokenClient", "TokenCrypto", "TokenStore", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TokenTestSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "TokenCryptoTests", dependencies: ["TokenCrypto", "COpenSSL"], swiftSettings: strict),
        .testTarget(
            name: "JOSETests",
            dependencies: ["JOSE", "TokenCrypto", "TokenTestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JWTInspectTests",
            dependencies: ["JOSE", "TokenCrypto", "TokenTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "InteropTests",
            dependencies: ["JOSE", "TokenCrypto", "TokenTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SystemdTests",
            dependencies: [
                "CodedErrors",
                "Systemd",
                "TokenTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TokenStoreTests",
            dependencies: ["CodedErrors", "JOSE", "TokenCrypto", "TokenStore", "PostgresStore", "TokenTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TokenServiceTests",
            dependencies: [
                "CodedErrors", "TokenService", "TokenStore", "PostgresStore", "JOSE", "TokenCrypto", "PasswordHashing",
                "TokenTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TokenServerTests",
            dependencies: [
                "CodedErrors",
                "TokenServer", "TokenClient", "TokenService", "JOSE", "Systemd", "HTTPSyntax", "TokenTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PasswordHashingTests",
            dependencies: ["CodedErrors", "PasswordHashing", "TokenCrypto"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AccountAPITests",
            dependencies: ["JOSE", "TokenCrypto", "TokenTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["JOSE", "TokenCrypto", "TokenStore", "TokenTestSupport"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
