import DEECore
import Redis

/// The key layout a deployment is written in, kept in `<prefix>:meta` `layout` (docs/MEMORY.md).
public enum Layout {
    /// Run hashes with long field names, every field written (absent `layout` field: a deployment from before it).
    public static let longFields = 1
    /// Run hashes with short field names, defaults and derived fields not stored.
    public static let compactRuns = 2
    /// What this engine writes.
    public static let current = compactRuns
}

/// Rewrites a deployment's run hashes from layout 1 into the current layout, in bounded batches (one script per
/// batch of `batchSize` keys, atomic, so engines may keep running: they read both layouts), resumable: each
/// partition's SCAN cursor is kept in `<prefix>:meta` (`migrate:<p>`) after every batch, and a repeated batch
/// changes nothing. When every partition is done, `layout` becomes ``Layout/current``.
public struct LayoutMigration: Sendable {
    public let keys: Keys
    public let partitions: Int
    public let batchSize: Int

    public init(keys: Keys, partitions: Int, batchSize: Int = 500) {
        self.keys = keys
        self.partitions = partitions
        self.batchSize = max(1, batchSize)
    }

    /// How far a migration got.
    public struct Progress: Sendable, Equatable {
        /// Run hashes rewritten by this call.
        public var converted = 0
        /// Batches (SCAN pages) this call went through.
        public var batches = 0
        /// Whether every partition is done and `layout` is current.
        public var done = false
    }

    /// The layout recorded for the deployment (``Layout/longFields`` when none is).
    public func layout(_ redis: RedisConnection) throws -> Int {
        try redis.call(["HGET", keys.meta, "layout"]).int ?? Layout.longFields
    }

    /// Runs at most `maxBatches` batches (nil: until done), from where an earlier call stopped.
    public func run(maxBatches: Int? = nil, _ redis: RedisConnection) throws -> Progress {
        var progress = Progress()
        if try layout(redis) >= Layout.current {
            progress.done = true
            return progress
        }
        for p in 0..<partitions {
            let field = "migrate:\(p)"
            var cursor = try redis.call(["HGET", keys.meta, field]).string ?? "0"
            if cursor == "done" { continue }
            let base = keys.partition(p).base
            repeat {
                if let maxBatches, progress.batches >= maxBatches { return progress }
                let reply = try redis.call(["SCAN", cursor, "MATCH", "\(base):run:*", "COUNT", String(batchSize)])
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                    throw RedisError(.unexpectedReply, "SCAN answered \(reply)")
                }
                let found = (parts[1].array ?? []).compactMap(\.string)
                if !found.isEmpty {
                    let n = try redis.evalScript(MigrateRunsScript.source, keys: found, arguments: [])
                    if case .error(let e) = n { throw RedisError(.server, "migrate script: \(e)") }
                    progress.converted += n.int ?? 0
                }
                progress.batches += 1
                cursor = next
                try redis.call(["HSET", keys.meta, field, cursor == "0" ? "done" : cursor])
            } while cursor != "0"
        }
        try redis.call(["HSET", keys.meta, "layout", String(Layout.current)])
        try redis.call(["HDEL", keys.meta] + (0..<partitions).map { "migrate:\($0)" })
        progress.done = true
        return progress
    }
}
