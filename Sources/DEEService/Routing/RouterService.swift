import DEECore
import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// The router loop of one engine process, as a `Service`: it holds the router lease or waits as a hot standby,
/// and performs what ``RouterStateMachine`` decides. On graceful shutdown it finishes the batch it holds, then
/// releases the lease so a standby takes over at once.
final class RouterService: Service, Sendable {
    let router: Router
    let config: EngineConfiguration
    let redis: RedisConfiguration
    let logger: Logger

    init(router: Router, redis: RedisConfiguration, logger: Logger) {
        self.router = router
        self.config = router.config
        self.redis = redis
        var l = logger
        l[metadataKey: "loop"] = "router"
        self.logger = l
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    func run() async throws {
        let client = RedisClient(configuration: redis, label: "router")
        defer { client.close() }
        let ingress = router.ingress
        let lease = ingress.lease(holder: config.instance, milliseconds: config.leaseMilliseconds)
        let renewEvery = Duration.milliseconds(max(1, config.leaseMilliseconds / 3))
        // Stray pending entries and the ingress trim: every 5 s is plenty (neither is on the path of a command).
        let sweepEvery = Duration.seconds(5)
        let doors = FrontDoors(config: config, logger: logger)
        var machine = RouterStateMachine()
        var prepared = false
        var renewed = ContinuousClock.now
        var swept = ContinuousClock.now
        var failures = 0
        while !stopping {
            do {
                if !prepared {
                    try await client.withConnection { try ingress.prepare($0) }
                    prepared = true
                }
                if machine.epoch != nil, ContinuousClock.now - renewed > renewEvery {
                    if try await client.withConnection({ try lease.renew($0) }) {
                        renewed = .now
                    } else {
                        logger.warning("lost the router lease; standing by")
                        machine.leaseLost()
                    }
                }
                switch machine.next() {
                case .acquireLease:
                    // With --wait-replicas the new epoch is on a replica before any fence is raised to it.
                    if let epoch = try await client.withConnection({ [config] in
                        try lease.acquire($0, waitingFor: config.replicaWait)
                    }) {
                        renewed = .now
                        machine.leaseAcquired(epoch: epoch)
                        logger.info("took the router lease", metadata: ["epoch": "\(epoch)"])
                    } else {
                        try? await Task.sleep(for: .milliseconds(min(config.blockMilliseconds, config.leaseMilliseconds / 3)))
                    }
                case .claimPending(let epoch):
                    let moved = try await client.withConnection { redis -> Int in
                        try ingress.raiseFences(to: epoch, redis)
                        return try ingress.claimAll(redis)
                    }
                    if moved > 0 { logger.info("claimed pending ingress entries", metadata: ["count": "\(moved)"]) }
                    machine.claimed()
                case .readPending(let epoch, let after, let singly):
                    let (result, last) = try await client.withConnection { [router, config] redis -> (Router.BatchResult, String?) in
                        let batch = try ingress.readPending(after: after, count: config.readCount, redis)
                        guard let last = batch.last?.id else { return (.done, nil) }
                        let r = singly
                            ? try router.routeSingly(batch, epoch: epoch, redis)
                            : try router.routeBatch(batch, epoch: epoch, redis)
                        return (r, last)
                    }
                    if result == .fenced { fenced(&machine) } else { machine.pendingRouted(last: last) }
                case .readNew(let epoch):
                    if ContinuousClock.now - swept > sweepEvery {
                        swept = .now
                        // Entries pending under another consumer name for a while (a process of an older release,
                        // a consumer renamed by hand): take them and route them before anything new.
                        let stray = try await client.withConnection { [config] redis -> Int in
                            let n = try ingress.claimAll(redis, idleMilliseconds: config.claimIdleMilliseconds)
                            try ingress.trimIngress(redis)
                            return n
                        }
                        if stray > 0 {
                            logger.warning("claimed entries pending under other consumers", metadata: ["count": "\(stray)"])
                            machine.strayPendingFound()
                            continue
                        }
                    }
                    if doors.isEnabled {
                        // Producers' front doors first (docs/ACCESS.md): their entries join the ingress stream here.
                        try await client.withConnection { redis in _ = try doors.step(redis) }
                    }
                    let result = try await client.withConnection { [router, config] redis -> Router.BatchResult in
                        let batch = try ingress.readNew(
                            count: config.readCount, blockMilliseconds: config.blockMilliseconds, redis)
                        return batch.isEmpty ? .done : try router.routeBatch(batch, epoch: epoch, redis)
                    }
                    if result == .fenced { fenced(&machine) }
                }
                if failures > 0 {
                    logger.info("router: Redis answers again", metadata: ["failures": "\(failures)"])
                    failures = 0
                }
            } catch {
                let failure = Failure.classify(error)
                failures += 1
                if failures == 1 || failures % 50 == 0 {
                    logger.error("router: \(error)", metadata: ["failure": "\(failure)", "failures": "\(failures)"])
                }
                // The stream or its group was deleted (FLUSHALL, a Redis restarted without persistence): make the
                // group again rather than fail forever.
                if "\(error)".contains("NOGROUP") { prepared = false }
                machine.failed(failure)
                try? await Task.sleep(for: Backoff.delay(failures: failures))
            }
            config.metrics.routerLease(held: machine.epoch != nil)
        }
        config.metrics.routerLease(held: false)
        if machine.epoch != nil {
            _ = try? await client.withConnection { lease.release($0) }
            logger.info("released the router lease")
        }
    }

    private func fenced(_ machine: inout RouterStateMachine) {
        logger.warning("router fenced: another process took the router lease; standing by")
        machine.leaseLost()
    }
}

/// How long a loop waits after its n-th failure in a row: 100 ms doubling to 5 s.
enum Backoff {
    static func delay(failures: Int) -> Duration {
        let ms = 100 * (1 << min(max(failures - 1, 0), 6))
        return .milliseconds(min(ms, 5_000))
    }
}
