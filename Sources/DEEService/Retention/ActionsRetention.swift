import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// What the retention loop remembers between rounds: when it last warned about each executor group, and which
/// groups are behind now (so that it says when one catches up).
public struct RetentionWarnings: Sendable {
    var lastWarned: [String: ContinuousClock.Instant] = [:]
    var behind: Set<String> = []

    public init() {}
}

/// Keeps each partition's actions stream (`<prefix>:{p}:actions`) bounded without dropping an action request an
/// executor has not acknowledged.
///
/// The apply script appends action requests without `MAXLEN`. Every `actionsTrimEverySeconds`, for each partition
/// this process owns, one script (``ActionsStore/trim(holder:maxLen:limit:_:)``) reads the stream's consumer
/// groups and trims:
/// - no group: `XTRIM MAXLEN ~ streamMaxLen`, as the stream was trimmed before (nobody promised to read it);
/// - groups: `XTRIM MINID ~ floor`, the floor being the least over groups of the oldest pending id, or, with none
///   pending, the id right after the last delivered one. Only entries every group has acknowledged go.
///
/// Who trims: the owner of the partition (the holder of `<prefix>:{p}:lease`), checked inside the script. The
/// work is idempotent, so any process could do it, but the owner is already unique per partition and renews its
/// lease anyway: no second lease to hold and fail over, the work spreads with the partitions, and the "executors
/// fall behind" warning is logged once per partition rather than by every process.
///
/// When a group's lag (entries not yet delivered to it) exceeds `streamMaxLen`, or the stream holds more than
/// `streamMaxLen` entries because of a group, a warning names the partition and the group, at most once per
/// ``warningInterval`` per group; an info line says when it caught up.
public final class ActionsRetention: Service, Sendable {
    public let config: EngineConfiguration
    let redis: RedisConfiguration
    let logger: Logger

    /// A group still behind is named again at most this often.
    public static let warningInterval = Duration.seconds(60)
    /// Trim calls per partition per round at most (each removes up to ``ActionsStore/trimLimit`` entries).
    static let callsPerRound = 50

    public init(config: EngineConfiguration, redis: RedisConfiguration, logger: Logger) {
        self.config = config
        self.redis = redis
        var l = logger
        l[metadataKey: "loop"] = "actions-retention"
        self.logger = l
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    public func run() async throws {
        let client = RedisClient(configuration: redis, label: "actions-retention")
        defer { client.close() }
        let every = Duration.milliseconds(Int(max(0.05, config.actionsTrimEverySeconds) * 1000))
        var warnings = RetentionWarnings()
        var failures = 0
        while !stopping {
            let next = ContinuousClock.now + every
            do {
                warnings = try await client.withConnection { [self, warnings] redis in
                    var w = warnings
                    _ = try self.round(redis, &w)
                    return w
                }
                if failures > 0 {
                    logger.info("actions retention: Redis answers again", metadata: ["failures": "\(failures)"])
                    failures = 0
                }
            } catch {
                failures += 1
                if failures == 1 || failures % 50 == 0 {
                    logger.error(
                        "actions retention: \(error)",
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

    /// One round: trims the actions stream of every partition this process owns (`ownedOnly` false: of every
    /// partition, whoever owns it) and logs the groups that fall behind. Returns each partition's trim (`removed`
    /// summed over the round's calls).
    @discardableResult
    public func round(
        _ redis: any RedisCommands, _ warnings: inout RetentionWarnings, ownedOnly: Bool = true,
        now: ContinuousClock.Instant = .now
    ) throws -> [Int: ActionsTrim] {
        let keys = Keys(prefix: config.prefix)
        let who = ownedOnly ? config.instance : nil
        var out: [Int: ActionsTrim] = [:]
        for p in 0..<config.partitions {
            let store = ActionsStore(keys: keys.partition(p))
            var removed = 0
            var trim = try store.trim(holder: who, maxLen: config.streamMaxLen, redis)
            removed += trim.removed
            var calls = 1
            while trim.removed > 0, calls < Self.callsPerRound {
                trim = try store.trim(holder: who, maxLen: config.streamMaxLen, redis)
                removed += trim.removed
                calls += 1
            }
            trim.removed = removed
            out[p] = trim
            if trim.mode == .minid || trim.mode == .maxlen { report(partition: p, trim, &warnings, now: now) }
        }
        return out
    }

    /// Warns about each group of partition p that falls behind (rate-limited), and says when one caught up.
    func report(partition p: Int, _ trim: ActionsTrim, _ warnings: inout RetentionWarnings, now: ContinuousClock.Instant) {
        let maxLen = config.streamMaxLen
        var seen: Set<String> = []
        for g in trim.groups {
            let key = "\(p)/\(g.name)"
            seen.insert(key)
            let lagging = (g.lag ?? 0) > maxLen
            let holding = trim.length > maxLen && trim.holdingGroup == g.name
            let metadata: Logger.Metadata = [
                "partition": "\(p)", "group": "\(g.name)", "pending": "\(g.pending)", "lag": "\(g.lag.map(String.init) ?? "unknown")",
                "consumers": "\(g.consumers)", "held": "\(trim.length)", "streamMaxLen": "\(maxLen)",
            ]
            if lagging || holding {
                warnings.behind.insert(key)
                if let last = warnings.lastWarned[key], now - last < Self.warningInterval { continue }
                warnings.lastWarned[key] = now
                let why = lagging
                    ? "\(g.lag ?? 0) action requests not yet delivered to it"
                    : "the oldest action request it has not acknowledged holds \(trim.length) entries in the stream"
                let text = "executors fall behind: group \(g.name) on partition \(p): \(why) (streamMaxLen \(maxLen)); "
                    + "the actions stream is kept until they acknowledge"
                logger.warning("\(text)", metadata: metadata)
            } else if warnings.behind.remove(key) != nil {
                warnings.lastWarned[key] = nil
                logger.info("executors caught up: group \(g.name) on partition \(p)", metadata: metadata)
            }
        }
        // A group destroyed while behind is forgotten.
        for key in warnings.behind where key.hasPrefix("\(p)/") && !seen.contains(key) {
            warnings.behind.remove(key)
            warnings.lastWarned[key] = nil
        }
    }
}
