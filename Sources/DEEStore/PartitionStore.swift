import Foundation
import DEECore
import Redis

/// Reads and writes one partition's state. Blocking: call it from the partition owner's connection queue.
public struct PartitionStore: Sendable {
    public let partition: Int
    public let keys: PartitionKeys
    public let streamMaxLen: Int

    public init(partition: Int, keys: Keys, streamMaxLen: Int) {
        self.partition = partition
        self.keys = keys.partition(partition)
        self.streamMaxLen = streamMaxLen
    }

    public func loadRun(_ id: String, _ redis: any RedisCommands) throws -> Run? {
        try loadRuns([id], redis)[0]
    }

    public func loadRuns(_ ids: [String], _ redis: any RedisCommands) throws -> [Run?] {
        if ids.isEmpty { return [] }
        return try Self.runs(redis.pipeline(loadCommands(ids)), ids: ids)
    }

    /// The reads of ``loadRuns(_:_:)``, for callers that pipeline them with other commands.
    public func loadCommands(_ ids: [String]) -> [[String]] { ids.map { ["HGETALL", keys.run($0)] } }

    /// Runs from the `HGETALL` replies of the run ids `ids`, in order (nil for a missing or unreadable run). The
    /// id is not stored in the hash (layout 2): the caller's list names each reply's run.
    public static func runs(_ replies: [RESPValue], ids: [String]) throws -> [Run?] {
        try zip(replies, ids).map { reply, id in
            // A run key an operator overwrote with another type reads as no run (state left behind: skipped, never
            // a failure that would stop ticks); any other error is a failure.
            if case .error(let e) = reply {
                if e.hasPrefix("WRONGTYPE") { return nil }
                throw RedisError(.server, e)
            }
            return Run(id: id, storedPairs: reply.pairList)
        }
    }

    /// Writes several change sets, each its own atomic script, in one pipeline, in order.
    public func applyMany(_ sets: [ChangeSet], epoch: String, _ redis: any RedisCommands) throws -> [ApplyResult] {
        let replies = try redis.evalScriptPipelined(
            ApplyScript.body,
            calls: sets.map { ([keys.epoch], $0.arguments(epoch: epoch, maxlen: streamMaxLen)) })
        return try replies.map(Self.result)
    }

    /// The commands that apply `sets`, for callers that send them with `sendOnly` and read the replies later
    /// (see ``result(_:)``). `EVAL`, not `EVALSHA`: see `RedisConnection.evalScriptPipelined`.
    public func applyCommands(_ sets: [ChangeSet], epoch: String) -> [[String]] {
        RedisConnection.evalCommands(
            ApplyScript.body, sets.map { ([keys.epoch], $0.arguments(epoch: epoch, maxlen: streamMaxLen)) })
    }

    /// The read of the runs due at or before tick `t` (at most `limit`, in the order a tick steps them;
    /// Scripts/DueScript.swift), for callers that pipeline it; its reply goes to ``dueResult(_:)``.
    public func dueCommand(through t: Int, limit: Int) -> [String] {
        RedisConnection.evalCommands(DueScript.source, [([keys.dueDirectory], [String(t), String(max(1, limit))])])[0]
    }

    /// The due run ids of a ``dueCommand(through:limit:)`` reply, and when there are none, the partition's earliest
    /// due tick (nil: nothing is scheduled).
    public static func dueResult(_ reply: RESPValue) throws -> (ids: [String], next: Int?) {
        if case .error(let e) = reply { throw RedisError(.server, "due script: \(e)") }
        guard let items = reply.array, let head = items.first?.string else {
            throw RedisError(.unexpectedReply, "due script answered \(reply)")
        }
        let ids = items.dropFirst().compactMap(\.string)
        // A score Redis prints as a double ("1e+20") is beyond any tick the engine schedules: read as the latest.
        let next = head.isEmpty ? nil : Int(head) ?? Double(head).map { $0 >= Double(Int.max) ? Int.max : Int($0) }
        return (ids, next)
    }

    /// What an apply script's reply means.
    public static func result(_ reply: RESPValue) throws -> ApplyResult {
        switch reply {
        case .string("OK"): return .ok
        // Redis may prefix a script's error with "ERR ".
        case .error(let e) where e.contains("FENCED"): return .fenced
        case .error(let e) where e.contains("APPLIED"): return .alreadyApplied
        case .error(let e) where e == "GAP" || e.hasSuffix(" GAP"): return .gap
        case .error(let e): throw RedisError(.server, "apply script: \(e)")
        default: throw RedisError(.unexpectedReply, "apply script answered \(reply)")
        }
    }

    /// Writes a change set with the apply script, then runs `then` in the same pipeline; returns both replies.
    public func apply(_ set: ChangeSet, epoch: String, then: [String]?, _ redis: any RedisCommands) throws
        -> (ApplyResult, RESPValue)
    {
        guard let then else { return (try apply(set, epoch: epoch, redis), .null) }
        let replies = try redis.evalScriptPipelined(
            ApplyScript.body, calls: [([keys.epoch], set.arguments(epoch: epoch, maxlen: streamMaxLen))],
            then: [then])
        return (try Self.result(replies[0]), replies[1])
    }

    /// Writes a change set with the apply script.
    public func apply(_ set: ChangeSet, epoch: String, _ redis: any RedisCommands) throws -> ApplyResult {
        let reply = try redis.evalScript(
            ApplyScript.body, keys: [keys.epoch], arguments: set.arguments(epoch: epoch, maxlen: streamMaxLen))
        return try Self.result(reply)
    }

    /// Matching run ids, newest first, and the exact total, answered from the indexes by the query script.
    public func query(
        _ filter: RunFilter, offset: Int, count: Int, ceiling: String? = nil, skipTotal: Bool = false,
        _ redis: any RedisCommands
    ) throws -> (total: Int, ids: [String]) {
        let call = queryCall(filter, offset: offset, count: count, ceiling: ceiling, skipTotal: skipTotal)
        return try Self.queryResult(redis.evalScript(QueryScript.source, keys: call.keys, arguments: call.arguments))
    }

    /// The query script's source (Scripts/QueryScript.swift), for callers that pipeline it over partitions.
    public static var queryScript: String { QueryScript.source }

    /// A query script call (see ``query(_:offset:count:ceiling:skipTotal:_:)``); its reply goes to ``queryResult(_:)``.
    public func queryCall(
        _ filter: RunFilter, offset: Int, count: Int, ceiling: String? = nil, skipTotal: Bool = false
    ) -> (keys: [String], arguments: [String]) {
        (
            [keys.status(.pending)],
            [
                (filter.statuses ?? []).map(\.rawValue).joined(separator: ","), filter.planId ?? "",
                filter.contactId ?? "", filter.startedAfter.map { String($0) } ?? "-inf",
                filter.startedBefore.map { "(" + String($0) } ?? "+inf", String(offset), String(count), ceiling ?? "",
                skipTotal ? "1" : "0", filter.contactId.map(ContactRecords.suffix) ?? "",
            ]
        )
    }

    public static func queryResult(_ reply: RESPValue) throws -> (total: Int, ids: [String]) {
        if case .error(let e) = reply { throw RedisError(.server, "query script: \(e)") }
        guard let items = reply.array, let total = items.first?.int else {
            throw RedisError(.unexpectedReply, "query script answered \(reply)")
        }
        return (total, items.dropFirst().compactMap(\.string))
    }

    /// The seek script's source (Scripts/SeekScript.swift), for callers that pipeline it over partitions.
    public static var seekScript: String { SeekScript.source }

    /// What a seek script call asks (Scripts/SeekScript.swift).
    public enum SeekMode: Sendable {
        /// For each bound, how many matching runs have an id above it.
        case count([String])
        /// Up to `size` matching ids below the bound, highest first.
        case page(size: Int, below: String)
        /// The lowest and highest matching id: of the time window (nil), or of one millisecond's runs.
        case span(ms: Int?)
    }

    /// A seek script call. Contact filters are not seekable.
    public func seekCall(_ filter: RunFilter, _ mode: SeekMode) -> (keys: [String], arguments: [String]) {
        let tail: [String]
        switch mode {
        case .count(let bounds): tail = ["count", "0"] + bounds
        case .page(let size, let bound): tail = ["page", String(size), bound]
        case .span(let ms): tail = ["span", "0", ms.map { String($0) } ?? ""]
        }
        return (
            [keys.status(.pending)],
            [
                (filter.statuses ?? []).map(\.rawValue).joined(separator: ","), filter.planId ?? "",
                filter.startedAfter.map { String($0) } ?? "-inf", filter.startedBefore.map { "(" + String($0) } ?? "+inf",
            ] + tail
        )
    }

    public func clock(_ redis: any RedisCommands) throws -> Int {
        try redis.call(["GET", keys.clock]).int ?? 0
    }

}
