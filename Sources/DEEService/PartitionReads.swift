import DEECore
import DEEStore
import Redis

/// Read-only commands, answered from Redis state. Partition owners answer them in inbox order; with several
/// partitions the router answers the ones that span them (listRuns without contactId, stats).
struct PartitionReads: Sendable {
    let config: EngineConfiguration
    let keys: Keys
    let plans: PlanStore

    init(config: EngineConfiguration, plans: PlanStore) {
        self.config = config
        self.keys = Keys(prefix: config.prefix)
        self.plans = plans
    }

    func store(_ p: Int) -> PartitionStore {
        PartitionStore(partition: p, keys: keys, streamMaxLen: config.streamMaxLen)
    }

    func getPlan(_ planId: String, version: Int?, _ redis: any RedisCommands) throws -> Outcome {
        guard let latest = try plans.latestVersion(planId, redis) else {
            return .error(DEEError(.notFound, "no plan \(planId)", field: "planId"))
        }
        let v = version ?? latest
        guard let text = try redis.call(["HGET", keys.plan(planId), "v\(v)"]).string, let json = JSONValue.parse(text),
            var o = json.object
        else {
            return .error(DEEError(.notFound, "plan \(planId) has no version \(v)", field: "version"))
        }
        o["version"] = .int(v)
        return .ok(.object(o))
    }

    func getRun(_ runId: String, _ redis: any RedisCommands) throws -> Outcome {
        guard let p = RunID.partition(of: runId), p < config.partitions, let run = try store(p).loadRun(runId, redis) else {
            return .error(notFound(runId))
        }
        return .ok(run)
    }

    func notFound(_ runId: String) -> DEEError {
        DEEError(.notFound, "no run \(runId)", field: "runId")
    }

    /// listRuns order (SPEC 6): newest `startedAt` first, ties by id ascending (creation order). A run id starts
    /// with the fixed-width millisecond of its creation (its `startedAt`), so the order needs the ids only.
    static func listOrder(_ a: String, _ b: String) -> Bool {
        let ma = a.utf8.prefix(13), mb = b.utf8.prefix(13)
        if !ma.elementsEqual(mb) { return mb.lexicographicallyPrecedes(ma) }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// `{runs, total}` over the given partitions: each answers its first offset+limit ids in listRuns order,
    /// merged, and only the page's runs are read.
    func listRuns(_ filter: RunFilter, limit: Int, offset: Int, partitions: [Int]? = nil, _ redis: any RedisCommands) throws
        -> Outcome
    {
        let parts = partitions ?? Array(0..<config.partitions)
        var total = 0
        var ids: [String] = []
        let single = parts.count == 1
        // The seek relies on run ids' fixed widths: a bulk index of 5 digits (contacts ≤ 100,000).
        if !single && offset >= config.seekOffset && filter.contactId == nil && config.limits.maxContacts <= 100_000 {
            (total, ids) = try seek(filter, limit: limit, offset: offset, parts: parts, redis)
        } else {
            if single, let p = parts.first {
                (total, ids) = try store(p).query(filter, offset: offset, count: limit, redis)
            } else {
                // Every partition's query in one pipeline.
                let replies = try redis.evalScriptPipelined(
                    PartitionStore.queryScript,
                    calls: parts.map { store($0).queryCall(filter, offset: 0, count: offset + limit) })
                for reply in replies {
                    let q = try PartitionStore.queryResult(reply)
                    total += q.total
                    ids += q.ids
                }
                ids = Array(ids.sorted(by: Self.listOrder).dropFirst(offset).prefix(limit))
            }
        }
        // The page's runs, from whichever partitions hold them, in one pipeline.
        let located = ids.compactMap { id in RunID.partition(of: id).map { (id, store($0).loadCommands([id])) } }
        let runs = try PartitionStore.runs(redis.pipeline(located.flatMap(\.1)), ids: located.map(\.0))
            .compactMap { $0?.wire }
        return .ok(["runs": .array(runs), "total": .int(total)])
    }

    /// A page deep in the merge of several partitions, without reading the runs before it. In listRuns order
    /// the run at the offset is found in two parts. First its millisecond M: the one with at most `offset`
    /// matching runs of later milliseconds, and more than `offset` of M or later. Then, among M's runs (ascending
    /// ids), the r-th, r = offset - (runs after M): the one with exactly (runs of M or later) - 1 - r matching
    /// ids above it, since ids are unique and M's runs are the same set in either direction. Each part is a 16-way
    /// search between the lowest and highest matching ids, in which every round asks each partition, in one
    /// pipeline, how many matching runs have an id above 15 bounds (the seek script). Then each partition answers
    /// its first `limit` ids in listRuns order from that run on, merged. About 10-20 round trips whatever the
    /// offset; the merge of every partition's first offset+limit ids it replaces cost 0.3-0.5 s at offset 100,000
    /// over 4 partitions.
    func seek(_ filter: RunFilter, limit: Int, offset: Int, parts: [Int], _ redis: any RedisCommands) throws
        -> (total: Int, ids: [String])
    {
        func ask(_ mode: PartitionStore.SeekMode) throws -> [[RESPValue]] {
            let replies = try redis.evalScriptPipelined(
                PartitionStore.seekScript, calls: parts.map { store($0).seekCall(filter, mode) })
            return try replies.map { reply in
                if case .error(let e) = reply { throw RedisError(.server, "seek script: \(e)") }
                return reply.array ?? []
            }
        }
        func counts(_ bounds: [String]) throws -> [Int] {
            var sums = Array(repeating: 0, count: bounds.count)
            for reply in try ask(.count(bounds)) {
                for (i, c) in reply.enumerated() where i < sums.count { sums[i] += c.int ?? 0 }
            }
            return sums
        }
        /// The lowest and highest matching id over every partition (of one millisecond when given).
        func span(_ ms: Int?) throws -> (low: String, high: String)? {
            let pairs = try ask(.span(ms: ms)).map { ($0.first?.string ?? "", $0.last?.string ?? "") }
            let lows = pairs.map(\.0).filter { !$0.isEmpty }, highs = pairs.map(\.1).filter { !$0.isEmpty }
            guard let low = lows.min(), let high = highs.max() else { return nil }
            return (low, high)
        }
        /// The smallest n in (lo, hi] with at most `target` runs above bound(n); runs above bound(lo) are more.
        func search(_ lo: Int, _ hi: Int, _ target: Int, _ bound: (Int) -> String) throws -> Int {
            var lo = lo, hi = hi
            while hi - lo > 1 {
                let span = hi - lo
                let points = span <= 16 ? Array((lo + 1)..<hi) : (1...15).map { lo + span / 16 * $0 }
                for (n, c) in zip(points, try counts(points.map(bound))) {
                    if c > target { lo = max(lo, n) } else { hi = min(hi, n) }
                }
            }
            return hi
        }
        // A position in id order: (millisecond, entry sequence × 100,000 + index), as run ids sort.
        func split(_ id: String) -> (ms: Int, rest: Int)? {
            RunID.components(of: id).map { (Int($0.ms), Int($0.seq) * 100_000 + Int($0.index)) }
        }
        func restBound(_ ms: Int, _ rest: Int) -> String {
            RunID.bound(ms: UInt64(ms), seq: UInt64(rest / 100_000), index: UInt64(rest % 100_000))
        }
        let total = try counts([""])[0]
        guard offset < total else { return (total, []) }
        let window = try span(nil).flatMap { s in split(s.low).flatMap { l in split(s.high).map { (l.ms, $0.ms) } } }
        let ms = try search((window?.0 ?? 0) - 1, window?.1 ?? 9_999_999_999_999, offset) {
            RunID.bound(ms: UInt64($0))
        }
        let around = try counts([RunID.bound(ms: UInt64(ms)), ms > 0 ? RunID.bound(ms: UInt64(ms - 1)) : ""])
        let (later, fromMs) = (around[0], around[1])
        let target = fromMs - 1 - (offset - later)
        let ties = try span(ms).flatMap { s in split(s.low).flatMap { l in split(s.high).map { (l.rest, $0.rest) } } }
        let rest = try search((ties?.0 ?? 0) - 1, ties?.1 ?? 99_999_999_999, target) { restBound(ms, $0) }
        // The run at the offset and every id after it in its millisecond start with this (its bound without "~").
        let start = String(restBound(ms, rest).dropLast())
        var ids: [String] = []
        for reply in try ask(.page(size: limit, below: start)) { ids += reply.compactMap(\.string) }
        return (total, Array(ids.sorted(by: Self.listOrder).prefix(limit)))
    }

    func stats(_ redis: any RedisCommands, partitions: [Int]? = nil) throws -> Outcome {
        let parts = partitions ?? Array(0..<config.partitions)
        var counts: [String: Int] = Dictionary(uniqueKeysWithValues: RunStatus.allCases.map { ($0.rawValue, 0) })
        var tick: Int?
        // Executor consumer groups on the actions streams, and the action requests the streams hold.
        var executors: [JSONValue] = []
        var backlog = 0
        // Runs removed by run retention, all time (kept in Redis, so restarts do not reset it).
        var removed = 0
        for p in parts {
            let k = keys.partition(p)
            let actions = ActionsStore(keys: k)
            // Runs by status: the layout-2 set and the count hash of each status index (BucketedIndexes.swift).
            let replies = try redis.pipeline(
                RunStatus.allCases.flatMap { k.runCountCommands($0) } + [["GET", k.clock]] + actions.readCommands
                    + [RunRetentionStore(keys: k).removedCommand])
            for (i, s) in RunStatus.allCases.enumerated() {
                counts[s.rawValue, default: 0] += PartitionKeys.runCount(replies[2 * i..<2 * i + 2])
            }
            let n = 2 * RunStatus.allCases.count
            let clock = replies[n].int ?? 0
            tick = min(tick ?? clock, clock)
            backlog += replies[n + 1].int ?? 0
            removed += RunRetentionStore.removedTotal(replies[n + 3])
            for g in ActionsStore.groups(replies[n + 2]) {
                executors.append([
                    "partition": .int(p), "group": .string(g.name), "pending": .int(g.pending),
                    "lag": g.lag.map(JSONValue.int) ?? .null,
                ])
            }
        }
        return .ok([
            "tick": .int(tick ?? 0), "runsByStatus": .object(counts.mapValues(JSONValue.int)),
            "plans": .int(try plans.count(redis)), "partitions": .int(config.partitions),
            "executors": .array(executors), "actionsBacklog": .int(backlog),
            "retention": [
                "runs": config.runRetentionMilliseconds.map { .string(RunRetentionSetting.describe(milliseconds: $0)) }
                    ?? .null,
                "removedTotal": .int(removed),
            ],
        ])
    }

    func auditEntries(_ runId: String, _ redis: any RedisCommands, last: Int? = nil) throws -> [AuditEntry] {
        guard let p = RunID.partition(of: runId) else { return [] }
        let start = last.map { String(-$0) } ?? "0"
        let items = try redis.call(["LRANGE", keys.partition(p).audit(runId), start, "-1"]).array ?? []
        return items.compactMap { $0.string.flatMap(JSONValue.parse).flatMap(AuditEntry.init(json:)) }
    }

    func getAudit(_ runId: String, limit: Int, _ redis: any RedisCommands) throws -> Outcome {
        guard let p = RunID.partition(of: runId), p < config.partitions,
            try redis.call(["EXISTS", keys.partition(p).run(runId)]).int == 1
        else { return .error(notFound(runId)) }
        let entries = try auditEntries(runId, redis, last: limit)
        return .ok(.array(entries.reversed().map(\.json)))
    }

    /// `{valid, entries, brokenAt?}` (SPEC 7). Each stored entry must be exactly the text the engine writes for
    /// its fields (canonical), name this run, link to the one before it (from the genesis checksum) and carry its
    /// own checksum; the last must be the run's chain head, and their number the run's entry count. `brokenAt` is
    /// the index (oldest first, from 0) of the first entry that fails, or of the first missing one when the chain
    /// is intact but shorter than the count, or longer, or ends elsewhere than the head: an edit, an insertion or
    /// a removal anywhere and a truncation of either end all fail, and so does a run with no count at all (every
    /// run has its execute entry). A terminal run whose audit list is gone after the configured retention answers
    /// valid, with `entries: 0` and `expired: true`; gone before its time, it is broken at 0.
    func verifyAudit(_ runId: String, _ redis: any RedisCommands) throws -> Outcome {
        guard let p = RunID.partition(of: runId), p < config.partitions, let run = try store(p).loadRun(runId, redis) else {
            return .error(notFound(runId))
        }
        let key = keys.partition(p).audit(runId)
        // Not a list any more (overwritten with another type) reads as no entries.
        let raw = try redis.send(["LRANGE", key, "0", "-1"]).array ?? []
        if raw.isEmpty, run.auditCount > 0, let retention = config.auditRetentionSeconds, let completedAt = run.completedAt,
            try redis.call(["EXISTS", key]).int == 0
        {
            // The clock of the node that expired the list (on a cluster, a keyless TIME goes to any master).
            let time = try redis.evalScript("return redis.call('TIME')", keys: [key], arguments: []).array ?? []
            let now = (time.first?.int ?? 0) * 1000 + (time.count > 1 ? (time[1].int ?? 0) / 1000 : 0)
            if Int64(now) >= completedAt + Int64(retention) * 1000 {
                return .ok(["valid": true, "entries": .int(0), "expired": true])
            }
        }
        var entries: [AuditEntry] = []
        var malformed: Int?
        for (i, item) in raw.enumerated() {
            // The engine stores the checksum first (earlier versions stored the whole entry canonical, keys
            // sorted): any other text, even one that parses to the same fields, was edited.
            guard let text = item.string, let e = JSONValue.parse(text).flatMap(AuditEntry.init(json:)),
                e.runId == runId,
                e.storedText.utf8.elementsEqual(text.utf8) || e.json.canonical.utf8.elementsEqual(text.utf8)
            else {
                malformed = i
                break
            }
            entries.append(e)
        }
        let check: (valid: Bool, brokenAt: Int?)
        if let malformed {
            // A break in the chain before the malformed entry is the first one.
            let before = config.signer.verify(
                entries: entries, head: entries.last?.checksum ?? Run.genesis, count: entries.count)
            check = (false, before.brokenAt ?? malformed)
        } else if run.auditCount < 1 {
            // Every run starts with its execute entry: no count at all is a run hash edited along with its list.
            check = (false, 0)
        } else {
            check = config.signer.verify(entries: entries, head: run.auditHead, count: run.auditCount)
        }
        var result: [String: JSONValue] = ["valid": .bool(check.valid), "entries": .int(raw.count)]
        if let b = check.brokenAt { result["brokenAt"] = .int(b) }
        return .ok(.object(result))
    }
}
