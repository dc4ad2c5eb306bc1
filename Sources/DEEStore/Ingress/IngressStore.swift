import DEECore
import Redis

/// One ingress stream entry as Redis returned it. `fields` is empty for an entry deleted while pending.
public typealias StreamEntry = (id: String, fields: [(String, String)])

/// What the inbox append script said of one entry (Scripts/InboxAppendScript.swift).
public enum AppendCode: Int, Sendable {
    case appended = 1
    case present = 0
    case gap = -1
}

/// The router's reads and writes: the ingress stream in the consumer group, the router lease and the partitions'
/// router fences, fenced inbox appends, attempt counts and the dead-letter stream. Blocking: call it from the
/// router's own connection queue.
public struct IngressStore: Sendable {
    public let keys: Keys
    public let group: String
    public let consumer: String
    public let partitions: Int

    public init(keys: Keys, group: String, consumer: String, partitions: Int) {
        self.keys = keys
        self.group = group
        self.consumer = consumer
        self.partitions = partitions
    }

    /// The router lease (one router per ingress stream; the other processes are hot standbys).
    public func lease(holder: String, milliseconds: Int) -> Lease {
        Lease(key: keys.routerLease, epochKey: keys.routerEpoch, holder: holder, milliseconds: milliseconds)
    }

    /// Creates the consumer group (from the stream's start, so commands sent before the first start run).
    public func prepare(_ redis: any RedisCommands) throws {
        let reply = try redis.send(["XGROUP", "CREATE", keys.commands, group, "0", "MKSTREAM"])
        if case .error(let e) = reply, !e.hasPrefix("BUSYGROUP") { throw RedisError(.server, e) }
    }

    /// Raises every partition's router fence to `epoch`: from now on no router with a lower epoch writes an inbox.
    public func raiseFences(to epoch: Int, _ redis: any RedisCommands) throws {
        let calls = (0..<partitions).map { ([keys.partition($0).routerFence], [String(epoch)]) }
        for reply in try redis.evalScriptPipelined(LeaseScripts.fence, calls: calls) {
            if case .error(let e) = reply { throw RedisError(.server, e) }
        }
    }

    /// Moves every entry pending in the group (under any consumer name) to this consumer, without reading it or
    /// counting a delivery. Called by a new router lease holder before it reads anything new, so an entry a dead
    /// router had read is routed before any later one. Returns how many it moved.
    @discardableResult
    public func claimAll(_ redis: any RedisCommands, idleMilliseconds: Int = 0) throws -> Int {
        var cursor = "0-0"
        var moved = 0
        repeat {
            let reply = try redis.call([
                "XAUTOCLAIM", keys.commands, group, consumer, String(idleMilliseconds), cursor, "COUNT", "1000",
                "JUSTID",
            ])
            guard let parts = reply.array, parts.count >= 2, let next = parts[0].string else { break }
            moved += parts[1].array?.count ?? 0
            cursor = next
        } while cursor != "0-0"
        return moved
    }

    /// Entries of this consumer's pending list after `after` ("0" for its start), in id order.
    public func readPending(after: String, count: Int, _ redis: any RedisCommands) throws -> [StreamEntry] {
        Self.streamBatch(try redis.call([
            "XREADGROUP", "GROUP", group, consumer, "COUNT", String(count), "STREAMS", keys.commands, after,
        ]))
    }

    /// New entries, blocking up to `blockMilliseconds`.
    public func readNew(count: Int, blockMilliseconds: Int, _ redis: any RedisCommands) throws -> [StreamEntry] {
        Self.streamBatch(try redis.call([
            "XREADGROUP", "GROUP", group, consumer, "COUNT", String(count), "BLOCK", String(blockMilliseconds),
            "STREAMS", keys.commands, ">",
        ]))
    }

    static func streamBatch(_ reply: RESPValue) -> [StreamEntry] {
        guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { return [] }
        return RESPValue.streamEntryList(first[1])
    }

    /// The append script call for one partition's share of a batch: entries in id order, each with its fields.
    public func appendCall(partition p: Int, epoch: Int, entries: [(id: String, fields: [String])])
        -> (keys: [String], arguments: [String])
    {
        var argv = [String(epoch)]
        for e in entries { argv += [e.id, String(e.fields.count)] + e.fields }
        return ([keys.partition(p).inbox], argv)
    }

    /// Runs append calls (one per partition) and then `then` (replies, rejections) in one pipeline. Returns each
    /// call's codes, nil for a call refused by the fence, and the replies of `then`.
    public func append(
        _ calls: [(keys: [String], arguments: [String])], then: [[String]], _ redis: any RedisCommands
    ) throws -> (codes: [[AppendCode]?], then: [RESPValue]) {
        let replies = try redis.evalScriptPipelined(InboxAppendScript.source, calls: calls, then: then)
        var codes: [[AppendCode]?] = []
        for reply in replies.prefix(calls.count) {
            if case .error(let e) = reply {
                if e.contains("FENCED") {
                    codes.append(nil)
                    continue
                }
                throw RedisError(.server, "inbox append: \(e)")
            }
            codes.append((reply.array ?? []).map { AppendCode(rawValue: $0.int ?? -1) ?? .gap })
        }
        return (codes, Array(replies.dropFirst(calls.count)))
    }

    /// Acknowledges routed entries; with `forgettingAttempts` (entries routed on their own, whose attempts were
    /// counted) their counts go in the same round trip.
    public func ack(_ ids: [String], forgettingAttempts: Bool = false, _ redis: any RedisCommands) throws {
        guard !ids.isEmpty else { return }
        let forget: [[String]] = forgettingAttempts ? [["HDEL", keys.routerAttempts] + ids] : []
        for reply in try redis.pipeline(forget + [["XACK", keys.commands, group] + ids]) {
            if case .error(let e) = reply { throw RedisError(.server, e) }
        }
    }

    /// Counts one more attempt at an entry routed on its own (kept in Redis, so restarts do not reset it) and
    /// returns the count. A process killed during the attempt leaves it counted.
    public func countAttempt(_ id: String, _ redis: any RedisCommands) throws -> Int {
        try redis.call(["HINCRBY", keys.routerAttempts, id, "1"]).int ?? 1
    }

    /// Takes back an attempt that ended in a transient error (not the entry's fault).
    public func uncountAttempt(_ id: String, _ redis: any RedisCommands) throws {
        try redis.call(["HINCRBY", keys.routerAttempts, id, "-1"])
    }

    /// Trims the ingress stream below the oldest entry still pending in the group (or, with none pending, below
    /// the last one delivered): never an entry a consumer may still need (SPEC 9). Returns the MINID used.
    @discardableResult
    public func trimIngress(_ redis: any RedisCommands) throws -> String? {
        let replies = try redis.pipeline([["XPENDING", keys.commands, group], ["XINFO", "GROUPS", keys.commands]])
        var floor: String?
        if let summary = replies[0].array, summary.count >= 2, let oldest = summary[1].string {
            floor = oldest
        } else if let groups = replies[1].array {
            for g in groups where g.pairs["name"] == group { floor = g.pairs["last-delivered-id"] }
        }
        guard let floor, floor != "0-0" else { return nil }
        try redis.call(["XTRIM", keys.commands, "MINID", floor])
        return floor
    }
}
