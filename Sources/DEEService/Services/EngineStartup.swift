import DEEStore
import Logging
import Redis
import ServiceLifecycle
import Synchronization

/// The one check every loop of an engine process waits for: Redis reachable and the deployment's partition count
/// what this process was started with (SPEC 8). While Redis cannot be reached it retries with backoff and a log
/// line per attempt, never exits; a wrong partition count is thrown, which stops the whole service group.
///
/// The first loop to ask makes the check; the others wait for its answer. A loop asked to stop while waiting
/// returns false (and hands the check on to a loop still waiting).
public final class EngineStartup: Sendable {
    let config: EngineConfiguration
    let redis: RedisConfiguration
    let logger: Logger
    private let phase = Mutex(Phase.idle)

    enum Phase: Sendable {
        case idle
        case checking
        case ready
        case failed(EngineError)
    }

    init(config: EngineConfiguration, redis: RedisConfiguration, logger: Logger) {
        self.config = config
        self.redis = redis
        self.logger = logger
    }

    private var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    /// Waits until the check passed (true), or the calling service is asked to stop first (false).
    func ready() async throws -> Bool {
        while true {
            let mine = try phase.withLock { p throws(EngineError) -> Bool? in
                switch p {
                case .ready: return nil
                case .failed(let e): throw e
                case .checking: return false
                case .idle:
                    p = .checking
                    return true
                }
            }
            guard let mine else { return true }
            if stopping {
                if mine { phase.withLock { $0 = .idle } }
                return false
            }
            if mine {
                do {
                    if try await check() {
                        phase.withLock { $0 = .ready }
                        return true
                    }
                    phase.withLock { $0 = .idle }
                    return false
                } catch let e as EngineError {
                    phase.withLock { $0 = .failed(e) }
                    throw e
                } catch {
                    phase.withLock { $0 = .idle }
                    throw error
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Connects and checks the partition count, retrying while Redis cannot be reached. False: asked to stop.
    private func check() async throws -> Bool {
        let setup = RedisClient(configuration: redis, label: "setup")
        defer { setup.close() }
        var failures = 0
        while true {
            do {
                let layout = try await setup.withConnection { [config] redis in
                    try Engine.checkPartitions(config, redis)
                    return try LayoutMigration(keys: Keys(prefix: config.prefix), partitions: config.partitions)
                        .layout(redis)
                }
                if layout < Layout.current {
                    logger.warning(
                        "keys of an older layout: reads and writes work, run `dee migrate` to convert (and shrink) them",
                        metadata: ["layout": "\(layout)", "current": "\(Layout.current)"])
                }
                if failures > 0 { logger.info("Redis reachable", metadata: ["redis": "\(redis.displayURL)"]) }
                logger.info(
                    "engine started",
                    metadata: [
                        "redis": "\(redis.displayURL)", "prefix": "\(config.prefix)",
                        "partitions": "\(config.partitions)", "consumer": "\(config.consumer)",
                    ])
                return true
            } catch let error as RedisError where Failure.classify(error) == .transient {
                failures += 1
                let delay = Backoff.delay(failures: failures)
                logger.warning(
                    "cannot reach Redis yet; retrying",
                    metadata: [
                        "redis": "\(redis.displayURL)", "error": "\(error)", "retry_in": "\(delay)",
                        "attempt": "\(failures)",
                    ])
                let until = ContinuousClock.now + delay
                while ContinuousClock.now < until {
                    if stopping { return false }
                    try? await Task.sleep(for: min(.milliseconds(100), until - ContinuousClock.now))
                }
            }
        }
    }
}

/// A loop that starts once ``EngineStartup`` passed: the router and actions retention keep their own `run()`, and
/// wait behind this.
struct StartupGated: Service {
    let startup: EngineStartup
    let service: any Service

    func run() async throws {
        guard try await startup.ready() else { return }
        try await service.run()
    }
}
