import ArgumentParser
import DEEMetricsServer
import DEEService
import DEEStore
import Foundation
import Logging
import Metrics
import Prometheus
import Redis
import ServiceLifecycle
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the engine in the foreground until SIGTERM or SIGINT.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Partition count P, fixed per deployment.")
    var partitions = 1

    @Option(help: "Consumer name in the dee-engine group (default: dee-<hostname>, stable across restarts).")
    var consumer: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default: $LOG_LEVEL, else info).")
    var logLevel: String?

    @Option(help: "Log format: text (for people) or json (one JSON object per line, for log shippers; default: $LOG_FORMAT, else text).")
    var logFormat: String?

    @Option(help: "Serve GET /metrics (Prometheus text format) and GET /healthz on this port (0: a free one; default: off).")
    var metricsPort: Int?

    @Option(help: "The address the metrics port binds.")
    var metricsHost = "127.0.0.1"

    @Option(help: "Advance the clock one tick per interval of wall time, e.g. 60s, 500ms, 1m (default: only tick commands).")
    var tickEvery: String?

    @Option(help: "Approximate MAXLEN of each partition's events stream, and of its actions stream while no executor group reads it.")
    var streamMaxlen = 1_000_000

    @Option(help: "Keep a terminal run's audit entries this long (e.g. 30d, 12h); default: for the run's life.")
    var auditRetention: String?

    @Option(help: "Remove a finished run (completed, failed, cancelled) with its indexes and audit this long after it finished, 1s to 3650d (e.g. 30d, 12h); default: keep for ever.")
    var runRetention: String?

    @Option(help: "HMAC key for audit checksums, from a file kept outside Redis (default: plain SHA-256).")
    var auditKeyFile: String?

    @Option(help: "How long a partition or router lease lasts without renewal, e.g. 10s (a dead process's partitions are taken over after it).")
    var lease = "10s"

    @Option(help: "How long an ingress entry stays pending under another consumer before the router takes it, e.g. 30s.")
    var claimIdle = "30s"

    @Option(help: "How long a read of the ingress stream or an inbox blocks, e.g. 500ms.")
    var block = "500ms"

    @Option(help: "Attempts at one entry, each on its own, before it is a poison message (dead letter).")
    var maxAttempts = 5

    @Option(help: "Replicas that must have a write (WAIT) before its command is acknowledged or replied, 0-16; with replicas, set 1 so a failover loses nothing acknowledged.")
    var waitReplicas = 0

    @Option(help: "How long to wait for --wait-replicas before trying again (nothing is acknowledged meanwhile), e.g. 1s.")
    var waitTimeout = "1s"

    @Option(help: "Producers with a front door <prefix>:commands:<name>, comma-separated (e.g. alice,bob): their entries are copied into <prefix>:commands with actor <name> (docs/ACCESS.md).")
    var producers: String?

    var producerNames: [String] {
        (producers ?? "").split(separator: ",", omittingEmptySubsequences: true).map {
            String($0.trimmingCharacters(in: .whitespaces))
        }
    }

    func validate() throws {
        for (name, value, range) in [
            ("--lease", lease, 0.2...3600.0), ("--claim-idle", claimIdle, 0.1...86400.0), ("--block", block, 0.01...60.0),
            ("--wait-timeout", waitTimeout, 0.001...60.0),
        ] {
            guard let v = Durations.seconds(value), range.contains(v) else {
                throw ValidationError("\(name) takes a duration like 10s or 500ms, from \(range.lowerBound)s to \(range.upperBound)s (got \(value))")
            }
        }
        guard (1...1000).contains(maxAttempts) else { throw ValidationError("--max-attempts must be 1-1000") }
        guard (0...16).contains(waitReplicas) else { throw ValidationError("--wait-replicas must be 0-16") }
        // Leases are renewed between reads, and a read blocks up to --block: a shorter lease would expire while held.
        if let l = Durations.seconds(lease), let b = Durations.seconds(block), l < 4 * b {
            throw ValidationError("--lease (\(lease)) must be at least 4 times --block (\(block)), or leases expire while held")
        }
        let badProducers = AccessControl.invalidProducerNames(producerNames)
        guard badProducers.isEmpty else {
            throw ValidationError(
                "--producers takes names of 1-128 characters of A-Z a-z 0-9 . _ - @ + (got \(badProducers.joined(separator: ", ")))")
        }
        guard Set(producerNames).count == producerNames.count else { throw ValidationError("--producers names a producer twice") }
        guard (1...16384).contains(partitions) else { throw ValidationError("--partitions must be 1-16384") }
        guard Logger.Level(rawValue: effectiveLogLevel) != nil else {
            throw ValidationError("unknown log level \(effectiveLogLevel) (--log-level or LOG_LEVEL): trace, debug, info, notice, warning, error, critical")
        }
        guard ["text", "json"].contains(effectiveLogFormat) else {
            throw ValidationError("unknown log format \(effectiveLogFormat) (--log-format or LOG_FORMAT): text or json")
        }
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be 0-65535") }
        guard streamMaxlen >= 1 else { throw ValidationError("--stream-maxlen must be at least 1") }
        if let auditRetention, Durations.seconds(auditRetention).map({ $0 >= 1 }) != true {
            throw ValidationError("--audit-retention takes a duration like 30d, 12h or 3600s (got \(auditRetention))")
        }
        if let runRetention {
            let range = RunRetentionSetting.milliseconds
            guard let seconds = Durations.seconds(runRetention), seconds * 1000 >= Double(range.lowerBound),
                seconds * 1000 <= Double(range.upperBound)
            else {
                throw ValidationError("--run-retention takes a duration from 1s to 3650d, like 30d or 12h (got \(runRetention))")
            }
        }
        if let tickEvery, Durations.seconds(tickEvery) == nil {
            throw ValidationError("--tick-every takes a duration like 60s, 500ms or 1m (got \(tickEvery))")
        }
    }

    var effectiveLogLevel: String {
        logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0.lowercased() } ?? "info"
    }

    var effectiveLogFormat: String {
        logFormat ?? ProcessInfo.processInfo.environment["LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0.lowercased() } ?? "text"
    }

    func run() async throws {
        let json = effectiveLogFormat == "json"
        if json {
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        } else {
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
        }
        var logger = Logger(label: "dee")
        logger.logLevel = Logger.Level(rawValue: effectiveLogLevel) ?? .info
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "local"
        var config = EngineConfiguration(consumer: consumer ?? "dee-\(host)")
        config.prefix = connection.prefix
        config.partitions = partitions
        config.tickEverySeconds = tickEvery.flatMap(Durations.seconds)
        config.streamMaxLen = streamMaxlen
        config.leaseMilliseconds = Durations.milliseconds(lease)
        config.claimIdleMilliseconds = Durations.milliseconds(claimIdle)
        config.blockMilliseconds = Durations.milliseconds(block)
        config.maxDeliveries = maxAttempts
        config.replicaWait = ReplicaWait(replicas: waitReplicas, timeoutMilliseconds: Durations.milliseconds(waitTimeout))
        config.producers = producerNames
        config.auditRetentionSeconds = auditRetention.flatMap(Durations.seconds).map { Int($0) }
        config.runRetentionMilliseconds = runRetention.map(Durations.milliseconds)
        if let auditKeyFile {
            config.auditKey = Array(try Data(contentsOf: URL(fileURLWithPath: auditKeyFile)))
        }
        let redis = try connection.redisConfiguration()
        // Metrics (off without --metrics-port): the Prometheus registry behind /metrics, also swift-metrics' global
        // factory, so any library in the process that records metrics shows there too.
        var services: [any Service] = []
        if let metricsPort {
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(EngineMetrics.prometheusFactory(registry))
            config.metrics = EngineMetrics.prometheus(registry)
            services.append(
                MetricsServer(
                    host: metricsHost, port: metricsPort, registry: registry,
                    health: HealthCheck(config: config, redis: redis), logger: logger))
            services.append(MetricsSampler(config: config, redis: redis, logger: logger))
        }
        let engine = Engine(config: config, redis: redis, logger: logger)
        // One group: the metrics server first (so it is stopped last), then the engine's loops.
        services += engine.services()
        let banner = "serving \(redis.displayURL), commands on \(config.prefix):commands (Ctrl-C to stop)"
        if json {
            logger.info("\(banner)")
        } else {
            FileHandle.standardError.write(Data("dee: \(banner)\n".utf8))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        logger.info("engine stopped")
    }
}
