import DEETestSupport
import Foundation
import Redis
import Testing

/// Connections to the test Redis (REDIS_URL, or a private redis-server).
enum TestConnections {
    static func configuration(database: Int? = nil, timeoutSeconds: Double = 10) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: TestRedis.url(), timeoutSeconds: timeoutSeconds)
        if let database { configuration.database = database }
        return configuration
    }

    static func connection(database: Int? = nil, timeoutSeconds: Double = 10) throws -> RedisConnection {
        RedisConnection(configuration: try configuration(database: database, timeoutSeconds: timeoutSeconds))
    }

    /// Deletes every key under `prefix` (tests may run against a shared REDIS_URL).
    static func cleanUp(_ prefix: String, database: Int? = nil) {
        guard let connection = try? connection(database: database) else { return }
        defer { connection.close() }
        guard let keys = try? connection.call(["KEYS", prefix + "*"]).array, !keys.isEmpty else { return }
        _ = try? connection.call(["DEL"] + keys.compactMap(\.string))
    }

    /// The server-side id of a connection (CLIENT ID).
    static func clientID(_ connection: RedisConnection) throws -> Int {
        try #require(try connection.call(["CLIENT", "ID"]).int)
    }
}
