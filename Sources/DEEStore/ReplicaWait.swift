import Redis

/// Waits for replicas before an acknowledgement or a reply (SPEC 9, Replication). Redis replication is
/// asynchronous: a write the master answered may be lost with it in a failover. `WAIT n timeout` blocks the
/// connection until `n` replicas have every write this connection made (on a cluster: on every master it wrote
/// to), so an engine that waits before it
/// acknowledges an ingress entry or sends a reply never tells anyone about a write that only the master had.
/// With `replicas` 0 (the default: a Redis without replicas) nothing is sent.
public struct ReplicaWait: Sendable {
    public let replicas: Int
    public let timeoutMilliseconds: Int

    public init(replicas: Int, timeoutMilliseconds: Int) {
        self.replicas = max(0, replicas)
        self.timeoutMilliseconds = max(1, timeoutMilliseconds)
    }

    public static let none = ReplicaWait(replicas: 0, timeoutMilliseconds: 1)

    public var enabled: Bool { replicas > 0 }

    /// Returns once `replicas` replicas acknowledged this connection's writes; throws `NOREPLICAS` (a transient
    /// failure: the caller acknowledges and replies nothing, and does it all again later) when fewer did in time.
    public func wait(_ redis: any RedisCommands) throws {
        guard enabled else { return }
        let acknowledged = try redis.waitForReplicas(replicas, timeoutMilliseconds: timeoutMilliseconds)
        if acknowledged < replicas {
            throw RedisError(
                .server,
                "NOREPLICAS \(acknowledged) of \(replicas) replicas acknowledged the writes within \(timeoutMilliseconds) ms")
        }
    }
}
