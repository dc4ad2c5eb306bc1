import DEEClient
import DEECore
import DEEService
import DEEStore
import Foundation
import Redis
import Testing

/// Layout 4's bucketed status and plan+status indexes (docs/MEMORY.md): buckets of 128 runs by creation number,
/// exact counts, listRuns order across bucket boundaries, windows that start and end inside a bucket, deep
/// offsets, the multi-partition seek, and the migration from a layout-2 deployment with the engine running.
@Suite(.serialized) struct BucketedIndexTests {
    typealias Order = ListRunsOrderTests

    /// Creates runs through explicit ingress ids: command i at ms0 + i (a bulk's runs share its millisecond).
    static func at(_ client: DEEClient, _ env: TestEngine.Env, ms0: Int64, _ commands: [[String: String]]) throws
        -> [DEEReply]
    {
        var ids: [String] = []
        for (i, fields) in commands.enumerated() {
            var args = ["XADD", env.key("commands"), "\(ms0 + Int64(i))-0", "replyTo", client.replyStream]
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) { args += [k, v] }
            ids.append(try #require(try env.redis.call(args).string))
        }
        return try ids.map { try client.reply(to: $0, timeout: 60) }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Every filter of `filters` against the order computed from the run hashes: the whole list, the total, and
    /// pages at `offsets` (every offset of the list when nil).
    static func check(
        _ client: DEEClient, _ env: TestEngine.Env, partitions: Int, filters: [([String: String], (Order.Stored) -> Bool)],
        offsets: [Int]? = nil, limits: [Int] = [1, 7, 50], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let stored = try Order.storedRuns(env, partitions: partitions)
        for (filter, keep) in filters {
            let want = Order.expected(stored.filter(keep))
            let whole = try client.call("listRuns", filter.merging(["limit": "1000"]) { a, _ in a })
            #expect(whole.ok, "\(whole.fields)", sourceLocation: sourceLocation)
            #expect(whole.total == want.count, "\(filter)", sourceLocation: sourceLocation)
            #expect(whole.runIds == Array(want.prefix(1000)), "\(filter)", sourceLocation: sourceLocation)
            for offset in offsets ?? Array(stride(from: 0, through: want.count, by: 1)) {
                for limit in limits {
                    let page = try client.call(
                        "listRuns", filter.merging(["limit": String(limit), "offset": String(offset)]) { a, _ in a })
                    #expect(page.total == want.count, "\(filter) offset \(offset)", sourceLocation: sourceLocation)
                    #expect(
                        page.runIds == Array(want.dropFirst(offset).prefix(limit)),
                        "\(filter) offset \(offset) limit \(limit)", sourceLocation: sourceLocation)
                }
            }
        }
        for p in 0..<partitions {
            let problems = try Indexes.countProblems(env.redis, base: env.key("{\(p)}"))
            #expect(problems.isEmpty, "\(problems)", sourceLocation: sourceLocation)
        }
    }

    static func contacts(_ names: [String]) -> String {
        "[" + names.map { #"{"id":"\#($0)","email":"x@y.z"}"# }.joined(separator: ",") + "]"
    }

    /// 300 runs of one bulk fill buckets 0 and 1 and start bucket 2; runs 127/128 and 255/256 (either side of a
    /// boundary) move between statuses, and every count and page stays exact.
    @Test func bucketBoundariesAndStatusMoves() async throws {
        try await TestEngine.with { client, env in
            try client.register(simplePlan("a"))
            try client.register(MigrationTests.benchPlan)
            let names = (0..<300).map { "c\($0)" }
            let r = try client.call("bulkExecute", ["planId": "bench", "contacts": Self.contacts(names), "batchSize": "100"])
            #expect(r.object["created"] as? Int == 300, "\(r.fields)")
            let base = env.key("{0}")
            let ids = try Indexes.members(env.redis, base: base, status: "active")
            #expect(ids.count == 300)
            for (b, n) in [(0, 128), (1, 128), (2, 44)] {
                #expect(try env.redis.call(["ZCARD", "\(base):ixs:active:\(b)"]).int == n)
                #expect(try env.redis.call(["ZCARD", "\(base):ixp:bench:active:\(b)"]).int == n)
                #expect(try env.redis.call(["OBJECT", "ENCODING", "\(base):ixs:active:\(b)"]).string == "listpack")
            }
            let bmap = (try env.redis.call(["ZRANGE", "\(base):bmap", "0", "-1"]).array ?? []).compactMap(\.string)
            #expect(bmap == ["\(ids[0]) 0", "\(ids[128]) 1", "\(ids[256]) 2"])
            #expect(try env.redis.call(["GET", "\(base):nruns"]).int == 300)
            // Either side of two boundaries, and a few more.
            for i in [127, 128, 255, 256, 0, 299] {
                #expect(try client.call("pauseRun", ["runId": ids[i]]).ok)
            }
            #expect(try client.call("cancelRun", ["runId": ids[128], "reason": "x"]).ok)
            #expect(try client.call("cancelRun", ["runId": ids[200], "reason": "x"]).ok)
            _ = try client.advanceClock(1)  // the active ones wait now
            // Runs of another plan, one per command: buckets 2 and 3.
            for i in 0..<100 { try client.run("a", "o\(i)") }
            #expect(try env.redis.call(["HGETALL", "\(base):ixs:paused"]).pairs == ["0": "2", "1": "1", "2": "2", "s0": "5", "all": "5"])
            #expect(try env.redis.call(["HGETALL", "\(base):ixs:cancelled"]).pairs == ["1": "2", "s0": "2", "all": "2"])
            let filters: [([String: String], (Order.Stored) -> Bool)] = [
                ([:], { _ in true }),
                (["status": "waiting"], { $0.status == "waiting" }),
                (["status": #"["paused","cancelled"]"#], { ["paused", "cancelled"].contains($0.status) }),
                (["planId": "bench"], { $0.planId == "bench" }),
                (["planId": "bench", "status": "paused"], { $0.planId == "bench" && $0.status == "paused" }),
                (["planId": "a"], { $0.planId == "a" }),
            ]
            try Self.check(client, env, partitions: 1, filters: filters, offsets: [0, 1, 99, 100, 120, 127, 128, 129, 250, 255, 256, 257, 380, 399, 400])
        }
    }

    /// Runs one millisecond apart (a bulk of 200 in one of them): windows that start and end inside buckets, at
    /// their edges and around the bulk, with and without statuses; every offset of each.
    @Test func windowsThatStartAndEndInsideABucket() async throws {
        try await TestEngine.with { client, env in
            try client.register(simplePlan("w"))
            try client.register(MigrationTests.benchPlan)
            let ms0 = Self.nowMs() + 50
            var commands: [[String: String]] = (0..<150).map { Order.execute("w", "e\($0)") }
            commands.append(["type": "bulkExecute", "planId": "bench", "contacts": Self.contacts((0..<200).map { "k\($0)" })])
            commands += (150..<250).map { Order.execute(($0 % 3 == 0) ? "bench" : "w", "e\($0)") }
            let replies = try Self.at(client, env, ms0: ms0, commands)
            let failed = replies.filter { !$0.ok }.map(\.fields)
            #expect(failed.isEmpty, "\(failed)")
            let ids = try Indexes.allRuns(env.redis, base: env.key("{0}"))
            #expect(ids.count == 450)
            for i in stride(from: 3, to: 450, by: 11) { #expect(try client.call("pauseRun", ["runId": ids[i]]).ok) }
            let bounds: [Int64] = [0, 1, 100, 127, 128, 129, 149, 150, 151, 200, 249, 250, 251, 400]
            var filters: [([String: String], (Order.Stored) -> Bool)] = []
            for (i, after) in bounds.enumerated() {
                let before = bounds[(i * 5 + 3) % bounds.count]
                let a = ms0 + after, b = ms0 + before
                filters.append((["startedAfter": String(a)], { $0.startedAt >= a }))
                filters.append((["startedBefore": String(b)], { $0.startedAt < b }))
                filters.append((["startedAfter": String(a), "startedBefore": String(b)], { $0.startedAt >= a && $0.startedAt < b }))
                filters.append((["startedAfter": String(a), "status": "paused"], { $0.startedAt >= a && $0.status == "paused" }))
                filters.append(
                    (["startedBefore": String(b), "planId": "bench", "status": #"["active","paused"]"#],
                     { $0.startedAt < b && $0.planId == "bench" && ["active", "paused"].contains($0.status) }))
            }
            try Self.check(client, env, partitions: 1, filters: filters, offsets: [0, 1, 5, 60, 127, 128, 129, 140, 200, 300], limits: [3, 50])
        }
    }

    /// Deep pages over two partitions on the seek path (seekOffset 1), runs spread over several buckets each.
    @Test func deepOffsetsAndTheSeekAcrossPartitions() async throws {
        try await TestEngine.with(partitions: 2, configure: { $0.seekOffset = 1 }) { client, env in
            try client.register(simplePlan("s"))
            let ms0 = Self.nowMs() + 50
            var commands: [[String: String]] = (0..<60).map { Order.execute("s", "e\($0)") }
            commands.append(["type": "bulkExecute", "planId": "s", "contacts": Self.contacts((0..<400).map { "k\($0)" })])
            commands += (60..<120).map { Order.execute("s", "e\($0)") }
            let replies = try Self.at(client, env, ms0: ms0, commands)
            let failed = replies.filter { !$0.ok }.map(\.fields)
            #expect(failed.isEmpty, "\(failed)")
            let all = try Indexes.allRuns(env.redis, base: env.key("{0}")) + Indexes.allRuns(env.redis, base: env.key("{1}"))
            #expect(all.count == 520)
            for i in stride(from: 0, to: 520, by: 9) { #expect(try client.call("pauseRun", ["runId": all.sorted()[i]]).ok) }
            let mid = ms0 + 60
            let filters: [([String: String], (Order.Stored) -> Bool)] = [
                ([:], { _ in true }),
                (["status": "active"], { $0.status == "active" }),
                (["planId": "s", "status": #"["paused","active"]"#], { ["paused", "active"].contains($0.status) }),
                (["startedAfter": String(mid)], { $0.startedAt >= mid }),
                (["startedBefore": String(mid + 1), "status": "paused"], { $0.startedAt < mid + 1 && $0.status == "paused" }),
            ]
            try Self.check(
                client, env, partitions: 2, filters: filters, offsets: [0, 1, 2, 59, 60, 61, 127, 128, 129, 255, 256, 300, 459, 460, 461, 519, 520],
                limits: [1, 10, 50])
        }
    }

    /// Rewrites a partition's layout-4 indexes as layouts 2 and 3 kept them (one sorted set per status, and per plan
    /// and status), and records layout 3 (its contact records are the engine's already): a deployment from before
    /// this layout, as `dee migrate` finds it, with only step 4 to do.
    static func writeLayoutTwo(_ env: TestEngine.Env, partition p: Int = 0) throws {
        let base = env.key("{\(p)}")
        var keys: [String] = []
        var cursor = "0"
        repeat {
            let reply = try env.redis.call(["SCAN", cursor, "MATCH", "\(base):ix[sp]:*", "COUNT", "1000"]).array ?? []
            cursor = reply.first?.string ?? "0"
            keys += (reply.count > 1 ? reply[1].array ?? [] : []).compactMap(\.string)
        } while cursor != "0"
        for key in keys where try env.redis.call(["TYPE", key]).string == "zset" {
            // <base>:ixs:<s>:<b> → <base>:idx:status:<s>; <base>:ixp:<plan>:<s>:<b> → <base>:idx:ps:<plan>:<s>.
            let rest = key.dropFirst(base.count + 5)
            let index = rest[..<(rest.lastIndex(of: ":") ?? rest.endIndex)]
            let old = key.hasPrefix("\(base):ixs:") ? "\(base):idx:status:\(index)" : "\(base):idx:ps:\(index)"
            let items = (try env.redis.call(["ZRANGE", key, "0", "-1", "WITHSCORES"]).array ?? []).compactMap(\.string)
            var args = ["ZADD", old]
            for i in stride(from: 0, to: items.count - 1, by: 2) { args += [items[i + 1], items[i]] }
            if args.count > 2 { try env.redis.call(args) }
        }
        for key in keys + ["\(base):bmap", "\(base):nruns", "\(base):nlegacy"] { try env.redis.call(["DEL", key]) }
        try env.redis.call(["HSET", env.key("meta"), "layout", String(Layout.contactRecords)])
    }

    static var migrationFilters: [([String: String], (Order.Stored) -> Bool)] {
        [
        ([:], { _ in true }),
        (["status": "waiting"], { $0.status == "waiting" }),
        (["status": #"["active","paused","cancelled"]"#], { ["active", "paused", "cancelled"].contains($0.status) }),
        (["planId": "bench"], { $0.planId == "bench" }),
        (["planId": "bench", "status": "paused"], { $0.planId == "bench" && $0.status == "paused" }),
        (["planId": "other"], { $0.planId == "other" }),
        ]
    }

    /// A layout-2 deployment (every run in the old sorted sets) read, written and migrated with the engine
    /// running: new runs go to buckets, old ones move within the old sets until the migration (batches of 50,
    /// engine writes between them) reaches them; every answer is exact at every step, and at the end the old sets
    /// are gone and the layout is current.
    @Test func aLayoutTwoDeploymentMigratesWhileTheEngineRuns() async throws {
        try await TestEngine.with { client, env in
            try MigrationTests.populate(client)
            let more = try client.call(
                "bulkExecute", ["planId": "bench", "contacts": Self.contacts((0..<200).map { "m\($0)" }), "batchSize": "100"])
            #expect(more.object["created"] as? Int == 200, "\(more.fields)")
            let expected = try MigrationTests.answers(client, env)
            try Self.writeLayoutTwo(env)
            #expect(try env.redis.call(["EXISTS", env.key("{0}:bmap")]).int == 0)
            #expect(try MigrationTests.answers(client, env) == expected, "read from the layout-2 sets alone")

            // The engine writes meanwhile: new runs (bucket 0 on), old runs moved (within the old sets).
            let old = try Indexes.allRuns(env.redis, base: env.key("{0}"))
            let fresh = try client.call(
                "bulkExecute", ["planId": "bench", "contacts": Self.contacts((0..<150).map { "n\($0)" }), "batchSize": "100"])
            #expect(fresh.object["created"] as? Int == 150, "\(fresh.fields)")
            let waiting = try Indexes.members(env.redis, base: env.key("{0}"), status: "waiting")
            for i in stride(from: 5, to: waiting.count, by: 17) { #expect(try client.call("pauseRun", ["runId": waiting[i]]).ok) }
            #expect(try env.redis.call(["ZCARD", env.key("{0}:ixs:active:0")]).int == 128)
            try Self.check(client, env, partitions: 1, filters: Self.migrationFilters, offsets: [0, 1, 149, 150, 151, 300, 470], limits: [7, 50])

            let migration = LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1, batchSize: 50)
            var batches = 0, moved = 0
            while true {
                let p = try migration.run(maxBatches: 1, env.redis)
                moved += p.converted
                if p.done { break }
                batches += 1
                #expect(batches < 40)
                if batches > 40 { break }
                // Layout 4 is recorded once its step is done, while layout 5's (the due schedule) goes on.
                #expect([Layout.contactRecords, Layout.bucketedIndexes].contains(try migration.layout(env.redis)))
                // Between batches: an old run and a new one change status, a run is created.
                let k = batches * 13
                // (Refused when the run is not open any more: either way every answer below must stay exact.)
                _ = try client.call("pauseRun", ["runId": old[k % old.count]])
                _ = try client.call("cancelRun", ["runId": old[(k * 7) % old.count], "reason": "m"])
                try client.run("other", "between\(batches)")
                try Self.check(client, env, partitions: 1, filters: Self.migrationFilters, offsets: [0, 1, 50, 127, 128, 129, 300, 480], limits: [7, 50])
            }
            #expect(moved == old.count, "every old run moved once")
            #expect(try migration.layout(env.redis) == Layout.current)
            for s in RunStatus.allCases {
                #expect(try env.redis.call(["EXISTS", env.key("{0}:idx:status:\(s.rawValue)")]).int == 0)
                for plan in ["bench", "other"] {
                    #expect(try env.redis.call(["EXISTS", env.key("{0}:idx:ps:\(plan):\(s.rawValue)")]).int == 0)
                }
            }
            // Migrated runs are numbered downwards from bucket -1, highest id first.
            #expect(try env.redis.call(["GET", env.key("{0}:nlegacy")]).int == old.count)
            let bmap = (try env.redis.call(["ZRANGE", env.key("{0}:bmap"), "0", "-1"]).array ?? []).compactMap(\.string)
            let created = try #require(try env.redis.call(["GET", env.key("{0}:nruns")]).int)
            #expect(created == 150 + batches)
            let buckets = ["-3", "-2", "-1"] + (0...(created - 1) / 128).map(String.init)
            #expect(bmap.map { $0.split(separator: " ").last.map(String.init) ?? "" } == buckets)
            #expect(bmap.first?.hasPrefix(old[0] + " ") == true)
            try Self.check(client, env, partitions: 1, filters: Self.migrationFilters, offsets: [0, 1, 127, 128, 129, 300, 330, 480, 500], limits: [7, 50])
            let again = try migration.run(env.redis)
            #expect(again.done && again.converted == 0)
        }
    }

    /// Run retention removes runs from buckets (counts follow, a complete bucket left empty leaves bmap) and from
    /// the layout-2 sets of runs not migrated yet.
    @Test func runRetentionRemovesBucketedAndOldEntries() async throws {
        try await TestEngine.with { client, env in
            let m: Int64 = 1_600_000_000_000
            _ = try client.at("\(m)-1", "registerPlan", ["plan": MigrationTests.benchPlan])
            let bulk = try client.at(
                "\(m)-2", "bulkExecute", ["planId": "bench", "contacts": Self.contacts((0..<130).map { "r\($0)" })])
            #expect(bulk.object["created"] as? Int == 130, "\(bulk.fields)")
            let cancel = try client.at("\(m + 1)-1", "bulkCancel", ["filters": #"{"planId":"bench"}"#, "reason": "old"])
            #expect(cancel.ok, "\(cancel.fields)")
            try Self.writeLayoutTwo(env)
            // Today's runs: bucket 0 of layout 4; then 129 of the old runs migrate (buckets -1 and -2), one stays.
            for i in 0..<3 { try client.run("bench", "young\(i)") }
            let migration = LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1, batchSize: 129)
            #expect(try migration.run(maxBatches: 1, env.redis).converted == 129)
            #expect(try env.redis.call(["ZCARD", env.key("{0}:idx:status:cancelled")]).int == 1)
            #expect(try env.redis.call(["ZCARD", env.key("{0}:ixs:cancelled:-1")]).int == 128)
            #expect(try client.call("listRuns", ["status": "cancelled"]).total == 130)

            let retention = try RunRetentionTests.retention(env, ms: 30 * RunRetentionTests.day)
            var memory = RunRetentionMemory()
            let epoch = try env.epoch()
            let round = try retention.round(env.redis, &memory, epochs: { _ in epoch })
            #expect(round[0]?.removed == 130, "\(round)")
            #expect(try client.call("listRuns", ["status": "cancelled"]).total == 0)
            #expect(try client.call("listRuns", [:]).total == 3)
            #expect(try env.redis.call(["ZCARD", env.key("{0}:idx:status:cancelled")]).int == 0)
            #expect(try env.redis.call(["EXISTS", env.key("{0}:ixs:cancelled"), env.key("{0}:ixp:bench:cancelled")]).int == 0)
            let bmap = (try env.redis.call(["ZRANGE", env.key("{0}:bmap"), "0", "-1"]).array ?? []).compactMap(\.string)
            // Bucket -1 is complete and empty: gone from bmap; -2 may still get the last old run; 0 is open.
            #expect(bmap.map { $0.split(separator: " ").last.map(String.init) ?? "" } == ["-2", "0"], "\(bmap)")
            #expect(try Indexes.countProblems(env.redis, base: env.key("{0}")).isEmpty)
            try Self.check(client, env, partitions: 1, filters: Self.migrationFilters, offsets: [0, 1, 2, 3])
        }
    }
}
