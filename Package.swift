// swift-tools-version:6.0
import PackageDescription

/// One settings list for every target (as hummingbird does), so the whole package is held to the same rules.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "dee",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dee", targets: ["dee"]),
        .library(name: "DEECore", targets: ["DEECore"]),
        .library(name: "DEEClient", targets: ["DEEClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        // hiredis 0.14, Debian's libhiredis-dev.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // A small blocking Redis client over hiredis, with an async face that keeps the blocking calls off
        // the cooperative pool.
        .target(name: "Redis", dependencies: ["CHiredis"], swiftSettings: swiftSettings),
        // The pure domain: plans, runs, transitions, audit chain. No Redis, no clock, no I/O.
        .target(
            name: "DEECore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // The Redis-backed store: key layout, Lua scripts, index queries.
        .target(
            name: "DEEStore",
            dependencies: ["DEECore", "Redis", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // The stream service: ingress router, partition owners, leases.
        .target(
            name: "DEEService",
            dependencies: [
                "DEECore", "DEEStore", "Redis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // A client for producers written in Swift (and the tests): XADD a command, wait for its reply.
        .target(
            name: "DEEClient",
            dependencies: ["DEECore", "Redis", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "dee",
            dependencies: [
                "DEEService", "DEEStore", "DEEClient", "DEECore", "Redis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The benchmark driver behind scripts/bench.
        .executableTarget(
            name: "dee-bench",
            dependencies: [
                "DEEClient", "DEEStore", "DEECore", "Redis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // Starts a private redis-server on a free loopback port when REDIS_URL is not set.
        .target(name: "DEETestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "DEECoreTests", dependencies: ["DEECore"], swiftSettings: swiftSettings),
        // The service's decisions (router, owner, poison, failure kinds) as plain state machines, without Redis.
        .testTarget(name: "DEEServiceTests", dependencies: ["DEEService", "DEEStore", "Redis"], swiftSettings: swiftSettings),
        .testTarget(name: "RedisTests", dependencies: ["Redis", "DEETestSupport"], swiftSettings: swiftSettings),
        // The async client against a real engine (in-process) and Redis: every example of the Runs API page.
        .testTarget(
            name: "DEEClientTests",
            dependencies: [
                "DEEClient", "DEECore", "DEEService", "Redis", "DEETestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The dee command driven as a user would (the built executable, a real Redis and engine), and its parsers.
        .testTarget(
            name: "DEECLITests",
            dependencies: [
                "dee", "DEECore", "DEETestSupport", "Redis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DEEIntegrationTests",
            dependencies: [
                "DEEService", "DEEStore", "DEEClient", "DEECore", "Redis", "DEETestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
