import DEECore
import DEEStore
import DEETestSupport
import Foundation
import Redis
import Testing

/// The apply script's write list (ChangeSet.arguments) against a real Redis, below the engine.
@Suite("apply script", .offPool)
struct ApplyScriptTests {
    struct Fixture {
        let prefix: String
        let redis: RedisConnection
        let store: PartitionStore
        let plan: Plan

        init() throws {
            prefix = TestRedis.uniquePrefix()
            redis = RedisConnection(configuration: try RedisConfiguration(url: TestRedis.url()))
            store = PartitionStore(partition: 0, keys: Keys(prefix: prefix), streamMaxLen: 10_000)
            plan = try Plan.parse(
                try #require(JSONValue.parse(
                    #"{"id":"p","steps":[{"id":"a","type":"action","action":"send","params":{}},{"id":"w","type":"wait","ticks":5},{"id":"e","type":"end"}]}"#)))
            try redis.call(["SET", store.keys.epoch, "1"])
        }

        func created(_ i: Int, entry: EntryID) -> RunChange {
            let context = ChangeContext(commandId: entry, requestId: entry.description, actor: nil, clock: 0)
            return Transitions.start(
                runId: RunID.make(entry: entry, index: i, partition: 0), plan: plan, version: 1,
                contact: ["id": .string("c\(i)")], contactId: "c\(i)", variables: [:], startTick: nil,
                context: context, signer: AuditSigner())
        }

        func members(_ suffix: String) throws -> [String] {
            (try redis.call(["ZRANGE", "\(store.keys.base):\(suffix)", "0", "-1"]).array ?? []).compactMap(\.string)
        }

        func cleanUp() {
            _ = try? redis.unlinkKeys(matching: "\(prefix):*")
            redis.close()
        }
    }

    /// A run created and stepped in the same set is indexed once, where it ends.
    @Test func aRunChangedTwiceInOneSetIsIndexedWhereItEnds() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let entry = EntryID(ms: 1_800_000_000_000, seq: 0)
        let first = f.created(0, entry: entry)
        let context = ChangeContext(commandId: entry, requestId: "r", actor: nil, clock: 1)
        let tick1 = try #require(Stepper.tick(run: first.run, plan: f.plan, context: context, signer: AuditSigner()))
        let context2 = ChangeContext(commandId: entry, requestId: "r", actor: nil, clock: 2)
        let tick2 = try #require(Stepper.tick(run: tick1.run, plan: f.plan, context: context2, signer: AuditSigner()))
        #expect(tick2.run.status == .waiting)
        var set = ChangeSet(entry: entry)
        set.changes = [first, tick1, tick2]
        #expect(try f.store.apply(set, epoch: "1", f.redis) == .ok)
        let id = first.run.id
        let base = f.store.keys.base
        #expect(try Indexes.members(f.redis, base: base, status: "waiting") == [id])
        #expect(try Indexes.members(f.redis, base: base, status: "active") == [])
        #expect(try Indexes.members(f.redis, base: base, status: "waiting", plan: "p") == [id])
        // Layout 4: run 0 of the partition opens bucket 0, counted in the status and plan+status count hashes.
        #expect(try f.redis.call(["ZRANGE", "\(base):bmap", "0", "-1"]).array?.first?.string == "\(id) 0")
        #expect(try f.redis.call(["HGETALL", "\(base):ixs:waiting"]).pairs == ["0": "1", "s0": "1", "all": "1"])
        #expect(try f.redis.call(["HGETALL", "\(base):ixp:p:waiting"]).pairs == ["0": "1", "s0": "1", "all": "1"])
        #expect(try f.redis.call(["EXISTS", "\(base):ixs:active"]).int == 0)
        #expect(try f.redis.call(["HGET", f.store.keys.contactRecord("c0"), "c0"]).string == "\(id)/p")
        // Layout 5: the due schedule in the run's bucket, the directory naming the bucket's earliest due tick.
        #expect(try f.redis.call(["ZSCORE", f.store.keys.dueBucket(0), id]).string == String(tick2.run.due ?? -1))
        #expect(try f.redis.call(["EXISTS", f.store.keys.due]).int == 0)
        #expect(try DueSchedule.problems(f.redis, base: base).isEmpty)
        #expect(try f.redis.call(["EXISTS", f.store.keys.enroll, f.store.keys.base + ":idx:contact:c0"]).int == 0)
        let loaded = try #require(try f.store.loadRun(id, f.redis))
        #expect(loaded == tick2.run)
        #expect(try f.redis.call(["LLEN", f.store.keys.audit(id)]).int == 3)
        #expect(try f.redis.call(["GET", f.store.keys.applied]).string == entry.description)
    }

    /// Grouped index writes longer than Lua's unpack limit are split, and every run lands.
    @Test func aLargeSetIsWrittenWhole() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let entry = EntryID(ms: 1_800_000_000_000, seq: 1)
        var set = ChangeSet(entry: entry)
        set.changes = (0..<2_500).map { f.created($0, entry: entry) }
        #expect(try f.store.apply(set, epoch: "1", f.redis) == .ok)
        #expect(try Indexes.members(f.redis, base: f.store.keys.base, status: "active").count == 2_500)
        #expect(try f.redis.call(["HGET", "\(f.store.keys.base):ixs:active", "all"]).int == 2_500)
        // 2,500 runs: buckets 0…19, the last one of 68.
        #expect(try f.redis.call(["ZCARD", "\(f.store.keys.base):ixs:active:19"]).int == 2_500 - 19 * 128)
        #expect(try f.redis.call(["OBJECT", "ENCODING", "\(f.store.keys.base):ixs:active:0"]).string == "listpack")
        #expect(try DueSchedule.all(f.redis, base: f.store.keys.base).count == 2_500)
        #expect(try f.redis.call(["ZCARD", f.store.keys.dueDirectory]).int == 20)
        #expect(try DueSchedule.problems(f.redis, base: f.store.keys.base).isEmpty)
        #expect(try enrollmentCount(f.redis, base: f.store.keys.base) == 2_500)
        #expect(try f.redis.call(["XLEN", f.store.keys.events]).int == 2_500)
    }

    /// A malformed write list is refused before its first write, and a stale epoch or entry writes nothing.
    @Test func malformedFencedOrAppliedWritesNothing() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let entry = EntryID(ms: 1_800_000_000_000, seq: 2)
        var set = ChangeSet(entry: entry)
        set.changes = [f.created(0, entry: entry)]
        let good = set.arguments(epoch: "1", maxlen: 100)
        let script = try #require(f.store.applyCommands([set], epoch: "1").first?[1])
        for bad in [good + ["FLUSHALL", "x", "1", "y"], good + ["HSET", "x", "5", "a"], good + ["HSET", "x", "0"]] {
            #expect {
                try f.redis.call(["EVAL", script, "1", f.store.keys.epoch] + bad)
            } throws: { "\($0)".contains("BADWRITE") }
        }
        #expect(try f.redis.call(["EXISTS", f.store.keys.run(set.changes[0].run.id), f.store.keys.applied]).int == 0)
        #expect(try f.store.apply(set, epoch: "2", f.redis) == .fenced)
        #expect(try f.redis.call(["EXISTS", f.store.keys.run(set.changes[0].run.id)]).int == 0)
        #expect(try f.store.apply(set, epoch: "1", f.redis) == .ok)
        #expect(try f.store.apply(set, epoch: "1", f.redis) == .alreadyApplied)
        #expect(try f.redis.call(["XLEN", f.store.keys.events]).int == 1)
    }

    /// Consecutive commands in one script: all applied (watermark at the last, every stored result written) or,
    /// when the first was applied already, none.
    @Test func aGroupIsAppliedWholeOrNotAtAll() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let entries = (0..<3).map { EntryID(ms: 1_800_000_000_100 + UInt64($0), seq: 0) }
        let sets = entries.enumerated().map { i, entry in
            var set = ChangeSet(entry: entry)
            set.changes = [f.created(i, entry: entry)]
            set.dedupe = ("req:@\(entry)", "stored \(i)", 600)
            return set
        }
        // The first entry alone, then the group of all three: refused whole.
        #expect(try f.store.apply(sets[0], epoch: "1", f.redis) == .ok)
        #expect(try f.store.apply(ChangeSet(group: sets), epoch: "1", f.redis) == .alreadyApplied)
        #expect(try Indexes.members(f.redis, base: f.store.keys.base, status: "active").count == 1)
        #expect(try f.redis.call(["GET", f.store.keys.applied]).string == entries[0].description)
        // The other two as a group: both written, the watermark at the last.
        #expect(try f.store.apply(ChangeSet(group: Array(sets[1...])), epoch: "1", f.redis) == .ok)
        #expect(try Indexes.members(f.redis, base: f.store.keys.base, status: "active").count == 3)
        #expect(try f.redis.call(["GET", f.store.keys.applied]).string == entries[2].description)
        for (i, entry) in entries.enumerated() {
            #expect(try f.redis.call(["GET", f.store.keys.request("@\(entry)")]).string == "stored \(i)")
        }
    }

    /// Two chunks of a group in flight (CommandBatching): the second follows the first, so when the first is refused
    /// the second writes nothing (GAP), even though its own first entry is past the watermark; when the watermark is
    /// the first chunk's last entry, it applies.
    @Test func aChunkThatFollowsARefusedOneWritesNothing() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let entries = (0..<4).map { EntryID(ms: 1_800_000_000_300 + UInt64($0), seq: 0) }
        let sets = entries.enumerated().map { i, entry in
            var set = ChangeSet(entry: entry)
            set.changes = [f.created(i, entry: entry)]
            return set
        }
        let first = ChangeSet(group: Array(sets[0..<2]))
        var second = ChangeSet(group: Array(sets[2..<4]))
        second.follows = entries[1]
        // Entry 0 applied already: the first chunk is refused whole, and the second, sent in the same pipeline, too.
        #expect(try f.store.apply(sets[0], epoch: "1", f.redis) == .ok)
        #expect(try f.store.applyMany([first, second], epoch: "1", f.redis) == [.alreadyApplied, .gap])
        #expect(try Indexes.members(f.redis, base: f.store.keys.base, status: "active").count == 1)
        #expect(try f.redis.call(["GET", f.store.keys.applied]).string == entries[0].description)
        // Entry 1 on its own, then the second chunk: the watermark is what it follows.
        #expect(try f.store.applyMany([sets[1], second], epoch: "1", f.redis) == [.ok, .ok])
        #expect(try Indexes.members(f.redis, base: f.store.keys.base, status: "active").count == 4)
        #expect(try f.redis.call(["GET", f.store.keys.applied]).string == entries[3].description)
        // Sent again, it is refused as applied (that check comes first), not as a gap.
        #expect(try f.store.apply(second, epoch: "1", f.redis) == .alreadyApplied)
    }

    /// A batch is applied only right after the last one: one sent while its predecessor failed writes nothing.
    @Test func batchesApplyInOrderOnly() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        func batch(_ n: Int) -> ChangeSet {
            var set = ChangeSet(entry: nil)
            set.batch = ("progress:x", n, "{}")
            set.clock = n
            return set
        }
        #expect(throws: (any Error).self) { try f.store.apply(batch(2), epoch: "1", f.redis) }
        #expect(try f.redis.call(["EXISTS", f.store.keys.progress("x"), f.store.keys.clock]).int == 0)
        #expect(try f.store.apply(batch(1), epoch: "1", f.redis) == .ok)
        #expect(try f.store.apply(batch(1), epoch: "1", f.redis) == .alreadyApplied)
        #expect(throws: (any Error).self) { try f.store.apply(batch(3), epoch: "1", f.redis) }
        #expect(try f.store.apply(batch(2), epoch: "1", f.redis) == .ok)
        #expect(try f.redis.call(["GET", f.store.keys.clock]).string == "2")
    }

    /// A result already in the results stream (a script that failed after writing it) is not written again,
    /// and the rest of the change still is.
    @Test func aResultAlreadyInTheStreamIsSkipped() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let entry = EntryID(ms: 1_800_000_000_200, seq: 0)
        try f.redis.call(["XADD", f.store.keys.results, entry.description, "r", "earlier"])
        var set = ChangeSet(entry: entry)
        set.changes = [f.created(0, entry: entry)]
        set.results = [(entry, "now")]
        #expect(try f.store.apply(set, epoch: "1", f.redis) == .ok)
        #expect(try f.redis.call(["XLEN", f.store.keys.results]).int == 1)
        #expect(try f.redis.call(["EXISTS", f.store.keys.run(set.changes[0].run.id)]).int == 1)
    }

    /// Every plan copy of a group is written, not only the first command's.
    @Test func aGroupWritesEveryPlanCopy() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let sets = (0..<3).map { i in
            var set = ChangeSet(entry: EntryID(ms: 1_800_000_000_300 + UInt64(i), seq: 0))
            set.planCopy = ("plan:p\(i):1", "{\"id\":\"p\(i)\"}")
            return set
        }
        #expect(try f.store.apply(ChangeSet(group: sets), epoch: "1", f.redis) == .ok)
        for i in 0..<3 {
            #expect(try f.redis.call(["GET", f.store.keys.planCopy("p\(i)", 1)]).string == "{\"id\":\"p\(i)\"}")
        }
    }
}
