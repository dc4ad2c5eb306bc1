import DEEClient
import DEECore
import DEEService
import DEEStore
import Foundation
import Redis
import Testing

/// Layout 5's due schedule (docs/MEMORY.md): runs in their creation bucket's `dueb:<b>`, the directory `duedir`
/// naming each bucket's earliest due tick. A deployment of layout 4 (one `due` sorted set) keeps ticking while
/// `dee migrate` moves it; state left behind (a stale directory, a run listed twice) never stops or repeats a tick.
@Suite(.serialized) struct DueScheduleTests {
    /// Action, wait 10 ticks, action, end.
    static let plan = planText("drip", [actionStep("a1"), waitStep("w", 10), actionStep("a2"), endStep("done", "ok")])

    /// What is wrong with the schedule against the run hashes: every open run not paused with a due tick is
    /// scheduled at that tick once (in the old set or in its bucket, not both), and nothing else is; the directory
    /// matches the buckets.
    static func problems(_ env: TestEngine.Env) throws -> [String] {
        let base = env.key("{0}")
        var problems = try DueSchedule.problems(env.redis, base: base)
        let legacy = Set(
            (try env.redis.call(["ZRANGE", "\(base):due", "0", "-1"]).array ?? []).compactMap(\.string))
        var bucketed: [String: Int] = [:]
        for key in try DueSchedule.bucketKeys(env.redis, base: base) {
            for id in (try env.redis.call(["ZRANGE", key, "0", "-1"]).array ?? []).compactMap(\.string) {
                bucketed[id, default: 0] += 1
            }
        }
        let scheduled = try DueSchedule.all(env.redis, base: base)
        var expected: [String: Int] = [:]
        for id in try Indexes.allRuns(env.redis, base: base) {
            let run = try #require(Run(id: id, fields: try env.redis.call(["HGETALL", "\(base):run:\(id)"]).pairs))
            if run.status.isOpen, run.status != .paused, let due = run.due { expected[id] = due }
        }
        if scheduled != expected {
            let wrong = Set(scheduled.keys).symmetricDifference(expected.keys).union(
                expected.keys.filter { scheduled[$0] != nil && scheduled[$0] != expected[$0] })
            problems.append("schedule differs from the run hashes for \(wrong.sorted().prefix(5))")
        }
        let twice = legacy.filter { bucketed[$0] != nil } + bucketed.filter { $0.value > 1 }.map(\.key)
        if !twice.isEmpty { problems.append("scheduled twice: \(twice.sorted().prefix(5))") }
        return problems
    }

    /// Turns partition 0's schedule back into layout 4's: every entry in `due`, no buckets, no directory.
    static func writeLayoutFour(_ env: TestEngine.Env) throws {
        let base = env.key("{0}")
        let all = try DueSchedule.all(env.redis, base: base)
        try env.redis.call(["DEL", "\(base):duedir"] + DueSchedule.bucketKeys(env.redis, base: base))
        if !all.isEmpty { try env.redis.call(["ZADD", "\(base):due"] + all.flatMap { [String($0.value), $0.key] }) }
        try env.redis.call(["HSET", env.key("meta"), "layout", String(Layout.bucketedIndexes)])
    }

    static func steps(_ env: TestEngine.Env) throws -> [String: Int] {
        var n: [String: Int] = [:]
        for e in try env.runEvents() where e["type"] == "run.step" { n[e["runId"] ?? "", default: 0] += 1 }
        return n
    }

    @Test func aLayoutFourScheduleMovesIntoBucketsWhileTicksRun() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.plan)
            // 700 runs (buckets 0-5): 400 in their wait (due at tick 12), 300 due at tick 3.
            let first = (0..<400).map { ["id": "d\($0)", "email": "x@y.z"] }
            #expect(try client.call("bulkExecute", ["planId": "drip", "contacts": js(first), "batchSize": "90"], timeout: 60).ok)
            _ = try client.advanceClock(2)
            let second = (400..<700).map { ["id": "d\($0)", "email": "x@y.z"] }
            #expect(try client.call("bulkExecute", ["planId": "drip", "contacts": js(second), "batchSize": "90"], timeout: 60).ok)
            let paused = try #require(try client.call("listRuns", ["contactId": "d450"]).runIds.first)
            #expect(try client.call("pauseRun", ["runId": paused]).ok)
            #expect(try Self.problems(env).isEmpty)

            try Self.writeLayoutFour(env)
            #expect(try env.redis.call(["ZCARD", env.key("{0}:due")]).int == 699)
            #expect(try Self.problems(env).isEmpty, "layout 4's schedule reads the same")
            // Ticks before and between the migration's batches: runs the engine moves leave the old set (tick 3
            // steps the 300; the 400 wait in the old set).
            _ = try client.advanceClock(1)
            let afterTick = try Self.problems(env)
            #expect(afterTick.isEmpty, "\(afterTick)")
            let left = try env.redis.call(["ZCARD", env.key("{0}:due")]).int ?? 0
            #expect(left == 400)
            let migration = LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1, batchSize: 50)
            var batches = 0
            while true {
                let p = try migration.run(maxBatches: 1, env.redis)
                if p.done { break }
                batches += 1
                if batches > 60 { break }
                if batches % 3 == 0 {
                    _ = try client.advanceClock(1)
                    try client.run("drip", "late\(batches)")
                }
                let found = try Self.problems(env)
                #expect(found.isEmpty, "after batch \(batches): \(found)")
            }
            #expect(batches > 1 && batches <= 60, "\(batches) batches, \(left) runs in the old set before them")
            #expect(try migration.layout(env.redis) == Layout.current)
            #expect(try !env.exists("{0}:due"), "every run has a bucket: the old set is left empty")
            #expect(try Self.problems(env).isEmpty)
            #expect(try client.call("resumeRun", ["runId": paused]).ok)
            _ = try client.advanceClock(20)
            let stats = try client.stats().object["runsByStatus"] as? [String: Any]
            #expect(stats?["completed"] as? Int == 700 + batches / 3, "\(String(describing: stats))")
            // Every run stepped as often as every other: none twice in a tick, none left behind.
            let counts = Set(try Self.steps(env).values)
            #expect(counts.count == 1, "\(counts)")
            #expect(try env.redis.call(["EXISTS", env.key("{0}:duedir")]).int == 0)
        }
    }

    /// One migration script over more entries than Lua's unpack() takes at once (~8,000 values: the ids of 9,000 runs
    /// and scores): written in slices, every run moved.
    @Test func aLargeMigrationPageIsWrittenWhole() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.plan)
            let contacts = (0..<9000).map { ["id": "g\($0)", "email": "x@y.z"] }
            #expect(try client.call("bulkExecute", ["planId": "drip", "contacts": js(contacts)], timeout: 120).object["created"] as? Int == 9000)
            try Self.writeLayoutFour(env)
            let migration = LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1, batchSize: 10_000)
            let p = try migration.run(env.redis)
            #expect(p.done && p.converted == 9000, "\(p)")
            #expect(try !env.exists("{0}:due"))
            let found = try Self.problems(env)
            #expect(found.isEmpty, "\(found)")
        }
    }

    /// A run listed earlier than its own due tick (a stale copy in the old set, as an engine of the previous layout
    /// leaves when it reschedules a run the new one had bucketed), and an entry in a bucket other than its run's:
    /// the run steps at its own due tick, once, like every other, and the schedule ends consistent.
    @Test func aStaleOrMisplacedEntryStepsItsRunOnceAtItsOwnTick() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.plan)
            let contacts = (0..<300).map { ["id": "m\($0)", "email": "x@y.z"] }
            #expect(try client.call("bulkExecute", ["planId": "drip", "contacts": js(contacts)], timeout: 60).ok)
            _ = try client.advanceClock(2)
            let base = env.key("{0}")
            let all = try DueSchedule.all(env.redis, base: base)
            let ids = all.keys.sorted()
            let stale = ids[5], misplaced = ids[10]
            let later = try #require(all[stale])
            #expect(later > 4, "in its wait: \(later)")
            // The stale copy: in the old set at tick 3, while the run's hash and its bucket say later.
            try env.redis.call(["ZADD", "\(base):due", "3", stale])
            // The misplaced entry: moved from bucket 0 into bucket 1 (the directory says so too).
            try env.redis.call(["ZREM", "\(base):dueb:0", misplaced])
            try env.redis.call(["ZADD", "\(base):dueb:1", String(try #require(all[misplaced])), misplaced])
            let before = try Self.steps(env)
            _ = try client.advanceClock(1)
            #expect(try Self.steps(env) == before, "tick 3 steps nothing: the stale copy is rescheduled")
            let afterStale = try Self.problems(env)
            #expect(afterStale.isEmpty, "\(afterStale)")
            #expect(try DueSchedule.score(env.redis, base: base, stale) == String(later))
            _ = try client.advanceClock(20)
            #expect(try client.call("listRuns", ["status": "completed"]).total == 300)
            let counts = Set(try Self.steps(env).values)
            #expect(counts.count == 1, "\(counts)")
            #expect(try env.redis.call(["EXISTS", "\(base):duedir", "\(base):due"]).int == 0)
        }
    }

    /// A directory entry naming a tick at which its bucket has nothing (state an operator or a bug left), an
    /// entry for a bucket that does not exist, and a run listed in the old set and in its bucket (as an engine of
    /// the previous version would schedule it): ticks still step every run, each once per tick, and repair the
    /// directory.
    @Test func stateLeftInTheScheduleNeitherStopsNorRepeatsATick() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.plan)
            let contacts = (0..<300).map { ["id": "s\($0)", "email": "x@y.z"] }
            #expect(try client.call("bulkExecute", ["planId": "drip", "contacts": js(contacts)], timeout: 60).ok)
            let base = env.key("{0}")
            let dir = "\(base):duedir"
            // Bucket 1's entry says tick 0 (its runs are due at 1); bucket 9 does not exist.
            try env.redis.call(["ZADD", dir, "0", "5000000000001", "0", "5000000000009"])
            let twice = try #require((try env.redis.call(["ZRANGE", "\(base):dueb:2", "0", "0"]).array ?? []).first?.string)
            try env.redis.call(["ZADD", "\(base):due", "1", twice])
            let tick = try client.call("tick", ["count": "1"], timeout: 30)
            #expect(tick.ok && tick.object["stepped"] as? Int == 300, "\(tick.fields)")
            #expect(try Self.steps(env).count == 300 && Set(try Self.steps(env).values) == [1])
            let repaired = try Self.problems(env)
            #expect(repaired.isEmpty, "\(repaired)")
            _ = try client.advanceClock(20)
            #expect(try client.call("listRuns", ["status": "completed"]).total == 300)
        }
    }
}
