import DEECore
import Redis

/// Every key matching `pattern` (SCAN).
func scanKeys(_ redis: RedisConnection, _ pattern: String) throws -> [String] {
    var keys: [String] = []
    var cursor = "0"
    repeat {
        let reply = try redis.call(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]).array ?? []
        cursor = reply.first?.string ?? "0"
        keys += (reply.count > 1 ? reply[1].array ?? [] : []).compactMap(\.string)
    } while cursor != "0"
    return keys
}

/// Layout 4's status and plan+status indexes as the tests read them (docs/MEMORY.md): the layout-2 sorted set
/// (runs not migrated yet) and every bucket, by SCAN, never through the engine's own scripts.
enum Indexes {
    /// The index's keys: its layout-2 set, then its buckets.
    static func keys(_ redis: RedisConnection, base: String, status: String, plan: String? = nil) throws -> [String] {
        let counts = plan.map { "\(base):ixp:\($0):\(status)" } ?? "\(base):ixs:\(status)"
        let legacy = plan.map { "\(base):idx:ps:\($0):\(status)" } ?? "\(base):idx:status:\(status)"
        let keys = try scanKeys(redis, "\(counts):*")
        // A bucket's key ends in its number; another plan's key can match the pattern only with more colons.
        let buckets = keys.filter { Int($0.dropFirst(counts.count + 1)) != nil }
        return [legacy] + buckets.sorted { Int($0.dropFirst(counts.count + 1))! < Int($1.dropFirst(counts.count + 1))! }
    }

    /// Every run id in the index, ascending.
    static func members(_ redis: RedisConnection, base: String, status: String, plan: String? = nil) throws -> [String] {
        try keys(redis, base: base, status: status, plan: plan).flatMap {
            (try redis.call(["ZRANGE", $0, "0", "-1"]).array ?? []).compactMap(\.string)
        }.sorted()
    }

    /// The run's score in the index, or nil when the index does not list it.
    static func score(_ redis: RedisConnection, base: String, status: String, plan: String? = nil, _ id: String) throws
        -> String?
    {
        for key in try keys(redis, base: base, status: status, plan: plan) {
            if let s = try redis.call(["ZSCORE", key, id]).string { return s }
        }
        return nil
    }

    /// Every run id of the partition, from its status indexes, ascending.
    static func allRuns(_ redis: RedisConnection, base: String) throws -> [String] {
        try RunStatus.allCases.flatMap { try members(redis, base: base, status: $0.rawValue) }.sorted()
    }
}

extension Indexes {
    /// What is wrong with the partition's count hashes (empty: nothing): every bucket field must be its bucket's
    /// ZCARD, every `s<g>` the sum of its 128 buckets, `all` the sum of every bucket, and every bucket counted.
    static func countProblems(_ redis: RedisConnection, base: String) throws -> [String] {
        let keys = try scanKeys(redis, "\(base):ix[sp]:*")
        var problems: [String] = []
        var counted = Set<String>()
        for key in keys where try redis.call(["TYPE", key]).string == "hash" {
            let fields = try redis.call(["HGETALL", key]).pairs
            var groups: [Int: Int] = [:]
            var all = 0
            for (f, v) in fields {
                guard let b = Int(f) else { continue }
                let n = try redis.call(["ZCARD", "\(key):\(b)"]).int ?? 0
                counted.insert("\(key):\(b)")
                if String(n) != v { problems.append("\(key) \(f) = \(v), bucket holds \(n)") }
                if n == 0 { problems.append("\(key) \(f): a zero count is kept") }
                groups[Int((Double(b) / 128).rounded(.down)), default: 0] += n
                all += n
            }
            for (f, v) in fields where f.hasPrefix("s") {
                guard let g = Int(f.dropFirst()) else { continue }
                if String(groups[g] ?? 0) != v { problems.append("\(key) \(f) = \(v), its buckets hold \(groups[g] ?? 0)") }
                groups[g] = nil
            }
            for (g, n) in groups { problems.append("\(key) s\(g) missing, its buckets hold \(n)") }
            if (fields["all"] ?? "0") != String(all) { problems.append("\(key) all = \(fields["all"] ?? "-"), holds \(all)") }
        }
        for key in keys where !counted.contains(key) {
            guard try redis.call(["TYPE", key]).string == "zset" else { continue }
            problems.append("\(key) is not counted")
        }
        return problems
    }
}

/// Layout 5's due schedule as the tests read it: layout 4's `due` set and every `dueb:<b>` bucket, by SCAN.
enum DueSchedule {
    static func bucketKeys(_ redis: RedisConnection, base: String) throws -> [String] {
        try scanKeys(redis, "\(base):dueb:*")
    }

    /// The creation bucket of a run id (bmap's highest member at or below it), nil below every bucket.
    static func bucket(_ redis: RedisConnection, base: String, _ id: String) throws -> Int? {
        let m = try redis.call(["ZRANGE", "\(base):bmap", "[\(id) ~", "-", "BYLEX", "REV", "LIMIT", "0", "1"]).array?.first?.string
        return m.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }
    }

    /// The directory member of bucket b.
    static func member(_ b: Int) -> String { String(5_000_000_000_000 + b) }

    /// The run's due tick (as stored), or nil when it is not scheduled.
    static func score(_ redis: RedisConnection, base: String, _ id: String) throws -> String? {
        for key in try ["\(base):due"] + bucketKeys(redis, base: base) {
            if let s = try redis.call(["ZSCORE", key, id]).string { return s }
        }
        return nil
    }

    /// Every scheduled run: id → due tick.
    static func all(_ redis: RedisConnection, base: String) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for key in try ["\(base):due"] + bucketKeys(redis, base: base) {
            let items = (try redis.call(["ZRANGE", key, "0", "-1", "WITHSCORES"]).array ?? []).compactMap(\.string)
            for i in stride(from: 0, to: items.count - 1, by: 2) { out[items[i]] = Int(items[i + 1]) }
        }
        return out
    }

    /// What is wrong with the directory: a bucket whose `duedir` entry is missing or not its earliest due tick,
    /// or an entry without a bucket. Empty when consistent.
    static func problems(_ redis: RedisConnection, base: String) throws -> [String] {
        var problems: [String] = []
        let dir = (try redis.call(["ZRANGE", "\(base):duedir", "0", "-1", "WITHSCORES"]).array ?? []).compactMap(\.string)
        var entries: [Int: String] = [:]
        for i in stride(from: 0, to: dir.count - 1, by: 2) {
            guard let m = Int(dir[i]) else { problems.append("duedir member \(dir[i])"); continue }
            entries[m - 5_000_000_000_000] = dir[i + 1]
        }
        for key in try bucketKeys(redis, base: base) {
            guard let b = Int(key.dropFirst(base.count + ":dueb:".count)) else { continue }
            let head = (try redis.call(["ZRANGE", key, "0", "0", "WITHSCORES"]).array ?? []).compactMap(\.string)
            if entries[b] != head.last { problems.append("bucket \(b): duedir \(entries[b] ?? "-"), head \(head)") }
            entries[b] = nil
        }
        problems += entries.keys.sorted().map { "duedir entry \($0) without a bucket" }
        return problems
    }
}
