import DEECore
import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// Samples the deployment-wide gauges from Redis every `metricsSampleEverySeconds` rather than counting them on
/// the hot path: ingress lag and pending entries (`XINFO GROUPS <prefix>:commands`), runs by status (`ZCARD` of the layout-2 sets and `all` of the count hashes of
/// every partition's status indexes, one pipeline) and the dead letters (`XLEN`). Every process that serves
/// metrics samples the same values; a dashboard takes any one (or the max).
public final class MetricsSampler: Service, Sendable {
    let config: EngineConfiguration
    let redis: RedisConfiguration
    let logger: Logger

    public init(config: EngineConfiguration, redis: RedisConfiguration, logger: Logger) {
        self.config = config
        self.redis = redis
        var l = logger
        l[metadataKey: LogKey.loop] = "metrics-sampler"
        self.logger = l
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    public func run() async throws {
        let client = RedisClient(configuration: redis, label: "metrics-sampler")
        defer { client.close() }
        let every = Duration.milliseconds(Int(max(0.05, config.metricsSampleEverySeconds) * 1000))
        var failing = false
        while !stopping {
            let next = ContinuousClock.now + every
            do {
                let sample = try await client.withConnection { [self] in try self.sample($0) }
                config.metrics.sampled(sample)
                if failing { logger.info("metrics sampler: Redis answers again") }
                failing = false
            } catch {
                config.metrics.sampled(nil)
                if !failing { logger.warning("metrics sampler: \(error)") }
                failing = true
            }
            while !stopping, ContinuousClock.now < next {
                try? await Task.sleep(for: min(.milliseconds(100), next - ContinuousClock.now))
            }
        }
    }

    /// One sample, in one pipeline.
    public func sample(_ redis: any RedisCommands) throws -> EngineMetrics.Sample {
        let keys = Keys(prefix: config.prefix)
        var commands: [[String]] = [["XINFO", "GROUPS", keys.commands], ["XLEN", keys.deadletter]]
        for p in 0..<config.partitions {
            let pk = keys.partition(p)
            for status in RunStatus.allCases { commands += pk.runCountCommands(status) }
        }
        let replies = try redis.pipeline(commands)
        var lag: Int?
        var pending = 0
        // No ingress stream yet (nothing sent, the router not started): nothing lags.
        if case .error = replies[0] { lag = 0 } else if let groups = replies[0].array {
            for group in groups {
                let fields = Self.fields(group)
                guard fields["name"]?.string == config.group else { continue }
                pending = fields["pending"]?.int ?? 0
                lag = fields["lag"]?.int
            }
        }
        var runs: [RunStatus: Int] = [:]
        var k = 2
        for _ in 0..<config.partitions {
            for status in RunStatus.allCases {
                for r in replies[k..<k + 2] { if case .error(let e) = r { throw RedisError(.server, e) } }
                runs[status, default: 0] += PartitionKeys.runCount(replies[k..<k + 2])
                k += 2
            }
        }
        return EngineMetrics.Sample(
            ingressLag: lag, ingressPending: pending, runs: runs, deadletters: replies[1].int ?? 0)
    }

    /// A flat `[name, value, …]` reply whose values may be integers or null (XINFO's `lag`).
    static func fields(_ reply: RESPValue) -> [String: RESPValue] {
        guard let items = reply.array else { return [:] }
        var out: [String: RESPValue] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string { out[k] = items[i + 1] }
            i += 2
        }
        return out
    }
}
