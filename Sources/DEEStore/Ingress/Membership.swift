import Redis

/// The engine processes of a deployment that are alive, so that they share the partitions evenly (issue 11:
/// rebalancing). `<prefix>:members` is a sorted set: member = a process instance (``EngineConfiguration``'s
/// `instance`), score = when its membership runs out (Redis's clock, ms). Each process renews its own every third
/// of a lease; one that stops gracefully leaves; one that dies drops out when its score passes.
public struct Membership: Sendable {
    public let key: String
    public let instance: String
    public let milliseconds: Int

    public init(keys: Keys, instance: String, milliseconds: Int) {
        self.key = keys.members
        self.instance = instance
        self.milliseconds = milliseconds
    }

    /// Renews this process's membership and returns the members now (itself included), sorted.
    public func heartbeat(_ redis: any RedisCommands) throws -> [String] {
        let reply = try redis.evalScript(Self.heartbeatScript, keys: [key], arguments: [instance, String(milliseconds)])
        if case .error(let e) = reply { throw RedisError(.server, "membership heartbeat: \(e)") }
        return (reply.array ?? []).compactMap(\.string).sorted()
    }

    /// Leaves (graceful shutdown): the others count one process fewer at once.
    public func leave(_ redis: any RedisCommands) {
        _ = try? redis.call(["ZREM", key, instance])
    }

    static let heartbeatScript = """
        -- membership.lua: renew one process's membership, drop the ones that ran out, list the rest.
        -- KEYS[1] <prefix>:members (zset: instance -> ms its membership runs out)
        -- ARGV[1] this process's instance   ARGV[2] how long a membership lasts, ms
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
        redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
        return redis.call('ZRANGE', KEYS[1], 0, -1)
        """
}
