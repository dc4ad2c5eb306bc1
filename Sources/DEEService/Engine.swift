import DEECore
import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// One engine process: the ingress router and an owner loop per partition, each on its own Redis connection,
/// as one `Service`. Graceful shutdown stops the loops between batches (a batch is at most one blocking read).
public final class Engine: Service, Sendable {
    public let config: EngineConfiguration
    let redisConfiguration: RedisConfiguration
    let logger: Logger

    public init(config: EngineConfiguration, redis: RedisConfiguration, logger: Logger) {
        self.config = config
        var r = redis
        // Blocking reads must return before the socket times out.
        r.timeoutSeconds = max(r.timeoutSeconds, Double(config.blockMilliseconds) / 1000 + 5)
        self.redisConfiguration = r
        self.logger = logger
    }

    /// Checks the partition count stored in Redis (SPEC 8: fixed per deployment), storing it on first start.
    public static func checkPartitions(_ config: EngineConfiguration, _ redis: RedisConnection) throws {
        let keys = Keys(prefix: config.prefix)
        try redis.call(["HSETNX", keys.meta, "partitions", String(config.partitions)])
        let stored = try redis.call(["HGET", keys.meta, "partitions"]).int
        guard stored == config.partitions else {
            throw EngineError(
                "this deployment (prefix \(config.prefix)) has \(stored ?? 0) partitions; started with --partitions "
                    + "\(config.partitions). The partition count is fixed per deployment.")
        }
    }

    public func run() async throws {
        let plans = PlanStore(keys: Keys(prefix: config.prefix))
        let setup = RedisClient(configuration: redisConfiguration, label: "setup")
        try await setup.withConnection { [config] redis in try Engine.checkPartitions(config, redis) }
        setup.close()
        let router = Router(config: config, plans: plans, logger: logger)
        logger.info(
            "engine started",
            metadata: [
                "redis": "\(redisConfiguration.displayURL)", "prefix": "\(config.prefix)",
                "partitions": "\(config.partitions)", "consumer": "\(config.consumer)",
            ])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.routerLoop(router) }
            for p in 0..<config.partitions {
                let owner = PartitionOwner(partition: p, config: config, plans: plans, logger: logger)
                group.addTask { try await self.ownerLoop(owner) }
            }
        }
        logger.info("engine stopped")
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    private func routerLoop(_ router: Router) async throws {
        let client = RedisClient(configuration: redisConfiguration, label: "router")
        defer { client.close() }
        var prepared = false
        var pendingDone = false
        var lastClaim = ContinuousClock.now
        while !stopping {
            do {
                if !prepared {
                    try await client.withConnection { try router.prepare($0) }
                    prepared = true
                }
                if !pendingDone {
                    // After a restart, finish this consumer's own pending entries first.
                    let n = try await client.withConnection { try router.step($0, source: .pending) }
                    if n == 0 { pendingDone = true }
                    continue
                }
                if ContinuousClock.now - lastClaim > .seconds(5) {
                    lastClaim = ContinuousClock.now
                    while try await client.withConnection({ try router.step($0, source: .claimed) }) > 0, !stopping {}
                }
                _ = try await client.withConnection { try router.step($0, source: .new) }
            } catch {
                logger.error("router: \(error)")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    private func ownerLoop(_ owner: PartitionOwner) async throws {
        let client = RedisClient(configuration: redisConfiguration, label: "partition-\(owner.partition)")
        defer { client.close() }
        while !stopping {
            do {
                _ = try await client.withConnection { try owner.step($0) }
            } catch {
                logger.error("partition \(owner.partition): \(error)")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// A start-up error with a message a person can act on.
public struct EngineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
