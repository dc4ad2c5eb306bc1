import DEECore
import Redis

/// The key layout a deployment is written in, kept in `<prefix>:meta` `layout` (docs/MEMORY.md). Each number
/// after the first is one ``LayoutStep``; `dee migrate` runs the steps a deployment has not done, in order.
public enum Layout {
    /// Run hashes with long field names, every field written (absent `layout` field: a deployment from before it).
    public static let longFields = 1
    /// Run hashes with short field names, defaults and derived fields not stored.
    public static let compactRuns = 2
    /// Each contact's run ids and enrollments in one record of a bucket hash (`cx:<bucket>`, ``ContactRecords``)
    /// instead of a sorted set per contact and the `enroll` hash.
    public static let contactRecords = 3
    /// Status and plan+status indexes in listpack buckets of 128 runs with count hashes (docs/MEMORY.md).
    public static let bucketedIndexes = 4
    /// The due schedule in the same buckets (`dueb:<b>`, with the directory `duedir`) instead of one sorted set.
    public static let bucketedDue = 5
    /// What this engine writes.
    public static var current: Int { LayoutMigration.steps.last?.layout ?? longFields }
}

/// One change of the key layout: converts one partition in bounded batches, each one atomic script that may be
/// repeated (a batch that finds nothing left to convert changes nothing), so engines keep running meanwhile:
/// they read the structure of both layouts until the step is recorded done.
public protocol LayoutStep: Sendable {
    /// The deployment's layout once this step is done in every partition.
    var layout: Int { get }
    /// What it converts, for `dee migrate`'s report ("run hashes").
    var what: String { get }
    /// Converts up to about `size` items of a partition from `cursor` ("0" at first). Returns the cursor to go on
    /// from ("0": the partition is done) and how many items it converted.
    func batch(_ keys: PartitionKeys, cursor: String, size: Int, _ redis: any RedisCommands) throws
        -> (next: String, converted: Int)
}

/// Rewrites a deployment into the current layout, step by step, in bounded batches, resumable: each step's
/// per-partition cursor is kept in `<prefix>:meta` (`migrate:<layout>:<p>`) after every batch. When a step is
/// done in every partition, `layout` becomes its number.
public struct LayoutMigration: Sendable {
    /// Every step, in order.
    public static let steps: [any LayoutStep] = [
        CompactRunsStep(), ContactRecordsStep(), BucketedIndexesStep(), DueBucketsStep(),
    ]

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
        /// Items converted by this call, all steps together.
        public var converted = 0
        /// Items converted by this call, per step: (what, count), in step order.
        public var converts: [Converted] = []
        /// Batches this call went through.
        public var batches = 0
        /// Whether every step is done in every partition and `layout` is current.
        public var done = false
    }

    public struct Converted: Sendable, Equatable {
        public var layout: Int
        public var what: String
        public var count: Int
    }

    /// The layout recorded for the deployment (``Layout/longFields`` when none is).
    public func layout(_ redis: any RedisCommands) throws -> Int {
        try redis.call(["HGET", keys.meta, "layout"]).int ?? Layout.longFields
    }

    /// Runs at most `maxBatches` batches (nil: until done), from where an earlier call stopped.
    public func run(maxBatches: Int? = nil, _ redis: any RedisCommands) throws -> Progress {
        var progress = Progress()
        let recorded = try layout(redis)
        for step in Self.steps where step.layout > recorded {
            progress.converts.append(Converted(layout: step.layout, what: step.what, count: 0))
            for p in 0..<partitions {
                let field = "migrate:\(step.layout):\(p)"
                var cursor = try redis.call(["HGET", keys.meta, field]).string ?? "0"
                if cursor == "done" { continue }
                repeat {
                    if let maxBatches, progress.batches >= maxBatches { return progress }
                    let (next, converted) = try step.batch(keys.partition(p), cursor: cursor, size: batchSize, redis)
                    progress.converted += converted
                    progress.converts[progress.converts.count - 1].count += converted
                    progress.batches += 1
                    cursor = next
                    try redis.call(["HSET", keys.meta, field, cursor == "0" ? "done" : cursor])
                } while cursor != "0"
            }
            try redis.call(["HSET", keys.meta, "layout", String(step.layout)])
            try redis.call(["HDEL", keys.meta] + (0..<partitions).map { "migrate:\(step.layout):\($0)" })
        }
        progress.done = true
        return progress
    }
}

/// Layout 2: run hashes of layout 1 rewritten with short field names (Scripts/MigrateRunsScript.swift).
struct CompactRunsStep: LayoutStep {
    var layout: Int { Layout.compactRuns }
    var what: String { "run hashes" }

    func batch(_ keys: PartitionKeys, cursor: String, size: Int, _ redis: any RedisCommands) throws
        -> (next: String, converted: Int)
    {
        let reply = try redis.scan(cursor: cursor, matching: "\(keys.base):run:*", count: size, nodeOf: keys.epoch)
        guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
            throw RedisError(.unexpectedReply, "SCAN answered \(reply)")
        }
        let found = (parts[1].array ?? []).compactMap(\.string)
        guard !found.isEmpty else { return (next, 0) }
        let n = try redis.evalScript(MigrateRunsScript.source, keys: found, arguments: [])
        if case .error(let e) = n { throw RedisError(.server, "migrate script: \(e)") }
        return (next, n.int ?? 0)
    }
}

/// Layout 3: layout 2's per-contact sorted sets and `enroll` hash folded into contact records
/// (Scripts/FoldContactsScript.swift). The cursor is `k<SCAN cursor>` while the contact indexes are folded,
/// then `e<HSCAN cursor>` while what is left of `enroll` is.
struct ContactRecordsStep: LayoutStep {
    var layout: Int { Layout.contactRecords }
    var what: String { "contact indexes and enrollments" }

    func batch(_ keys: PartitionKeys, cursor: String, size: Int, _ redis: any RedisCommands) throws
        -> (next: String, converted: Int)
    {
        let enrolling = cursor.hasPrefix("e")
        let position = cursor == "0" ? "0" : String(cursor.dropFirst())
        let reply = enrolling
            ? try redis.call(["HSCAN", keys.enroll, position, "COUNT", String(size)])
            : try redis.scan(
                cursor: position, matching: "\(keys.base):\(PartitionKeys.contactSuffix("*"))", count: size,
                nodeOf: keys.epoch)
        guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
            throw RedisError(.unexpectedReply, "\(enrolling ? "HSCAN" : "SCAN") answered \(reply)")
        }
        let found = (parts[1].array ?? []).compactMap(\.string)
        // HSCAN answers field, value pairs.
        let items = enrolling
            ? stride(from: 0, to: found.count, by: 2).map { found[$0] }
            : found.map { String($0.dropFirst(keys.base.count + 1)) }
        var converted = 0
        if !items.isEmpty {
            let n = try redis.evalScript(
                FoldContactsScript.source, keys: [keys.epoch], arguments: [enrolling ? "enroll" : "keys"] + items)
            if case .error(let e) = n { throw RedisError(.server, "fold contacts script: \(e)") }
            converted = n.int ?? 0
        }
        if next != "0" { return ((enrolling ? "e" : "k") + next, converted) }
        return (enrolling ? "0" : "e0", converted)
    }
}

/// Layout 4: the runs of the layout-2 status and plan+status sorted sets moved into buckets of 128 with count hashes
/// (Scripts/MigrateIndexesScript.swift), highest ids first. Engines meanwhile write new runs into buckets, move runs
/// not reached yet within the old sets, and read both. When the status sets are empty, what is left in the old
/// plan+status sets (entries whose run had no plan, or was in no status index: state an operator left) is
/// deleted, since it would no longer sort below the buckets.
struct BucketedIndexesStep: LayoutStep {
    var layout: Int { Layout.bucketedIndexes }
    var what: String { "index entries" }

    func batch(_ keys: PartitionKeys, cursor: String, size: Int, _ redis: any RedisCommands) throws
        -> (next: String, converted: Int)
    {
        let reply = try redis.evalScript(MigrateIndexesScript.source, keys: [keys.bucketMap], arguments: [String(size)])
        if case .error(let e) = reply { throw RedisError(.server, "migrate indexes script: \(e)") }
        guard let parts = reply.array, parts.count == 2, let moved = parts[0].int, let left = parts[1].int else {
            throw RedisError(.unexpectedReply, "migrate indexes script answered \(reply)")
        }
        if left > 0 { return ("1", moved) }
        // The plan registry (`<prefix>:{plans}:ids`; base is `<prefix>:{p}`) names every plan's old sets.
        let prefix = String(keys.base.prefix { $0 != "{" }.dropLast())
        let plans = (try redis.call(["SMEMBERS", Keys(prefix: prefix).planIds]).array ?? []).compactMap(\.string)
        let leftovers = plans.flatMap { plan in
            RunStatus.allCases.map { "\(keys.base):\(PartitionKeys.planStatusSuffix(plan, $0))" }
        }
        for start in stride(from: 0, to: leftovers.count, by: 500) {
            try redis.call(["UNLINK"] + leftovers[start..<min(leftovers.count, start + 500)])
        }
        return ("0", moved)
    }
}

/// Layout 5: layout 4's due schedule (one sorted set) moved into the creation buckets' `dueb:<b>` sets, a ZSCAN page
/// of `due` per batch (Scripts/MigrateDueScript.swift). Engines of this version write every run that has a bucket to
/// its bucket (and take it out of `due`) and read both, so the move needs no pause; what stays in `due` is runs
/// below every bucket (a deployment whose layout-4 step has not reached them), which ticks keep reading there.
struct DueBucketsStep: LayoutStep {
    var layout: Int { Layout.bucketedDue }
    var what: String { "due schedule entries" }

    func batch(_ keys: PartitionKeys, cursor: String, size: Int, _ redis: any RedisCommands) throws
        -> (next: String, converted: Int)
    {
        let reply = try redis.call(["ZSCAN", keys.due, cursor, "COUNT", String(size)])
        guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
            throw RedisError(.unexpectedReply, "ZSCAN answered \(reply)")
        }
        // ZSCAN answers member, score pairs.
        let found = (parts[1].array ?? []).compactMap(\.string)
        let ids = stride(from: 0, to: found.count, by: 2).map { found[$0] }
        guard !ids.isEmpty else { return (next, 0) }
        let n = try redis.evalScript(MigrateDueScript.source, keys: [keys.dueDirectory], arguments: ids)
        if case .error(let e) = n { throw RedisError(.server, "migrate due script: \(e)") }
        return (next, n.int ?? 0)
    }
}
