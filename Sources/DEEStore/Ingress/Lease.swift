import Redis

/// A lease in Redis: a key holding its holder's instance name with a TTL, plus an epoch counter that a new holder
/// increments, so every write it makes can be fenced (SPEC 9). The router lease and each partition's lease are
/// one of these.
public struct Lease: Sendable {
    public let key: String
    public let epochKey: String
    public let holder: String
    public let milliseconds: Int

    public init(key: String, epochKey: String, holder: String, milliseconds: Int) {
        self.key = key
        self.epochKey = epochKey
        self.holder = holder
        self.milliseconds = milliseconds
    }

    /// Takes the lease when nobody holds it; returns the new epoch, or nil when another process holds it.
    public func acquire(_ redis: any RedisCommands) throws -> Int? {
        let got = try redis.send(["SET", key, holder, "NX", "PX", String(milliseconds)])
        guard got == .string("OK") else { return nil }
        return try redis.call(["INCR", epochKey]).int ?? 0
    }

    /// ``acquire(_:)``, then `replicas.wait`: with `--wait-replicas` the new epoch is on a replica before anything is
    /// fenced with it (a failover that lost the `INCR` would hand the next holder the same epoch). When the wait
    /// fails the lease is given up again and the error thrown.
    public func acquire(_ redis: any RedisCommands, waitingFor replicas: ReplicaWait) throws -> Int? {
        guard let epoch = try acquire(redis) else { return nil }
        do {
            try replicas.wait(redis)
        } catch {
            release(redis)
            throw error
        }
        return epoch
    }

    /// Extends the lease; false when this process no longer holds it.
    public func renew(_ redis: any RedisCommands) throws -> Bool {
        try redis.evalScript(LeaseScripts.renew, keys: [key], arguments: [holder, String(milliseconds)]).int == 1
    }

    /// Gives the lease up (graceful shutdown), so a successor need not wait for it to expire.
    public func release(_ redis: any RedisCommands) {
        _ = try? redis.evalScript(LeaseScripts.release, keys: [key], arguments: [holder])
    }
}
