import DEECore
import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// One engine process: its long-running loops, each a `Service` of its own (``services()``), for one
/// `ServiceGroup`: actions retention, the partition owners (one service running an owner loop per partition side by
/// side), with `runRetentionMilliseconds` run retention, the router, with `tickEverySeconds` the ticker, and last
/// the membership. Each loop first waits for ``EngineStartup`` (Redis reachable, the partition count checked).
///
/// The group starts them in that order and, on graceful shutdown (SIGTERM, SIGINT), stops them one at a time in
/// reverse: the membership (the process leaves it), the ticker, then the router (it stops reading the ingress
/// stream, finishes and acknowledges the batch it holds, releases its lease), then run retention (between two
/// scripts), then every partition owner at once (each finishes its round, applied and replied, and releases its
/// lease; until then they go on applying what the router routed), then actions retention. Each step takes at most
/// one blocking read (`blockMilliseconds`) plus the batch in hand.
///
/// `Engine` is itself a `Service` that runs those loops in a group of its own, for tests and embedders; `dee serve`
/// puts ``services()`` in its group beside the metrics server.
public final class Engine: Service, Sendable {
    public let config: EngineConfiguration
    let redisConfiguration: RedisConfiguration
    let logger: Logger
    /// The start-up check every loop waits for.
    public let startup: EngineStartup

    public init(config: EngineConfiguration, redis: RedisConfiguration, logger: Logger) {
        self.config = config
        var r = redis
        // Blocking reads must return before the socket times out.
        r.timeoutSeconds = max(r.timeoutSeconds, Double(config.blockMilliseconds) / 1000 + 5)
        self.redisConfiguration = r
        self.logger = logger
        self.startup = EngineStartup(config: config, redis: r, logger: logger)
    }

    /// Checks the partition count stored in Redis (SPEC 8: fixed per deployment), storing it on first start.
    public static func checkPartitions(_ config: EngineConfiguration, _ redis: any RedisCommands) throws {
        let keys = Keys(prefix: config.prefix)
        // A new deployment is written in the current layout from its first run; one started before `layout` was
        // recorded is layout 1 until `dee migrate` finishes (engines read both meanwhile).
        if try redis.call(["HSETNX", keys.meta, "partitions", String(config.partitions)]).int == 1 {
            try redis.call(["HSETNX", keys.meta, "layout", String(Layout.current)])
        }
        let stored = try redis.call(["HGET", keys.meta, "partitions"]).int
        guard stored == config.partitions else {
            throw EngineError(
                "this deployment (prefix \(config.prefix)) has \(stored ?? 0) partitions; started with --partitions "
                    + "\(config.partitions). The partition count is fixed per deployment.")
        }
    }

    /// The loops of this process, in start order (a `ServiceGroup` stops them in reverse). Call once per process.
    public func services() -> [any Service] {
        let plans = PlanStore(keys: Keys(prefix: config.prefix))
        let router = Router(config: config, plans: plans, logger: logger)
        var out: [any Service] = [
            StartupGated(
                startup: startup,
                service: ActionsRetention(config: config, redis: redisConfiguration, logger: logger))
        ]
        // Rebalancing: the processes of a deployment share its partitions evenly (Partition/PartitionShare.swift).
        let share = ProcessPartitions(partitions: config.partitions, instance: config.instance)
        let owners = (0..<config.partitions).map {
            PartitionOwner(partition: $0, config: config, plans: plans, share: share, logger: logger)
        }
        out.append(
            PartitionOwnersService(
                owners.map { PartitionOwnerService(owner: $0, startup: startup, redis: redisConfiguration, logger: logger) }
            ))
        if config.runRetentionMilliseconds != nil {
            // After the owners, so that it stops before they release their leases; it removes only with the epoch
            // an owner of this process holds.
            let retention = RunRetention(config: config, redis: redisConfiguration, logger: logger) { p in
                p < owners.count ? owners[p].epoch : nil
            }
            out.append(StartupGated(startup: startup, service: retention))
        }
        out.append(
            StartupGated(
                startup: startup, service: RouterService(router: router, redis: redisConfiguration, logger: logger)))
        if let every = config.tickEverySeconds {
            out.append(
                TickerService(config: config, every: every, startup: startup, redis: redisConfiguration, logger: logger))
        }
        // Last, so that a graceful shutdown stops it first: the process leaves the membership before its owners
        // give their partitions up, and the others, counting one process fewer, take them at once.
        out.append(
            MembershipService(config: config, share: share, startup: startup, redis: redisConfiguration, logger: logger))
        return out
    }

    /// Runs ``services()`` in a `ServiceGroup` of its own until cancelled or shut down gracefully.
    public func run() async throws {
        let group = ServiceGroup(
            configuration: .init(services: services().map { .init(service: $0) }, logger: logger))
        try await group.run()
        logger.info("engine stopped")
    }
}

/// A start-up error with a message a person can act on.
public struct EngineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
