import DEEClient
import DEECore
import Foundation
import DEEService
import Redis
import Testing

/// listRuns order (SPEC 3, 6): newest `startedAt` first, ties by id ascending (creation order), within one
/// partition and merged across partitions, on the merge path and on the deep-page seek path, for runs of one
/// bulkExecute (one `startedAt`, ids differing by contact index) and for executes that share a millisecond.
@Suite(.serialized) struct ListRunsOrderTests {
    struct Stored {
        let id: String
        let planId: String
        let status: String
        let startedAt: Int64
    }

    /// Every run of the deployment, read from the run hashes (not through listRuns).
    static func storedRuns(_ env: TestEngine.Env, partitions: Int) throws -> [Stored] {
        var out: [Stored] = []
        for p in 0..<partitions {
            let ids = try Indexes.allRuns(env.redis, base: env.key("{\(p)}"))
            if ids.isEmpty { continue }
            // Layout 2 (docs/MEMORY.md): startedAt is the id's first 13 digits unless `sa` says otherwise.
            let replies = try env.redis.pipeline(ids.map { ["HMGET", env.key("{\(p)}:run:\($0)"), "p", "s", "sa"] })
            for (id, reply) in zip(ids, replies) {
                let f = (reply.array ?? []).map { $0.string ?? "" }
                let startedAt = Int64(f[2]) ?? Run.startedAt(impliedBy: id) ?? -1
                out.append(Stored(id: id, planId: f[0], status: f[1], startedAt: startedAt))
            }
        }
        return out
    }

    /// The order SPEC 6 asks for, computed here: startedAt descending, then id ascending.
    static func expected(_ runs: [Stored], status: [String]? = nil, planId: String? = nil, after: Int64? = nil, before: Int64? = nil)
        -> [String]
    {
        runs.filter { r in
            (status.map { $0.contains(r.status) } ?? true) && (planId.map { $0 == r.planId } ?? true)
                && (after.map { r.startedAt >= $0 } ?? true) && (before.map { r.startedAt < $0 } ?? true)
        }
        .sorted { $0.startedAt != $1.startedAt ? $0.startedAt > $1.startedAt : $0.id < $1.id }
        .map(\.id)
    }

    /// XADDs commands under explicit ingress ids of one millisecond (after every id so far), so that their runs
    /// share one `startedAt`; returns their replies, in order.
    static func sameMillisecond(_ client: DEEClient, _ env: TestEngine.Env, _ commands: [[String: String]]) throws -> [DEEReply] {
        let last = try env.redis.call(["XREVRANGE", env.key("commands"), "+", "-", "COUNT", "1"]).streamEntries.first?.id
        let lastMs = last.flatMap { EntryID($0) }.map { Int64($0.ms) } ?? 0
        let ms = max(lastMs, Int64(Date().timeIntervalSince1970 * 1000)) + 20
        var ids: [String] = []
        for (seq, fields) in commands.enumerated() {
            var args = ["XADD", env.key("commands"), "\(ms)-\(seq)", "replyTo", client.replyStream]
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) { args += [k, v] }
            ids.append(try #require(try env.redis.call(args).string))
        }
        return try ids.map { try client.reply(to: $0) }
    }

    static func bulk(_ planId: String, _ names: [String], batchSize: Int = 7) -> [String: String] {
        ["type": "bulkExecute", "planId": planId, "contacts": "[" + names.map { contact($0) }.joined(separator: ",") + "]",
         "batchSize": String(batchSize)]
    }

    static func execute(_ planId: String, _ name: String) -> [String: String] {
        ["type": "execute", "planId": planId, "contact": contact(name)]
    }

    /// Runs with ties: sequential executes, then in one millisecond an execute, a bulkExecute of 50 contacts, two
    /// more executes (one of another plan); in a later millisecond a bulkExecute of 20 and an execute; then more
    /// sequential executes (those two milliseconds are set ahead of the clock, so Redis gives these ids in the second
    /// one while it is still ahead: they may tie with it; `check` computes the order from the stored runs). Some
    /// runs are paused, so that a tie group spreads over several status indexes.
    /// Returns the groups of run ids that share one startedAt, in creation order.
    static func fixture(_ client: DEEClient, _ env: TestEngine.Env) throws -> [[String]] {
        try client.register(simplePlan("lo"))
        try client.register(simplePlan("lo2"))
        for i in 0..<5 { try client.run(i % 2 == 0 ? "lo" : "lo2", "s\(i)") }
        let b = (0..<50).map { "b\($0)" }, c = (0..<20).map { "c\($0)" }
        let first = try sameMillisecond(
            client, env, [execute("lo", "x0"), bulk("lo", b), execute("lo", "x1"), execute("lo2", "x2")])
        let second = try sameMillisecond(client, env, [bulk("lo2", c, batchSize: 100), execute("lo", "x3")])
        for r in first + second { #expect(r.ok, "\(r.fields)") }
        #expect(first[1].object["created"] as? Int == 50)
        #expect(second[0].object["created"] as? Int == 20)
        for i in 5..<10 { try client.run(i % 2 == 0 ? "lo" : "lo2", "s\(i)") }

        // The runs of each millisecond, in creation order: by command, then by contact index.
        let all = try client.call("listRuns", ["limit": "1000"]).runs
        let byContact = Dictionary(uniqueKeysWithValues: all.map { ($0["contactId"] as? String ?? "", $0["id"] as? String ?? "") })
        let group1 = ["x0"] + b + ["x1", "x2"], group2 = c + ["x3"]
        let ids1 = group1.compactMap { byContact[$0] }, ids2 = group2.compactMap { byContact[$0] }
        #expect(ids1.count == group1.count && ids2.count == group2.count)
        for (i, name) in ["b3", "b10", "b49", "x1", "c0"].enumerated() {
            let id = try #require(byContact[name])
            #expect(try client.call(i % 2 == 0 ? "pauseRun" : "cancelRun", ["runId": id, "reason": "order"]).ok)
        }
        return [ids1, ids2]
    }

    /// Checks every listed filter's full list against the computed order, and pages at the given offsets.
    static func check(
        _ client: DEEClient, _ env: TestEngine.Env, partitions: Int, groups: [[String]], offsets: [Int],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let stored = try storedRuns(env, partitions: partitions)
        let tie = try #require(stored.first { $0.id == groups[0][0] }).startedAt
        let filters: [([String: String], [String])] = [
            ([:], expected(stored)),
            (["status": "active"], expected(stored, status: ["active"])),
            (["status": #"["active","paused"]"#], expected(stored, status: ["active", "paused"])),
            (["planId": "lo"], expected(stored, planId: "lo")),
            (["planId": "lo", "status": "paused"], expected(stored, status: ["paused"], planId: "lo")),
            (["startedBefore": String(tie + 1)], expected(stored, before: tie + 1)),
            (["startedAfter": String(tie), "planId": "lo2"], expected(stored, planId: "lo2", after: tie)),
        ]
        for (filter, want) in filters {
            let whole = try client.call("listRuns", filter.merging(["limit": "1000"]) { a, _ in a })
            #expect(whole.ok, "\(whole.fields)", sourceLocation: sourceLocation)
            #expect(whole.total == want.count, "\(filter)", sourceLocation: sourceLocation)
            #expect(whole.runIds == want, "\(filter)", sourceLocation: sourceLocation)
            for offset in offsets + [want.count - 1, want.count] where offset >= 0 {
                for limit in [1, 3, 10, 50] {
                    let page = try client.call(
                        "listRuns", filter.merging(["limit": String(limit), "offset": String(offset)]) { a, _ in a })
                    #expect(page.total == want.count, "\(filter) offset \(offset)", sourceLocation: sourceLocation)
                    #expect(
                        page.runIds == Array(want.dropFirst(offset).prefix(limit)), "\(filter) offset \(offset) limit \(limit)",
                        sourceLocation: sourceLocation)
                }
            }
        }
        // Independently of the computed order: each tie group is listed in creation order, as one block.
        let all = try client.call("listRuns", ["limit": "1000"]).runIds
        for group in groups {
            let start = try #require(all.firstIndex(of: group[0]), sourceLocation: sourceLocation)
            #expect(Array(all[start..<min(all.count, start + group.count)]) == group, sourceLocation: sourceLocation)
        }
    }

    @Test func tiesInOnePartition() async throws {
        try await TestEngine.with { client, env in
            let groups = try Self.fixture(client, env)
            try Self.check(client, env, partitions: 1, groups: groups, offsets: [0, 1, 4, 5, 6, 30, 55, 56, 60, 75, 80])
        }
    }

    @Test func tiesMergedAcrossPartitions() async throws {
        try await TestEngine.with(partitions: 4) { client, env in
            let groups = try Self.fixture(client, env)
            try Self.check(client, env, partitions: 4, groups: groups, offsets: [0, 1, 4, 5, 6, 30, 55, 56, 60, 75, 80])
        }
    }

    /// seekOffset 1: every page past the first is sought by run-id bounds.
    @Test func tiesOnTheSeekPath() async throws {
        try await TestEngine.with(partitions: 4, configure: { $0.seekOffset = 1 }) { client, env in
            let groups = try Self.fixture(client, env)
            try Self.check(
                client, env, partitions: 4, groups: groups, offsets: [0, 1, 2, 4, 5, 6, 7, 20, 30, 54, 55, 56, 57, 60, 75, 76, 80])
        }
    }

    /// Past offset 1000 with the default seekOffset: a bulk of 1100 contacts (one startedAt) among executes.
    @Test func deepOffsetsThroughOneBulk() async throws {
        try await TestEngine.with(partitions: 4) { client, env in
            try client.register(simplePlan("deep"))
            for i in 0..<3 { try client.run("deep", "before\(i)") }
            let names = (0..<1100).map { "d\($0)" }
            let r = try Self.sameMillisecond(
                client, env, [Self.execute("deep", "t0"), Self.bulk("deep", names, batchSize: 500), Self.execute("deep", "t1")])
            let allOK = r.allSatisfy(\.ok)
            #expect(allOK, "\(r.map(\.fields))")
            #expect(r[1].object["created"] as? Int == 1100)
            usleep(30_000)  // past the tie's millisecond
            for i in 0..<3 { try client.run("deep", "after\(i)") }
            let stored = try Self.storedRuns(env, partitions: 4)
            let want = Self.expected(stored)
            #expect(want.count == 1108)
            for (offset, limit) in [
                (0, 10), (990, 20), (999, 5), (1000, 1), (1000, 50), (1001, 10), (1050, 50), (1099, 10), (1100, 8),
                (1105, 10), (1107, 1), (1108, 5),
            ] {
                let page = try client.call("listRuns", ["limit": String(limit), "offset": String(offset)])
                #expect(page.total == 1108)
                #expect(page.runIds == Array(want.dropFirst(offset).prefix(limit)), "offset \(offset) limit \(limit)")
            }
            // Read through both paths (merge below 1000, seek from 1000): the tie block is t0, d0…d1099, t1, in
            // creation order, as one block.
            let listed = try client.call("listRuns", ["limit": "1000"]).runs
                + client.call("listRuns", ["limit": "1000", "offset": "1000"]).runs
            let contacts = listed.compactMap { $0["contactId"] as? String }
            #expect(contacts.count == 1108)
            let start = try #require(contacts.firstIndex(of: "t0"))
            #expect(Array(contacts[start..<min(contacts.count, start + 1102)]) == ["t0"] + names + ["t1"])
            #expect(Set(contacts[..<start]) == ["after0", "after1", "after2"])
        }
    }
}
