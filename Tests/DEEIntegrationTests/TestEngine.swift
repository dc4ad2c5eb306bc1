import DEEClient
import DEEService
import DEETestSupport
import Dispatch
import Foundation
import Logging
import Redis

/// Runs an engine in-process on the test Redis under a prefix of its own, and hands the test a client.
/// The test body is blocking (the client is), so it runs on a dispatch thread, never on the cooperative pool
/// the engine's loops need.
enum TestEngine {
    struct Env: Sendable {
        let prefix: String
        let url: String
        let redis: RedisConnection

        /// Another client on the same engine (its own reply stream).
        func client() throws -> DEEClient {
            DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: url)), prefix: prefix)
        }

        /// A key of this test's deployment.
        func key(_ suffix: String) -> String { "\(prefix):\(suffix)" }
    }

    static func configuration(prefix: String, partitions: Int) -> EngineConfiguration {
        var config = EngineConfiguration(consumer: "test-\(prefix)")
        config.prefix = prefix
        config.partitions = partitions
        config.blockMilliseconds = 100
        config.claimIdleMilliseconds = 1000
        return config
    }

    /// An engine of a deployment the test shares with other engines: one process among several, named
    /// `consumer`, on `prefix`.
    static func engine(
        _ prefix: String, consumer: String, url: String, configure: (inout EngineConfiguration) -> Void = { _ in }
    ) throws -> Engine {
        var config = configuration(prefix: prefix, partitions: 1)
        config.consumer = consumer
        config.instance = consumer + "/test"
        configure(&config)
        var logger = Logger(label: "dee-test")
        logger.logLevel = .warning
        return Engine(config: config, redis: try RedisConfiguration(url: url), logger: logger)
    }

    static func with(
        partitions: Int = 1,
        configure: @Sendable (inout EngineConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (DEEClient, Env) throws -> Void
    ) async throws {
        let url = try TestRedis.url()
        let prefix = TestRedis.uniquePrefix()
        var config = configuration(prefix: prefix, partitions: partitions)
        configure(&config)
        var logger = Logger(label: "dee-test")
        logger.logLevel = .warning
        let engine = Engine(config: config, redis: try RedisConfiguration(url: url), logger: logger)
        let task = Task { try await engine.run() }
        defer { task.cancel() }
        let redis = RedisConnection(configuration: try RedisConfiguration(url: url))
        let env = Env(prefix: prefix, url: url, redis: redis)
        let client = DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: url)), prefix: prefix)
        try await offPool { try body(client, env) }
        task.cancel()
        _ = try? await task.value
        // Clean up this test's keys (never FLUSHALL: other tests share the server).
        try await offPool { try redis.unlinkKeys(matching: "\(prefix):*") }
    }
}

extension DEEReply {
    /// The result parsed as JSON (a dictionary or array), or nil.
    var json: Any? {
        guard let result, let data = result.data(using: .utf8) else { return nil }
        return try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }
    var object: [String: Any] { (json as? [String: Any]) ?? [:] }
}

/// A small linear plan: action, wait 3, action, end (SPEC 4's example).
let examplePlan = """
    {"id":"welcome","name":"Welcome","exitOn":["unsubscribed"],"steps":[
      {"id":"intro","type":"action","action":"send_email","params":{"template":"intro","to":"{{contact.email}}"}},
      {"id":"pause","type":"wait","ticks":3},
      {"id":"nudge","type":"action","action":"send_email","params":{"template":"nudge"}},
      {"id":"done","type":"end","outcome":"finished"}]}
    """
