// swift-tools-version:6.1
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
        // Metrics: the API (swift-metrics), the Prometheus backend, and the HTTP server that exposes it. Hummingbird's
        // default traits pull in swift-configuration, which nothing here uses.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        // Already in the graph through hummingbird; named for the server's bound address (`--metrics-port 0`).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
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
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The metrics and health endpoint of `dee serve` (`--metrics-port`): Prometheus text over Hummingbird.
        .target(
            name: "DEEMetricsServer",
            dependencies: [
                "DEEService", "DEECore", "Redis",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
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
                "DEEService", "DEEStore", "DEEClient", "DEECore", "DEEMetricsServer", "Redis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
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
        .testTarget(
            name: "DEEServiceTests",
            dependencies: [
                "DEEService", "DEEStore", "DEECore", "Redis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RedisTests", dependencies: ["Redis", "DEETestSupport"], swiftSettings: swiftSettings),
        // The cluster client against a real local cluster (six redis-server processes started by the tests).
        .testTarget(name: "RedisClusterTests", dependencies: ["Redis", "DEETestSupport"], swiftSettings: swiftSettings),
        // The async client against a real engine (in-process) and Redis: every example of the Runs API page.
        .testTarget(
            name: "DEEClientTests",
            dependencies: [
                "DEEClient", "DEECore", "DEEService", "Redis", "DEETestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The dee command driven as a user would (the built executable, a real Redis and engine), and its parsers;
        // dee-bench run the same way (BenchSmokeTests).
        .testTarget(
            name: "DEECLITests",
            dependencies: [
                "dee", "dee-bench", "DEECore", "DEETestSupport", "Redis",
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
