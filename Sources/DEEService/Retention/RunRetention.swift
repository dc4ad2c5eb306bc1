import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// What run retention remembers between rounds: the partitions whose backfill is known to be finished, and when
/// it last complained about each partition.
public struct RunRetentionMemory: Sendable {
    public var backfilled: Set<Int> = []
    var warned: [Int: ContinuousClock.Instant] = [:]

    public init() {}
}

/// Removes finished runs (completed, failed, cancelled) once they are older than `runRetentionMilliseconds`, with
/// their index entries, due entry, enrollment entry (if it still names them) and audit list; like BullMQ's
/// `removeOnComplete` and Temporal's namespace retention. Off unless `dee serve --run-retention` is given.
///
/// Finding them: the apply script appends every run that becomes terminal to `<prefix>:{p}:finished`, one `RPUSH`
/// per script, in completion order (completedAt is the ms of the entry that finished the run, and a partition
/// applies its entries in id order). So the runs due are exactly a prefix of that list: each batch reads the head
/// and stops at the first run not due yet, whatever the deployment holds. Runs that finished before the list
/// existed are found once by a bounded backfill walk of the terminal status indexes (``RunRetentionStore``).
///
/// Who removes: the owner of the partition. This service asks the process's partition owners for the fencing
/// epoch they hold (`epochs`), and every script checks it against `<prefix>:{p}:epoch` as the apply script does,
/// so a process that lost the partition removes nothing. The owner's own loop is untouched: this is a loop of its
/// own, on its own connection, between whose scripts the owner's run as usual.
///
/// Time: a run's `completedAt` comes from an entry id, which is Redis's clock, so the scripts compare it with
/// Redis's `TIME`, never this process's clock.
///
/// Pace: every `runRetentionEverySeconds`, for each owned partition, up to `runRetentionBatchesPerRound` scripts of
/// at most `runRetentionBatch` runs (``RunRetentionRound`` decides). A restart resumes where the list's head is.
public final class RunRetention: Service, Sendable {
    public let config: EngineConfiguration
    let redis: RedisConfiguration
    let logger: Logger
    /// The fencing epoch this process holds for partition p, or nil when it does not own it.
    let epochs: @Sendable (Int) -> String?

    public init(
        config: EngineConfiguration, redis: RedisConfiguration, logger: Logger,
        epochs: @escaping @Sendable (Int) -> String?
    ) {
        self.config = config
        self.redis = redis
        self.epochs = epochs
        var l = logger
        l[metadataKey: LogKey.loop] = "run-retention"
        self.logger = l
    }

    /// A partition-wide key of another type is named again at most this often.
    public static let warningInterval = Duration.seconds(60)

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    public func run() async throws {
        guard config.runRetentionMilliseconds != nil else { return await idle() }
        let client = RedisClient(configuration: redis, label: "run-retention")
        defer { client.close() }
        let every = Duration.milliseconds(Int(max(0.01, config.runRetentionEverySeconds) * 1000))
        var memory = RunRetentionMemory()
        var failures = 0
        while !stopping {
            let next = ContinuousClock.now + every
            do {
                memory = try await client.withConnection { [self, memory] redis in
                    var m = memory
                    _ = try self.round(redis, &m)
                    return m
                }
                if failures > 0 {
                    logger.info("run retention: Redis answers again", metadata: ["failures": "\(failures)"])
                    failures = 0
                }
            } catch {
                failures += 1
                if failures == 1 || failures % 50 == 0 {
                    logger.error(
                        "run retention: \(error)",
                        metadata: ["failure": "\(Failure.classify(error))", "failures": "\(failures)"])
                }
                try? await Task.sleep(for: Backoff.delay(failures: failures))
                continue
            }
            // Short naps, so a graceful shutdown does not wait out a whole interval.
            while !stopping, ContinuousClock.now < next {
                try? await Task.sleep(for: min(.milliseconds(250), next - ContinuousClock.now))
            }
        }
    }

    /// Without a retention there is nothing to do; a service must still run until the group stops it.
    private func idle() async {
        while !stopping { try? await Task.sleep(for: .milliseconds(250)) }
    }

    /// What one round did in one partition.
    public struct PartitionRound: Sendable, Equatable {
        public var removed = 0
        public var skipped = 0
        public var batches = 0
        public var backfilled = false
        public var fenced = false
    }

    /// One round over every partition this process owns: the backfill where it is not finished, then removal
    /// batches. `now` (epoch ms; nil: Redis's clock) and `epochs` are for tests. Returns what each owned partition
    /// did; `memory` is kept between rounds.
    @discardableResult
    public func round(
        _ redis: any RedisCommands, _ memory: inout RunRetentionMemory, now: Int64? = nil,
        epochs: ((Int) -> String?)? = nil
    ) throws -> [Int: PartitionRound] {
        guard let retention = config.runRetentionMilliseconds else { return [:] }
        let keys = Keys(prefix: config.prefix)
        var out: [Int: PartitionRound] = [:]
        for p in 0..<config.partitions {
            guard let epoch = (epochs ?? self.epochs)(p) else { continue }
            let store = RunRetentionStore(keys: keys.partition(p))
            var plan = RunRetentionRound(
                backfilled: memory.backfilled.contains(p), batchesPerRound: config.runRetentionBatchesPerRound)
            var result = PartitionRound()
            var action = plan.first
            while action != .rest, !Task.isCancelled {
                do {
                    switch action {
                    case .backfill:
                        let step = try store.backfill(epoch: epoch, limit: config.runRetentionBatch, now: now, redis)
                        report(p, step.skipped)
                        if step.done, !plan.backfilled {
                            logger.info("run retention: backfill finished", metadata: [LogKey.partition: "\(p)"])
                        }
                        action = plan.afterBackfill(step)
                    case .remove:
                        let batch = try store.remove(
                            epoch: epoch, retentionMilliseconds: retention, now: now, limit: config.runRetentionBatch,
                            redis)
                        report(p, batch.skipped)
                        result.skipped += batch.skipped.count
                        action = plan.afterRemove(batch)
                    case .rest:
                        break
                    }
                } catch let refusal as RetentionRefusal {
                    switch refusal {
                    case .fenced: result.fenced = true
                    case .wrongType(let suffix):
                        let at = ContinuousClock.now
                        if let last = memory.warned[p], at - last < Self.warningInterval { break }
                        memory.warned[p] = at
                        let text = "run retention: \(keys.partition(p).base):\(suffix) holds another type; nothing "
                            + "removed in this partition until it is fixed"
                        logger.error("\(text)", metadata: [LogKey.partition: "\(p)"])
                    case .backfillPending: break
                    }
                    action = plan.refused(refusal)
                }
            }
            result.removed = plan.removed
            result.batches = plan.batches
            result.backfilled = plan.backfilled
            if plan.backfilled { memory.backfilled.insert(p) } else { memory.backfilled.remove(p) }
            if result.removed > 0 {
                logger.debug(
                    "run retention: removed \(result.removed) finished runs",
                    metadata: [LogKey.partition: "\(p)", "batches": "\(result.batches)"])
            }
            out[p] = result
        }
        return out
    }

    private func report(_ p: Int, _ skips: [RetentionSkip]) {
        guard let (message, metadata) = RunRetentionSetting.skipSummary(skips) else { return }
        var m = metadata
        m[LogKey.partition] = "\(p)"
        logger.warning("\(message)", metadata: m)
    }
}
