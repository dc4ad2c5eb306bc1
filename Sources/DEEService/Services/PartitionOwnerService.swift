import DEEStore
import Logging
import Redis
import ServiceLifecycle
import Synchronization

/// One partition's owner loop, as a `Service`: it takes the partition's lease or stands by, and applies the inbox
/// round after round (``PartitionOwner/step(_:)``). On graceful shutdown it finishes the round it is in (applied
/// and replied), then releases the lease so a standby takes the partition at once.
final class PartitionOwnerService: Service, Sendable {
    let owner: PartitionOwner
    let startup: EngineStartup
    let redis: RedisConfiguration
    let logger: Logger

    init(owner: PartitionOwner, startup: EngineStartup, redis: RedisConfiguration, logger: Logger) {
        self.owner = owner
        self.startup = startup
        self.redis = redis
        var l = logger
        l[metadataKey: LogKey.loop] = "partition"
        l[metadataKey: LogKey.partition] = "\(owner.partition)"
        self.logger = l
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    func run() async throws {
        guard try await startup.ready() else { return }
        let metrics = owner.config.metrics
        let client = RedisClient(configuration: redis, label: "partition-\(owner.partition)")
        defer { client.close() }
        try await withGracefulShutdownHandler {
            try await loop(client, metrics: metrics)
        } onGracefulShutdown: { [owner] in
            owner.requestStop()
        }
        _ = try? await client.withConnection { [owner] in owner.releaseLease($0); return 0 }
        metrics.partitionLease(owner.partition, held: false)
    }

    private func loop(_ client: RedisClient, metrics: EngineMetrics) async throws {
        var failures = 0
        while !stopping {
            do {
                _ = try await client.withConnection { [owner] in try owner.step($0) }
                if failures > 0 {
                    logger.info("Redis answers again", metadata: ["failures": "\(failures)"])
                    failures = 0
                }
            } catch is Fenced {
                // Another process holds the partition now; the next round stands by.
            } catch {
                failures += 1
                if failures == 1 || failures % 50 == 0 {
                    logger.error(
                        "partition \(owner.partition): \(error)",
                        metadata: ["failure": "\(Failure.classify(error))", "failures": "\(failures)"])
                }
                try? await Task.sleep(for: Backoff.delay(failures: failures))
            }
            metrics.partitionLease(owner.partition, held: owner.holdsLease)
        }
    }
}

extension PartitionOwner {
    /// Whether this process holds the partition's lease, as far as it knows.
    var holdsLease: Bool { state.withLock { $0.machine.epoch != nil } }

    /// The fencing epoch this process holds for the partition, or nil (run retention's scripts carry it).
    var epoch: String? { state.withLock { $0.machine.epoch } }
}
