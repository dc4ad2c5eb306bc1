import ArgumentParser
import Foundation
import Redis

/// Options shared by every subcommand that talks to Redis.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "redis://[user:password@]host:port[/db] (default: $REDIS_URL, else redis://127.0.0.1:6379).")
    var redisURL: String?

    @Option(help: "Key prefix of the deployment (no braces, no colons).")
    var prefix = "dee"

    @Flag(
        help: """
            The URL names a node of a Redis Cluster (as ?cluster=1 does). Without either (and without ?cluster=0), dee \
            asks the node once (INFO cluster).
            """)
    var cluster = false

    func validate() throws {
        guard !prefix.isEmpty, !prefix.contains(where: { "{}: \t\n".contains($0) }) else {
            throw ValidationError("--prefix may not be empty or contain braces, colons or spaces")
        }
        var parsed = try parsedConfiguration().configuration
        if cluster { try Self.makeCluster(&parsed) }
    }

    /// The URL (`--redis-url`, else `REDIS_URL`, else the local default) parsed, and whether it says `cluster=`.
    private func parsedConfiguration() throws -> (configuration: RedisConfiguration, saysCluster: Bool) {
        let url = redisURL ?? ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379"
        do {
            return (try RedisConfiguration(url: url), url.contains("cluster="))
        } catch {
            throw ValidationError(error.description)
        }
    }

    private static func makeCluster(_ configuration: inout RedisConfiguration) throws {
        guard configuration.database == 0 else {
            throw ValidationError(
                "a Redis Cluster has database 0 only: remove /\(configuration.database) from the URL")
        }
        configuration.cluster = true
    }

    /// Where to connect. A node of a Redis Cluster is used as one (slot map, redirections) when the URL or `--cluster`
    /// says so, or, when neither says, when the node answers `INFO cluster` with `cluster_enabled:1` (a node that
    /// cannot be reached within 2 s is taken for a single Redis: give `--cluster` to an engine started before its
    /// cluster).
    func redisConfiguration() throws -> RedisConfiguration {
        var (configuration, saysCluster) = try parsedConfiguration()
        if cluster {
            try Self.makeCluster(&configuration)
        } else if !saysCluster {
            var probe = configuration
            probe.timeoutSeconds = min(configuration.timeoutSeconds, 2)
            if (try? RedisClusterConnection.isClusterEnabled(probe)) == true { try Self.makeCluster(&configuration) }
        }
        return configuration
    }
}

