import DEEClient
import DEECore
import DEEService
import DEETestSupport
import Logging
import Redis

/// Starts an in-process engine on the test Redis under a key prefix of its own, hands the test a connected
/// ``DEEEngine``, and deletes the prefix's keys afterwards. The engine runs as a child task of the harness: it is
/// cancelled when the body returns or throws.
enum ClientHarness {
    /// What a test may need besides the client.
    struct Env: Sendable {
        let prefix: String
        let redis: RedisConfiguration
        /// A raw Redis client, for looking at keys.
        let raw: RedisClient

        /// A key of this test's deployment.
        func key(_ suffix: String) -> String { "\(prefix):\(suffix)" }

        /// Another client on the same deployment (its own reply stream).
        func client(timeout: Duration = .seconds(20), attempts: Int = 3) async throws -> DEEEngine {
            try await DEEEngine(redis: redis, prefix: prefix, timeout: timeout, attempts: attempts)
        }

        /// Runs an engine of this deployment for the duration of `body`.
        func withEngine<T: Sendable>(_ body: () async throws -> T) async throws -> T {
            try await ClientHarness.runEngine(prefix: prefix, redis: redis, partitions: 1, body)
        }
    }

    static func engineConfiguration(prefix: String, partitions: Int) -> EngineConfiguration {
        var config = EngineConfiguration(consumer: "client-test-\(prefix)")
        config.prefix = prefix
        config.partitions = partitions
        config.blockMilliseconds = 100
        config.claimIdleMilliseconds = 1000
        return config
    }

    static func runEngine<T: Sendable>(
        prefix: String, redis: RedisConfiguration, partitions: Int, _ body: () async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "dee-client-test")
        logger.logLevel = .warning
        let engine = Engine(
            config: engineConfiguration(prefix: prefix, partitions: partitions), redis: redis, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self, returning: T.self) { group in
            group.addTask { try await engine.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// A client on a fresh prefix; with `engine`, an engine serving it.
    static func with(
        engine: Bool = true, partitions: Int = 1, timeout: Duration = .seconds(20), attempts: Int = 3,
        _ body: (DEEEngine, Env) async throws -> Void
    ) async throws {
        let redis = try RedisConfiguration(url: try TestRedis.url())
        let prefix = TestRedis.uniquePrefix()
        let raw = RedisClient(configuration: redis, label: "client-test")
        let env = Env(prefix: prefix, redis: redis, raw: raw)
        let client = try await DEEEngine(redis: redis, prefix: prefix, timeout: timeout, attempts: attempts)
        do {
            if engine {
                try await runEngine(prefix: prefix, redis: redis, partitions: partitions) { try await body(client, env) }
            } else {
                try await body(client, env)
            }
        } catch {
            await client.close()
            try? await raw.withConnection { try $0.unlinkKeys(matching: "\(prefix):*") }
            throw error
        }
        await client.close()
        // Never FLUSHALL: other tests share the server.
        try await raw.withConnection { try $0.unlinkKeys(matching: "\(prefix):*") }
    }
}

/// SPEC 2's example plan, and the Runs API page's: intro, wait 3, nudge, then end with outcome `replied`.
let welcomePlanJSON = """
    {"id":"welcome","name":"Welcome","exitOn":["unsubscribed"],"steps":[
      {"id":"intro","type":"action","action":"send_email","params":{"template":"intro","to":"{{contact.email}}"}},
      {"id":"pause","type":"wait","ticks":3},
      {"id":"nudge","type":"action","action":"send_email","params":{"template":"nudge"}},
      {"id":"done","type":"end","outcome":"replied"}]}
    """

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A loopback port nobody listens on: bound to find it, then released.
func freePort() throws -> Int {
    #if os(Linux)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw PortError() }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw PortError() }
    return Int(UInt16(bigEndian: address.sin_port))
}

struct PortError: Error {}
