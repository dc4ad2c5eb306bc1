import DEEStore
import Logging
import Redis
import ServiceLifecycle

/// With `--tick-every`, one process (the holder of `<prefix>:ticker`) sends a `tick` command through the ingress
/// stream every interval, so wall-clock ticks interleave with commands in ingress order like any other. Another
/// process takes the lease over within a few seconds when the holder dies. A `Service`: graceful shutdown stops
/// it within 100 ms (it holds nothing that needs finishing; its lease simply expires).
final class TickerService: Service, Sendable {
    let config: EngineConfiguration
    let every: Double
    let startup: EngineStartup
    let redis: RedisConfiguration
    let logger: Logger

    init(config: EngineConfiguration, every: Double, startup: EngineStartup, redis: RedisConfiguration, logger: Logger) {
        self.config = config
        self.every = every
        self.startup = startup
        self.redis = redis
        var l = logger
        l[metadataKey: LogKey.loop] = "ticker"
        self.logger = l
    }

    static let script = """
        -- ticker.lua: hold the wall-clock ticker lease (one process advances the clock).
        -- KEYS[1] <prefix>:ticker   ARGV[1] holder   ARGV[2] lease ms
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        if not holder then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0 end
        return 0
        """

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    func run() async throws {
        guard try await startup.ready() else { return }
        let client = RedisClient(configuration: redis, label: "ticker")
        defer { client.close() }
        let keys = Keys(prefix: config.prefix)
        let lease = String(max(3_000, Int(every * 2_000)))
        let interval = Duration.milliseconds(Int(every * 1000))
        var next = ContinuousClock.now
        while !stopping {
            do {
                let holds = try await client.evalScript(
                    Self.script, keys: [keys.tickerLease], arguments: [config.instance, lease])
                if holds.int == 1, ContinuousClock.now >= next {
                    try await client.call(["XADD", keys.commands, "*", "type", "tick", "actor", "ticker"])
                    next = next + interval
                    if next < ContinuousClock.now { next = ContinuousClock.now + interval }
                }
            } catch {
                logger.error("ticker: \(error)")
            }
            // Short naps, so a graceful shutdown does not wait out a whole pause.
            let until = ContinuousClock.now + .milliseconds(min(1000, max(50, Int(every * 250))))
            while !stopping, ContinuousClock.now < until {
                try? await Task.sleep(for: min(.milliseconds(100), until - ContinuousClock.now))
            }
        }
    }
}
