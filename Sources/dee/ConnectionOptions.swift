import ArgumentParser
import Foundation
import Redis

/// Options shared by every subcommand that talks to Redis.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "redis://[user:password@]host:port[/db] (default: $REDIS_URL, else redis://127.0.0.1:6379).")
    var redisURL: String?

    @Option(help: "Key prefix of the deployment (no braces, no colons).")
    var prefix = "dee"

    func validate() throws {
        guard !prefix.isEmpty, !prefix.contains(where: { "{}: \t\n".contains($0) }) else {
            throw ValidationError("--prefix may not be empty or contain braces, colons or spaces")
        }
        _ = try redisConfiguration()
    }

    func redisConfiguration() throws -> RedisConfiguration {
        let url = redisURL ?? ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379"
        do {
            return try RedisConfiguration(url: url)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

