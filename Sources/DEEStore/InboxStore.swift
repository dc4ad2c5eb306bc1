import DEECore
import Redis

/// The owner's side of a partition's inbox (SPEC 9): reading it after the replied watermark, the watermarks and
/// the clock the owner starts from, attempt counts of entries applied on their own, and the commands that move
/// the replied watermark. Blocking: call it from the partition owner's connection queue.
public struct InboxStore: Sendable {
    public let keys: PartitionKeys

    public init(keys: PartitionKeys) { self.keys = keys }

    /// What the owner starts from: the applied and replied watermarks and the clock, as Redis holds them.
    public struct Position: Sendable, Equatable {
        public var applied: EntryID?
        public var replied: String?
        public var clock: Int
    }

    public func position(_ redis: any RedisCommands) throws -> Position {
        let r = try redis.pipeline([["GET", keys.applied], ["GET", keys.replied], ["GET", keys.clock]])
        return Position(applied: r[0].string.flatMap(EntryID.init), replied: r[1].string, clock: r[2].int ?? 0)
    }

    /// Up to `count` entries after `after`, blocking up to `blockMilliseconds` for the first.
    public func read(after: String, count: Int, blockMilliseconds: Int, _ redis: any RedisCommands) throws
        -> [StreamEntry]
    {
        let reply = try redis.call([
            "XREAD", "COUNT", String(count), "BLOCK", String(blockMilliseconds), "STREAMS", keys.inbox, after,
        ])
        guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { return [] }
        return RESPValue.streamEntryList(first[1])
    }

    /// Counts one more attempt at an entry applied on its own (kept in Redis, so restarts do not reset it).
    public func countAttempt(_ id: String, _ redis: any RedisCommands) throws -> Int {
        try redis.call(["HINCRBY", keys.attempts, id, "1"]).int ?? 1
    }

    /// Takes back an attempt that ended in a transient error.
    public func uncountAttempt(_ id: String, _ redis: any RedisCommands) {
        _ = try? redis.call(["HINCRBY", keys.attempts, id, "-1"])
    }

    /// Forgets an entry's attempts, then moves the replied watermark to it: for the end of the pipeline that
    /// writes its reply.
    public func doneCommands(_ id: String) -> [[String]] {
        [["HDEL", keys.attempts, id]] + advanceCommands(to: id)
    }

    /// Everything up to `id` is applied and replied: the replied watermark, and the trims below it.
    public func advanceCommands(to id: String) -> [[String]] {
        [["SET", keys.replied, id], ["XTRIM", keys.inbox, "MINID", "~", id], ["XTRIM", keys.results, "MINID", "~", id]]
    }
}
