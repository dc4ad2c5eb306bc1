import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// Keeps this process a member of the deployment (``Membership``) and tells the owner loops how many processes
/// share the partitions (``ProcessPartitions``): one heartbeat every third of a lease. On graceful shutdown it
/// leaves, so the others take their larger share at once; a process that dies drops out after one lease.
final class MembershipService: Service, Sendable {
    let membership: Membership
    let share: ProcessPartitions
    let startup: EngineStartup
    let redis: RedisConfiguration
    let interval: Duration
    let logger: Logger

    init(
        config: EngineConfiguration, share: ProcessPartitions, startup: EngineStartup, redis: RedisConfiguration,
        logger: Logger
    ) {
        membership = Membership(
            keys: Keys(prefix: config.prefix), instance: config.instance, milliseconds: config.leaseMilliseconds)
        self.share = share
        self.startup = startup
        self.redis = redis
        interval = .milliseconds(max(50, config.leaseMilliseconds / 3))
        var l = logger
        l[metadataKey: LogKey.loop] = "membership"
        self.logger = l
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    func run() async throws {
        guard try await startup.ready() else { return }
        let client = RedisClient(configuration: redis, label: "membership")
        defer { client.close() }
        var failures = 0
        var members: [String] = []
        while !stopping {
            do {
                let now = try await client.withConnection { [membership] in try membership.heartbeat($0) }
                share.setMembers(now)
                if now != members {
                    logger.info(
                        "engine processes sharing the partitions",
                        metadata: [
                            "members": "\(now.count)", "share": "\(share.share)", "partitions": "\(share.partitions)",
                        ])
                    members = now
                }
                failures = 0
            } catch {
                failures += 1
                if failures == 1 || failures % 50 == 0 { logger.error("membership heartbeat: \(error)") }
            }
            // Short naps, so a graceful shutdown does not wait out a whole interval.
            let until = ContinuousClock.now + interval
            while !stopping, ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(50)) }
        }
        _ = try? await client.withConnection { [membership] in membership.leave($0); return 0 }
    }
}
