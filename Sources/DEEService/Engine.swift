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
        try await waitForRedis()
        let router = Router(config: config, plans: plans, logger: logger)
        logger.info(
            "engine started",
            metadata: [
                "redis": "\(redisConfiguration.displayURL)", "prefix": "\(config.prefix)",
                "partitions": "\(config.partitions)", "consumer": "\(config.consumer)",
            ])
        try await withThrowingDiscardingTaskGroup { group in
            let routing = RouterService(router: router, redis: redisConfiguration, logger: logger)
            group.addTask { try await routing.run() }
            for p in 0..<config.partitions {
                let owner = PartitionOwner(partition: p, config: config, plans: plans, logger: logger)
                group.addTask { try await self.ownerLoop(owner) }
            }
            if let every = config.tickEverySeconds {
                group.addTask { try await self.tickerLoop(every: every) }
            }
            let retention = ActionsRetention(config: config, redis: redisConfiguration, logger: logger)
            group.addTask { try await retention.run() }
        }
        logger.info("engine stopped")
    }

    /// Connects and checks the deployment's partition count, retrying with backoff while Redis cannot be reached
    /// (it may still be starting, or restarting): a clear log line per attempt, never an exit. A wrong partition
    /// count is not retried.
    private func waitForRedis() async throws {
        let setup = RedisClient(configuration: redisConfiguration, label: "setup")
        defer { setup.close() }
        var failures = 0
        while true {
            do {
                try await setup.withConnection { [config] redis in try Engine.checkPartitions(config, redis) }
                if failures > 0 { logger.info("Redis reachable", metadata: ["redis": "\(redisConfiguration.displayURL)"]) }
                return
            } catch let error as RedisError where Failure.classify(error) == .transient {
                failures += 1
                let delay = Backoff.delay(failures: failures)
                logger.warning(
                    "cannot reach Redis yet; retrying",
                    metadata: [
                        "redis": "\(redisConfiguration.displayURL)", "error": "\(error)", "retry_in": "\(delay)",
                        "attempt": "\(failures)",
                    ])
                try await Task.sleep(for: delay)
                if stopping { throw CancellationError() }
            }
        }
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    private func ownerLoop(_ owner: PartitionOwner) async throws {
        let client = RedisClient(configuration: redisConfiguration, label: "partition-\(owner.partition)")
        defer { client.close() }
        var failures = 0
        while !stopping {
            do {
                _ = try await client.withConnection { try owner.step($0) }
                if failures > 0 {
                    logger.info("partition \(owner.partition): Redis answers again", metadata: ["failures": "\(failures)"])
                    failures = 0
                }
            } catch is Fenced {
                // Another process holds the partition now; the next round stands by.
                continue
            } catch {
                failures += 1
                if failures == 1 || failures % 50 == 0 {
                    logger.error(
                        "partition \(owner.partition): \(error)",
                        metadata: ["failure": "\(Failure.classify(error))", "failures": "\(failures)"])
                }
                try? await Task.sleep(for: Backoff.delay(failures: failures))
            }
        }
        _ = try? await client.withConnection { owner.releaseLease($0); return 0 }
    }

    static let tickerScript = """
        -- ticker.lua: hold the wall-clock ticker lease (one process advances the clock).
        -- KEYS[1] <prefix>:ticker   ARGV[1] holder   ARGV[2] lease ms
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        if not holder then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0 end
        return 0
        """

    /// With `--tick-every`, one process (the holder of `<prefix>:ticker`) sends a `tick` command through the
    /// ingress stream every interval, so wall-clock ticks interleave with commands in ingress order like any
    /// other. Another process takes the lease over within a few seconds when the holder dies.
    private func tickerLoop(every: Double) async throws {
        let client = RedisClient(configuration: redisConfiguration, label: "ticker")
        defer { client.close() }
        let keys = Keys(prefix: config.prefix)
        let lease = String(max(3_000, Int(every * 2_000)))
        var next = ContinuousClock.now
        while !stopping {
            do {
                let holds = try await client.evalScript(
                    Self.tickerScript, keys: [keys.tickerLease], arguments: [config.instance, lease])
                if holds.int == 1, ContinuousClock.now >= next {
                    try await client.call(["XADD", keys.commands, "*", "type", "tick", "actor", "ticker"])
                    next = next + .milliseconds(Int(every * 1000))
                    if next < ContinuousClock.now { next = ContinuousClock.now + .milliseconds(Int(every * 1000)) }
                }
            } catch {
                logger.error("ticker: \(error)")
            }
            try? await Task.sleep(for: .milliseconds(min(1000, max(50, Int(every * 250)))))
        }
    }
}

/// A start-up error with a message a person can act on.
public struct EngineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
