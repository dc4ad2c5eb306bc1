import DEECore
import DEEService
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Redis
import ServiceLifecycle

/// The HTTP endpoint of `dee serve --metrics-port`, a `Service` of the process's group (stopped last):
/// - `GET /metrics`: every metric of ``EngineMetrics`` (and anything else recorded into the registry), in the
///   Prometheus text format, as swift-prometheus renders it;
/// - `GET /healthz`: whether Redis answers a `PING` and which leases this process holds, as JSON; 200 when Redis
///   is reachable, 503 otherwise.
///
/// Binds 127.0.0.1 unless told otherwise: metrics name partitions and plans' traffic, not for every network.
public final class MetricsServer: Service, Sendable {
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let health: HealthCheck
    let logger: Logger
    let onListening: @Sendable (String, Int) -> Void

    /// `port` 0 takes a free port; `onListening` is told the address and port bound (and a log line says it).
    public init(
        host: String, port: Int, registry: PrometheusCollectorRegistry, health: HealthCheck, logger: Logger,
        onListening: @escaping @Sendable (String, Int) -> Void = { _, _ in }
    ) {
        self.host = host
        self.port = port
        self.registry = registry
        self.health = health
        var l = logger
        l[metadataKey: LogKey.loop] = "metrics"
        self.logger = l
        self.onListening = onListening
    }

    /// The Prometheus text format's content type (version 0.0.4).
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public func run() async throws {
        let router = Router()
        router.get("metrics") { [registry] _, _ in
            EditedResponse(
                headers: [.contentType: Self.contentType], response: registry.emitToString())
        }
        router.get("healthz") { [health] _, _ in
            let report = await health.report()
            return EditedResponse(
                status: report.reachable ? .ok : .serviceUnavailable,
                headers: [.contentType: "application/json"], response: report.json)
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [logger, onListening, host] channel in
                let bound = channel.localAddress?.port ?? 0
                logger.info(
                    "metrics and health on http://\(host):\(bound)/metrics and /healthz",
                    metadata: ["http.address": "\(host)", "http.port": "\(bound)"])
                onListening(host, bound)
            },
            logger: logger)
        try await app.run()
    }
}

/// What `/healthz` answers: a `PING` on a connection of its own (2 s timeout), and the leases this process holds.
public final class HealthCheck: Sendable {
    let config: EngineConfiguration
    let client: RedisClient

    public init(config: EngineConfiguration, redis: RedisConfiguration) {
        self.config = config
        var r = redis
        r.timeoutSeconds = 2
        self.client = RedisClient(configuration: r, label: "health")
    }

    deinit { client.close() }

    /// Whether Redis answered, and the JSON body.
    public func report() async -> (reachable: Bool, json: String) {
        let reachable = ((try? await client.call(["PING"]))?.string) == "PONG"
        let owned = config.metrics.ownership
        let body: JSONValue = .object([
            "status": .string(reachable ? "ok" : "unavailable"),
            "redis": .string(reachable ? "reachable" : "unreachable"),
            "router": .bool(owned.router),
            "partitions": .array(owned.partitions.map { .int($0) }),
            "partitionCount": .int(config.partitions),
            "consumer": .string(config.consumer),
            "prefix": .string(config.prefix),
        ])
        return (reachable, body.canonical)
    }
}

extension EngineMetrics {
    /// Metrics recorded into `registry` through swift-prometheus, with the engine's histogram buckets.
    public static func prometheus(_ registry: PrometheusCollectorRegistry) -> EngineMetrics {
        EngineMetrics(factory: prometheusFactory(registry))
    }

    /// The swift-metrics factory over `registry`, with the engine's histogram buckets (also for
    /// `MetricsSystem.bootstrap`).
    public static func prometheusFactory(_ registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = durationBuckets
        factory.valueHistogramBuckets = valueBuckets
        return factory
    }
}
