// swift-tools-version:6.0
// libFuzzer targets for tokend's parsers (issue 10): the HTTP request parser, the JSON parser,
// the compact JWS parser and the form scanner. A package of its own, like Benchmarks/: its
// executables start libFuzzer's driver (`LLVMFuzzerRunDriver`), so they build only with
// `-sanitize=fuzzer`; `make fuzz` builds and runs them (FUZZING.md).
import PackageDescription

let fuzzSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "tokend-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "tokend", path: "../..")
    ],
    targets: [
        .target(name: "FuzzSupport", swiftSettings: fuzzSettings),
        .executableTarget(
            name: "fuzz-http",
            dependencies: ["FuzzSupport", .product(name: "TokenServer", package: "tokend")],
            swiftSettings: fuzzSettings
        ),
        .executableTarget(
            name: "fuzz-json",
            dependencies: ["FuzzSupport", .product(name: "JOSE", package: "tokend")],
            swiftSettings: fuzzSettings
        ),
        .executableTarget(
            name: "fuzz-jws",
            dependencies: ["FuzzSupport", .product(name: "JOSE", package: "tokend")],
            swiftSettings: fuzzSettings
        ),
        .executableTarget(
            name: "fuzz-form",
            dependencies: ["FuzzSupport", .product(name: "TokenServer", package: "tokend")],
            swiftSettings: fuzzSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
