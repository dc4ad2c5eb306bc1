import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// Redis memory per run of state, indexes and enrollment (issue 9, docs/MEMORY.md), on the bench's run: the linear
/// 4-step plan, a contact with id and email, no variables, status waiting. Bounded (10,000 runs), no timing.
@Suite(.serialized) struct MemoryTests {
    /// `MEMORY USAGE … SAMPLES 0` (exact) of every key, summed; keys of this test's deployment only, so other
    /// tests sharing the Redis do not count (INFO's used_memory would).
    static func usage(_ redis: RedisConnection, _ keys: [String]) throws -> Int {
        var total = 0
        for chunk in stride(from: 0, to: keys.count, by: 1000).map({ Array(keys[$0..<min($0 + 1000, keys.count)]) }) {
            total += try redis.pipeline(chunk.map { ["MEMORY", "USAGE", $0, "SAMPLES", "0"] }).reduce(0) { $0 + ($1.int ?? 0) }
        }
        return total
    }

    @Test func bytesPerRunOfTheBenchRun() async throws {
        try await TestEngine.with { client, env in
            try client.register(MigrationTests.benchPlan)
            let n = 10_000
            let contacts = (0..<n).map { #"{"id":"b\#($0)","email":"x@y.z"}"# }.joined(separator: ",")
            let r = try client.call(
                "bulkExecute", ["planId": "bench", "contacts": "[\(contacts)]", "batchSize": "1000"], timeout: 120)
            #expect(r.object["created"] as? Int == n, "\(r.fields)")
            _ = try client.advanceClock(2)
            #expect(try client.call("listRuns", ["status": "waiting", "limit": "1"]).total == n)
            let base = env.key("{0}")
            let runs = try Self.usage(env.redis, try scanKeys(env.redis, "\(base):run:*"))
            // Layout 4's buckets and count hashes (ixs:, ixp:), bmap, the creation counter and layout 5's due buckets
            // and directory count as indexes.
            let indexes = try Self.usage(
                env.redis,
                try scanKeys(env.redis, "\(base):idx:*") + scanKeys(env.redis, "\(base):ix[sp]:*")
                    + scanKeys(env.redis, "\(base):cx:*") + scanKeys(env.redis, "\(base):dueb:*")
                    + ["\(base):due", "\(base):duedir", "\(base):enroll", "\(base):bmap", "\(base):nruns"])
            let hash = runs / n, perRun = (runs + indexes) / n
            // Measured on Redis 7.0.15: the run hash 296 B (472 B in layout 1); 562 B in all with layout 3's
            // contact records, layout 4's bucketed status and plan+status indexes and layout 5's bucketed due
            // schedule (643 B in layout 4, 897 B in layout 2: a sorted set per contact and per index, the enroll
            // hash). MEMORY USAGE counts each key's main-dictionary entry but not its slot in the table (8-30 B per
            // key more in INFO's delta; dee-bench adds it from MEMORY STATS). At 10,000 runs nearly every contact has a record bucket of its own; at
            // 1,000,000 (the bench) a bucket holds ~15 and a record costs ~56 B, not ~135 (docs/MEMORY.md). Bounds:
            // the measurement + ~7-8%, so a layout change that adds a field or an index entry fails here.
            print("memory per run: run hash \(hash) B, with indexes and enrollment \(perRun) B")
            #expect(hash <= 320, "run hash \(hash) B")
            #expect(perRun <= 600, "state + indexes + enrollment \(perRun) B")
        }
    }
}
