import DEEClient
import DEECore
import DEEService
import DEEStore
import DEETestSupport
import Foundation
import Logging
import Redis
import Testing

/// `--run-retention`: a finished run older than the retention is removed with its index entries, due entry, stale
/// enrollment and audit list, in bounded batches, only by the partition's owner, and hostile state is skipped.
///
/// Old runs come from commands sent under explicit entry ids in 2020 (`1600000000000-1`): a run's startedAt and
/// completedAt are its entries' ms, so they are years older than any retention, with no clock to fake.
@Suite(.serialized) struct RunRetentionTests {
    static let day = 86_400_000
    static let m: Int64 = 1_600_000_000_000

    /// A failing plan: its action needs `{{contact.phone}}`, which no contact here has.
    static let failingPlan = js([
        "id": "failing", "name": "failing",
        "steps": [
            ["id": "s", "type": "action", "action": "send_email", "params": ["to": "{{contact.phone}}"]],
            ["id": "e", "type": "end", "outcome": "x"],
        ],
    ])

    @Test func oldFinishedRunsAreRemovedWithEverythingTheyHeldAndNothingElse() async throws {
        try await TestEngine.with { client, env in
            let m = Self.m
            try expectOK(client.at("\(m)-1", "registerPlan", ["plan": simplePlan("old")]))
            try expectOK(client.at("\(m)-2", "registerPlan", ["plan": examplePlan]))
            try expectOK(client.at("\(m)-3", "registerPlan", ["plan": Self.failingPlan]))
            let a = try client.at("\(m)-4", "execute", ["planId": "old", "contact": contact("a")]).runId
            let b = try client.at("\(m)-5", "execute", ["planId": "old", "contact": contact("b")]).runId
            let c = try client.at("\(m)-6", "execute", ["planId": "welcome", "contact": contact("c")]).runId
            let d = try client.at("\(m)-7", "execute", ["planId": "failing", "contact": contact("d")]).runId
            // What a run holds while open.
            #expect(try env.exists("{0}:audit:\(a)"))
            #expect(try env.contactRecord("a") == "\(a)/old")
            #expect(try env.enrolled("old", "a") == a)
            #expect(try DueSchedule.score(env.redis, base: env.key("{0}"), a) != nil)

            try expectOK(client.at("\(m + 1)-1", "cancelRun", ["runId": b, "reason": "old"]))
            try expectOK(client.at("\(m + 2)-1", "tick", [:]))
            try expectOK(client.at("\(m + 2)-2", "tick", [:]))
            #expect(client.getRunStatus(a) == "completed")
            #expect(client.getRunStatus(d) == "failed")
            #expect(client.getRunStatus(c) == "waiting")
            // An operator left enrollment state behind: one entry naming a finished run, one naming another run.
            try env.redis.call(["HSET", env.key("{0}:enroll"), "old:a", a, "old:zz", "someone-else"])

            // Young runs, today: one open, one finished.
            let e = try client.run("old", "e")
            let f = try client.run("old", "f")
            try expectOK(client.call("cancelRun", ["runId": f, "reason": "young"]))
            #expect(try env.list("{0}:finished") == [b, d, a, f])

            // And an entry of layout 5's due schedule left behind for a finished run (a terminal run is never due).
            let bucketOfA = try #require(try DueSchedule.bucket(env.redis, base: env.key("{0}"), a))
            try env.redis.call(["ZADD", env.key("{0}:dueb:\(bucketOfA)"), "99", a])
            try env.redis.call(["ZADD", env.key("{0}:duedir"), "99", DueSchedule.member(bucketOfA)])
            let retention = try Self.retention(env, ms: 30 * Self.day)
            var memory = RunRetentionMemory()
            let epoch = try env.epoch()
            let first = try retention.round(env.redis, &memory, epochs: { _ in epoch })
            #expect(first[0]?.removed == 3, "\(first)")
            #expect(first[0]?.backfilled == true)
            #expect(first[0]?.skipped == 0)

            let gone = [(a, "completed", "old", "a"), (b, "cancelled", "old", "b"), (d, "failed", "failing", "d")]
            for (id, status, plan, who) in gone {
                #expect(try !env.exists("{0}:run:\(id)"), "\(id)")
                #expect(try !env.exists("{0}:audit:\(id)"), "\(id)")
                #expect(try Indexes.score(env.redis, base: env.key("{0}"), status: status, id) == nil)
                #expect(try Indexes.score(env.redis, base: env.key("{0}"), status: status, plan: plan, id) == nil)
                #expect(try env.contactRecord(who) == nil, "\(who)")
                #expect(try DueSchedule.score(env.redis, base: env.key("{0}"), id) == nil)
                #expect(client.getRunStatus(id) == nil)
            }
            #expect(try Indexes.countProblems(env.redis, base: env.key("{0}")).isEmpty, "layout 4's counts follow")
            #expect(try DueSchedule.problems(env.redis, base: env.key("{0}")).isEmpty, "layout 5's directory follows")
            #expect(try env.redis.call(["HGET", env.key("{0}:enroll"), "old:a"]).isNull)
            #expect(try env.redis.call(["HGET", env.key("{0}:enroll"), "old:zz"]).string == "someone-else")
            // The open old run, the open young run and the young finished run are untouched.
            #expect(client.getRunStatus(c) == "waiting")
            #expect(client.getRunStatus(e) == "active")
            #expect(client.getRunStatus(f) == "cancelled")
            #expect(try env.exists("{0}:audit:\(c)") && env.exists("{0}:audit:\(f)"))
            #expect(try env.list("{0}:finished") == [f])

            // listRuns totals and stats are exact.
            #expect(try client.call("listRuns", [:]).total == 3)
            #expect(try client.call("listRuns", ["status": "cancelled"]).total == 1)
            #expect(try client.call("listRuns", ["status": "completed"]).total == 0)
            #expect(try client.call("listRuns", ["status": "failed"]).total == 0)
            #expect(try client.call("listRuns", ["planId": "old"]).total == 2)
            #expect(try client.call("listRuns", ["contactId": "a"]).total == 0)
            let stats = try client.stats()
            let counts = stats.object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts == [
                "pending": 0, "active": 1, "waiting": 1, "paused": 0, "completed": 0, "failed": 0, "cancelled": 1,
            ])
            let block = stats.object["retention"] as? [String: Any] ?? [:]
            #expect(block["removedTotal"] as? Int == 3, "\(stats.fields)")
            // This engine runs without --run-retention.
            #expect(block["runs"] is NSNull, "\(stats.fields)")

            // Nothing more is due by Redis's clock.
            #expect(try retention.round(env.redis, &memory, epochs: { _ in epoch })[0]?.removed == 0)

            // The old open run finishes now: it is removed one retention later, not before.
            try expectOK(client.call("cancelRun", ["runId": c, "reason": "now"]))
            #expect(try retention.round(env.redis, &memory, epochs: { _ in epoch })[0]?.removed == 0)
            #expect(client.getRunStatus(c) == "cancelled")
            let later = try env.redisNow() + Int64(30 * Self.day) + 60_000
            let last = try retention.round(env.redis, &memory, now: later, epochs: { _ in epoch })
            #expect(last[0]?.removed == 2, "\(last)")
            #expect(client.getRunStatus(c) == nil && client.getRunStatus(f) == nil)
            // An open run is never removed, however late.
            #expect(client.getRunStatus(e) == "active")
            #expect(try client.call("listRuns", [:]).total == 1)
            #expect(try env.redis.call(["HGET", env.key("{0}:retention"), "removed"]).int == 5)
            #expect(try env.list("{0}:finished").isEmpty)
        }
    }

    /// More old runs than one batch: batch after batch removes them all, each at most the batch size; runs that
    /// finished before the finished list existed are found by the backfill; a killed engine's successor, a new
    /// Engine on the same prefix, continues from what Redis holds, and the counter is exact.
    @Test(.timeLimit(.minutes(3))) func boundedBatchesResumeAcrossARestart() async throws {
        let url = try TestRedis.url()
        let prefix = TestRedis.uniquePrefix()
        let m = Self.m
        func start(_ name: String, retention: Bool) throws -> Task<Void, any Error> {
            let engine = try TestEngine.engine(prefix, consumer: name, url: url) { c in
                c.leaseMilliseconds = 2_000
                if retention {
                    c.runRetentionMilliseconds = 30 * Self.day
                    c.runRetentionBatch = 50
                    c.runRetentionBatchesPerRound = 1
                    c.runRetentionEverySeconds = 0.05
                }
            }
            return Task { try await engine.run() }
        }
        let redis = RedisConnection(configuration: try RedisConfiguration(url: url))
        defer { _ = try? redis.unlinkKeys(matching: "\(prefix):*") }
        let env = TestEngine.Env(prefix: prefix, url: url, redis: redis)
        let client = try env.client()

        // The data, written by an engine without retention.
        let setup = try start("ret-setup", retention: false)
        let open = try await offPool {
            try expectOK(client.at("\(m)-1", "registerPlan", ["plan": simplePlan("bulk")]))
            let contacts = { (p: String, n: Int) in
                "[" + (0..<n).map { contact("\(p)\($0)") }.joined(separator: ",") + "]"
            }
            try expectOK(client.at("\(m)-2", "bulkExecute", ["planId": "bulk", "contacts": contacts("p", 300)]))
            try expectOK(client.at("\(m + 1)-1", "bulkCancel", ["filters": #"{"planId":"bulk"}"#, "reason": "x"]))
            // As if these 300 had finished under a version without the finished list.
            try redis.call(["DEL", env.key("{0}:finished")])
            let h = try client.at("\(m + 2)-1", "execute", ["planId": "bulk", "contact": contact("h")]).runId
            try expectOK(client.at("\(m + 3)-1", "cancelRun", ["runId": h, "reason": "x"]))
            try expectOK(client.at("\(m + 4)-1", "bulkExecute", ["planId": "bulk", "contacts": contacts("q", 900)]))
            try expectOK(client.at("\(m + 5)-1", "bulkCancel", ["filters": #"{"planId":"bulk"}"#, "reason": "x"]))
            #expect(try env.redis.call(["LLEN", env.key("{0}:finished")]).int == 901)
            #expect(try client.call("listRuns", ["status": "cancelled"]).total == 1201)
            return try client.run("bulk", "still-open")
        }
        setup.cancel()
        _ = try? await setup.value

        // The first engine with retention removes some, 50 runs per script, then dies.
        let first = try start("ret-a", retention: true)
        let removedSome = try await offPool {
            try eventually(timeout: 60) { try env.removed() >= 100 }
        }
        first.cancel()
        _ = try? await first.value
        let atKill = try await offPool { try env.removed() }
        #expect(removedSome && atKill < 1201, "removed \(atKill) before the kill")

        // Its successor continues: every old run goes, exactly once, and the open one stays.
        let second = try start("ret-b", retention: true)
        let done = try await offPool {
            try eventually(timeout: 90) { try env.removed() >= 1201 }
        }
        try await offPool {
            let removed = try env.removed()
            #expect(done, "removed \(removed)")
            // A few more rounds change nothing.
            Thread.sleep(forTimeInterval: 0.3)
            #expect(try env.removed() == 1201)
            #expect(try client.call("listRuns", [:]).total == 1)
            #expect(try client.call("listRuns", ["status": "cancelled"]).total == 0)
            #expect(client.getRunStatus(open) == "active")
            #expect(try env.list("{0}:finished").isEmpty)
            #expect(try env.redis.call(["ZCARD", env.key("{0}:finished:backfill")]).int == 0)
            #expect(try env.redis.call(["KEYS", env.key("{0}:audit:*")]).array?.count == 1)
            #expect(try env.redis.call(["KEYS", env.key("{0}:cx:*")]).array?.count == 1)
            let stats = try client.stats()
            let block = stats.object["retention"] as? [String: Any] ?? [:]
            #expect(block["runs"] as? String == "30d", "\(stats.fields)")
            #expect(block["removedTotal"] as? Int == 1201, "\(stats.fields)")
        }
        second.cancel()
        _ = try? await second.value
    }

    /// Batches are bounded: with 121 due runs and batches of 50, one batch per round removes 49 (plus the list
    /// head, already removed through the backfill set), then 50, then 22; the backfill is walked 50 index entries
    /// at a time first.
    @Test func eachBatchRemovesAtMostItsBudget() async throws {
        try await TestEngine.with { client, env in
            let m = Self.m
            try expectOK(client.at("\(m)-1", "registerPlan", ["plan": simplePlan("b")]))
            let head = try client.at("\(m)-2", "execute", ["planId": "b", "contact": contact("head")]).runId
            try expectOK(client.at("\(m + 1)-1", "cancelRun", ["runId": head, "reason": "x"]))
            let contacts = "[" + (0..<120).map { contact("b\($0)") }.joined(separator: ",") + "]"
            try expectOK(client.at("\(m + 2)-1", "bulkExecute", ["planId": "b", "contacts": contacts]))
            try expectOK(client.at("\(m + 3)-1", "bulkCancel", ["filters": #"{"planId":"b"}"#, "reason": "x"]))
            #expect(try env.list("{0}:finished").count == 121)
            let retention = try Self.retention(env, ms: Self.day, batch: 50, perRound: 1)
            var memory = RunRetentionMemory()
            let epoch = try env.epoch()
            var rounds: [RunRetention.PartitionRound] = []
            for _ in 0..<7 {
                rounds.append(try #require(try retention.round(env.redis, &memory, epochs: { _ in epoch })[0]))
            }
            // Backfill: 121 index entries, 50 per step; the list head finished at the bound, so it is taken too.
            #expect(rounds.prefix(3).map(\.removed) == [0, 0, 0])
            #expect(rounds[2].backfilled && !rounds[1].backfilled)
            #expect(rounds.dropFirst(3).map(\.removed) == [49, 50, 22, 0], "\(rounds)")
            #expect(rounds.allSatisfy { $0.batches == 1 && $0.skipped == 0 })
            #expect(try client.call("listRuns", [:]).total == 0)
            #expect(try env.list("{0}:finished").isEmpty)
            #expect(try env.removed() == 121)
        }
    }

    /// Only the partition's owner removes: a script with a stale epoch is refused and changes nothing.
    @Test func aStaleEpochCannotRemove() async throws {
        try await TestEngine.with { client, env in
            let m = Self.m
            try expectOK(client.at("\(m)-1", "registerPlan", ["plan": simplePlan("f")]))
            let r = try client.at("\(m)-2", "execute", ["planId": "f", "contact": contact("x")]).runId
            try expectOK(client.at("\(m + 1)-1", "cancelRun", ["runId": r, "reason": "x"]))
            let epoch = try env.epoch()
            let stale = String((Int(epoch) ?? 1) - 1)
            let store = RunRetentionStore(keys: Keys(prefix: env.prefix).partition(0))
            #expect(throws: RetentionRefusal.fenced) { try store.backfill(epoch: stale, env.redis) }
            #expect(try env.redis.call(["EXISTS", env.key("{0}:retention")]).int == 0)
            // Backfilled by the owner's epoch; removal with the stale one is still refused.
            #expect(try store.backfill(epoch: epoch, env.redis).done)
            #expect(throws: RetentionRefusal.fenced) {
                try store.remove(epoch: stale, retentionMilliseconds: 1_000, env.redis)
            }
            #expect(throws: RetentionRefusal.fenced) {
                try store.remove(epoch: "not-an-epoch", retentionMilliseconds: 1_000, env.redis)
            }
            #expect(client.getRunStatus(r) == "cancelled")
            #expect(try env.list("{0}:finished") == [r])
            // The service with a stale epoch: fenced, nothing removed.
            let retention = try Self.retention(env, ms: 1_000)
            var memory = RunRetentionMemory()
            let round = try retention.round(env.redis, &memory, epochs: { _ in stale })
            #expect(round[0]?.fenced == true && round[0]?.removed == 0)
            // Without an epoch (not the owner), the partition is not even tried.
            #expect(try retention.round(env.redis, &memory, epochs: { _ in nil }).isEmpty)
            #expect(client.getRunStatus(r) == "cancelled")
            // The owner's epoch removes it.
            #expect(try store.remove(epoch: epoch, retentionMilliseconds: 1_000, env.redis).removed == 1)
            #expect(client.getRunStatus(r) == nil)
        }
    }

    /// Hostile state: a corrupted completedAt, ids whose hash is gone (in an index and in the list), run and index
    /// keys of another type, a run edited back to open. Each is skipped and logged; the good runs around them are
    /// removed, and retention goes on without reporting them again. A partition-wide key of another type stops
    /// removal there (logged, nothing written) until it is fixed.
    @Test func hostileStateIsSkippedLoggedAndRetentionGoesOn() async throws {
        try await TestEngine.with { client, env in
            let m = Self.m
            try expectOK(client.at("\(m)-1", "registerPlan", ["plan": simplePlan("h")]))
            var ids: [String] = []
            for i in 0..<8 {
                let fields = ["planId": "h", "contact": contact("h\(i)")]
                ids.append(try client.at("\(m)-\(i + 2)", "execute", fields).runId)
            }
            for (i, id) in ids.enumerated() {
                try expectOK(client.at("\(m + 1 + Int64(i))-1", "cancelRun", ["runId": id, "reason": "x"]))
            }
            let k = { (s: String) in env.key("{0}:\(s)") }
            // 0 and 1 are fine (1 in layout 1's long field names, as before `dee migrate`). 2: completedAt not a
            // number; 3: too large to be a time; 4: run key of another type; 5: its contact record of another type;
            // 6: edited back to an open status; 7: negative.
            try env.toLayout1("{0}:run:\(ids[1])")
            try env.redis.call(["HSET", k("run:\(ids[2])"), "ca", "garbage"])
            try env.redis.call(["HSET", k("run:\(ids[3])"), "ca", "99999999999999999999999"])
            try env.redis.call(["DEL", k("run:\(ids[4])")])
            try env.redis.call(["SET", k("run:\(ids[4])"), "not a hash"])
            let cx = ContactRecords.suffix("h5")
            try env.redis.call(["DEL", k(cx)])
            try env.redis.call(["SET", k(cx), "not a hash"])
            try env.redis.call(["HSET", k("run:\(ids[6])"), "s", "active"])
            try env.redis.call(["HSET", k("run:\(ids[7])"), "ca", "-5"])
            // Ids whose hash is gone: one in a terminal index (the backfill walks it), one in the list.
            let ghost = "1500000000000-000000-00000-0"
            try env.redis.call(["ZADD", k("idx:status:cancelled"), "1", ghost])
            try env.redis.call(["RPUSH", k("finished"), "1500000000001-000000-00000-0"])

            let log = CapturedLog()
            let logger = Logger(label: "run-retention-test") { _ in log }
            let retention = try Self.retention(env, ms: Self.day, logger: logger)
            var memory = RunRetentionMemory()
            let epoch = try env.epoch()
            let first = try retention.round(env.redis, &memory, epochs: { _ in epoch })
            #expect(first[0]?.removed == 2, "\(first)")
            #expect(first[0]?.skipped == 6, "\(first)")
            #expect(client.getRunStatus(ids[0]) == nil && client.getRunStatus(ids[1]) == nil)
            for i in 2..<8 where i != 4 { #expect(try env.exists("{0}:run:\(ids[i])"), "\(i)") }
            #expect(try env.redis.call(["TYPE", k("run:\(ids[4])")]).string == "string")
            #expect(try env.redis.call(["TYPE", k(cx)]).string == "string")
            // Nothing of the skipped run 5 was touched.
            #expect(try Indexes.score(env.redis, base: env.key("{0}"), status: "cancelled", ids[5]) != nil)
            #expect(try env.exists("{0}:audit:\(ids[5])"))
            // The list is drained past them.
            #expect(try env.list("{0}:finished").isEmpty)
            let warnings = log.lines.filter { $0.level == .warning }
            let text = warnings.map(\.message).joined(separator: "\n")
            let removal = try #require(warnings.last?.message, "\(text)")
            #expect(removal.contains("skipped 6 run(s)"), "\(removal)")
            #expect(removal.contains("completedAt not a number 3"), "\(removal)")
            #expect(removal.contains("run key of another type 1"), "\(removal)")
            #expect(removal.contains("\(cx) of another type 1"), "\(removal)")
            #expect(removal.contains("not terminal 1"), "\(removal)")
            // The backfill walk named the index entry whose hash is gone.
            let named = warnings.contains {
                $0.message.contains("run hash gone 1") && $0.metadata["run.ids"]?.contains(ghost) == true
            }
            #expect(named, "\(text)")
            #expect(try env.redis.call(["HGET", k("retention"), "skipped"]).int == 6)
            let count = log.lines.count
            #expect(try retention.round(env.redis, &memory, epochs: { _ in epoch })[0]?.removed == 0)
            #expect(log.lines.count == count, "nothing is reported twice: \(log.lines.map(\.message))")

            // A run finishing now, with a partition-wide key of another type: refused and logged, nothing removed.
            let late = try client.run("h", "late")
            try expectOK(client.call("cancelRun", ["runId": late, "reason": "x"]))
            try env.redis.call(["SET", k("finished:backfill"), "not a zset"])
            let future = try env.redisNow() + Int64(Self.day) + 60_000
            let refused = try retention.round(env.redis, &memory, now: future, epochs: { _ in epoch })
            #expect(refused[0]?.removed == 0)
            #expect(log.lines.contains { $0.level == .error && $0.message.contains("finished:backfill") })
            #expect(client.getRunStatus(late) == "cancelled")
            // Fixed: retention goes on.
            try env.redis.call(["DEL", k("finished:backfill")])
            #expect(try retention.round(env.redis, &memory, now: future, epochs: { _ in epoch })[0]?.removed == 1)
            #expect(client.getRunStatus(late) == nil)
        }
    }

    /// Without `--run-retention` nothing is removed, however old: the engine runs no retention loop, and the
    /// service configured without one does nothing.
    @Test func withoutTheFlagNothingIsEverRemoved() async throws {
        try await TestEngine.with(configure: { $0.runRetentionEverySeconds = 0.05 }) { client, env in
            let m = Self.m
            try expectOK(client.at("\(m)-1", "registerPlan", ["plan": simplePlan("keep")]))
            let r = try client.at("\(m)-2", "execute", ["planId": "keep", "contact": contact("k")]).runId
            try expectOK(client.at("\(m + 1)-1", "cancelRun", ["runId": r, "reason": "x"]))
            var config = TestEngine.configuration(prefix: env.prefix, partitions: 1)
            config.runRetentionEverySeconds = 0.05
            let engine = Engine(config: config, redis: try RedisConfiguration(url: env.url), logger: Logger(label: "t"))
            #expect(!engine.services().contains { "\($0)".contains("RunRetention") })
            var on = config
            on.runRetentionMilliseconds = 1_000
            let withFlag = Engine(config: on, redis: try RedisConfiguration(url: env.url), logger: Logger(label: "t"))
            #expect(withFlag.services().contains { "\($0)".contains("RunRetention") })
            let retention = RunRetention(
                config: config, redis: try RedisConfiguration(url: env.url), logger: Logger(label: "t"),
                epochs: { _ in nil })
            var memory = RunRetentionMemory()
            let epoch = try env.epoch()
            #expect(try retention.round(env.redis, &memory, now: Int64.max / 2, epochs: { _ in epoch }).isEmpty)
            // Later commands go through; the old run is still there with everything it holds.
            for i in 0..<5 { _ = try client.run("keep", "later\(i)") }
            #expect(client.getRunStatus(r) == "cancelled")
            #expect(try env.exists("{0}:audit:\(r)"))
            #expect(try env.contactRecord("k") != nil)
            #expect(try env.redis.call(["EXISTS", env.key("{0}:retention")]).int == 0)
            let stats = try client.stats()
            let block = stats.object["retention"] as? [String: Any] ?? [:]
            #expect(block["runs"] is NSNull && block["removedTotal"] as? Int == 0, "\(stats.fields)")
        }
    }

    static func retention(
        _ env: TestEngine.Env, ms: Int, batch: Int = 500, perRound: Int = 20,
        logger: Logger = Logger(label: "run-retention-test")
    ) throws -> RunRetention {
        var config = TestEngine.configuration(prefix: env.prefix, partitions: 1)
        config.runRetentionMilliseconds = ms
        config.runRetentionBatch = batch
        config.runRetentionBatchesPerRound = perRound
        return RunRetention(
            config: config, redis: try RedisConfiguration(url: env.url), logger: logger, epochs: { _ in nil })
    }
}

extension DEEClient {
    /// Sends a command under an explicit entry id (old ones make old runs) and waits for its reply.
    func at(_ id: String, _ type: String, _ fields: [String: String]) throws -> DEEReply {
        var args = ["XADD", "\(prefix):commands", id, "type", type, "replyTo", replyStream]
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { args += [k, v] }
        _ = try redis.call(args)
        return try reply(to: id)
    }

    /// A run's status, or nil when there is no such run.
    func getRunStatus(_ id: String) -> String? {
        (try? call("getRun", ["runId": id]))?.object["status"] as? String
    }
}

extension DEEReply {
    /// The run id of an execute's reply.
    var runId: String {
        get throws { try #require(object["id"] as? String, "\(fields)") }
    }
}

@discardableResult
private func expectOK(_ reply: DEEReply, sourceLocation: SourceLocation = #_sourceLocation) -> DEEReply {
    #expect(reply.ok, "\(reply.fields)", sourceLocation: sourceLocation)
    return reply
}

extension TestEngine.Env {
    /// A list's elements.
    func list(_ suffix: String) throws -> [String] {
        try redis.call(["LRANGE", key(suffix), "0", "-1"]).array?.compactMap(\.string) ?? []
    }

    /// The partition's fencing epoch (its owner's).
    func epoch(_ p: Int = 0) throws -> String {
        try #require(try redis.call(["GET", key("{\(p)}:epoch")]).string)
    }

    /// Runs removed by run retention so far (partition 0).
    func removed() throws -> Int { try redis.call(["HGET", key("{0}:retention"), "removed"]).int ?? 0 }

    /// Rewrites a run hash in layout 1's long field names (with its `id`), as a deployment before `dee migrate`
    /// holds it.
    func toLayout1(_ suffix: String) throws {
        let fields = try redis.call(["HGETALL", key(suffix)]).pairs
        let names = Dictionary(uniqueKeysWithValues: Run.storedNames.map { ($0.short, $0.long) })
        let id = String(suffix.split(separator: ":").last ?? "")
        try redis.call(["DEL", key(suffix)])
        try redis.call(["HSET", key(suffix), "id", id] + fields.flatMap { [names[$0.key] ?? $0.key, $0.value] })
        #expect(try redis.call(["HEXISTS", key(suffix), "s"]).int == 0)
    }

    /// Redis's clock, epoch ms.
    func redisNow() throws -> Int64 {
        let t = try redis.call(["TIME"]).array ?? []
        return Int64((t.first?.int ?? 0) * 1000 + (t.count > 1 ? (t[1].int ?? 0) / 1000 : 0))
    }
}
