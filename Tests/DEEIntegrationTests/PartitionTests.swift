import DEEClient
import DEECore
import Foundation
import DEEService
import Redis
import Testing

/// Several partitions (SPEC 1, 8, 9): runs live in their contact's partition, reads span partitions.
@Suite(.serialized) struct PartitionTests {
    static let contacts = (0..<20).map { "contact_\($0)" }

    /// Executes the 20 contacts; returns their run ids.
    static func enroll(_ client: DEEClient) throws -> [String: String] {
        try client.register(examplePlan)
        var ids: [String: String] = [:]
        for c in contacts { ids[c] = try client.run("welcome", c) }
        return ids
    }

    @Test func runsLiveInTheirContactsPartition() async throws {
        try await TestEngine.with(partitions: 4) { client, env in
            let ids = try Self.enroll(client)
            var used = Set<Int>()
            for (c, id) in ids {
                let p = Partitioning.partition(ofContact: c, count: 4)
                used.insert(p)
                #expect(id.hasSuffix("-\(p)"), "\(c) → \(id), expected partition \(p)")
                #expect(RunID.partition(of: id) == p)
                let run = try client.getRun(id)
                #expect(run["id"] as? String == id)
                #expect(run["contactId"] as? String == c)
                #expect(run["status"] as? String == "active")
                #expect(try env.exists("{\(p)}:run:\(id)"))
                #expect(try env.enrolled("welcome", c, partition: p) == id)
            }
            #expect(used.count > 1, "20 contacts should spread over several of 4 partitions")

            let all = try client.call("listRuns", ["limit": "100"])
            #expect(all.ok, "\(all.fields)")
            #expect(all.total == 20)
            #expect(Set(all.runIds) == Set(ids.values))
            let times = all.runs.compactMap { $0["startedAt"] as? String }
            #expect(times == times.sorted(by: >))

            // Paging across partitions: pages are consecutive slices of the whole list, totals exact.
            var paged: [String] = []
            for offset in stride(from: 0, to: 20, by: 6) {
                let page = try client.call("listRuns", ["limit": "6", "offset": String(offset)])
                #expect(page.total == 20)
                paged += page.runIds
            }
            #expect(paged == all.runIds)

            // A contact's runs are read from its partition alone.
            let one = try client.call("listRuns", ["contactId": "contact_7"])
            #expect(one.total == 1)
            #expect(one.runIds == [ids["contact_7"]!])

            let stats = try client.stats()
            #expect(stats.ok, "\(stats.fields)")
            #expect(stats.object["partitions"] as? Int == 4)
            #expect(stats.object["plans"] as? Int == 1)
            #expect((stats.object["runsByStatus"] as? [String: Int])?["active"] == 20)
        }
    }

    /// Across partitions, pages come newest first (ties by id ascending: creation order) and page like one sorted
    /// list.
    @Test func listRunsAcrossPartitionsPagesInOneOrder() async throws {
        try await TestEngine.with(partitions: 4) { client, _ in
            let ids = try Self.enroll(client)
            // A run id starts with its 13-digit creation millisecond: newest millisecond first, then id ascending.
            let sorted = ids.values.sorted { ($0.prefix(13), $1) > ($1.prefix(13), $0) }
            for (offset, limit) in [(0, 5), (3, 5), (15, 10), (19, 1), (25, 5)] {
                let page = try client.call("listRuns", ["limit": String(limit), "offset": String(offset)])
                #expect(page.total == 20)
                #expect(page.runIds == Array(sorted.dropFirst(offset).prefix(limit)), "offset \(offset) limit \(limit)")
            }
        }
    }

    /// Deep pages over several partitions are sought by run-id bounds (seekOffset 1 here: every offset > 0);
    /// they must equal slices of the merged list, with every filter, through a bulk command's runs that share
    /// one millisecond and executes that do not.
    @Test func deepPagesAcrossPartitionsAreSlicesOfTheMergedList() async throws {
        try await TestEngine.with(partitions: 4, configure: { $0.seekOffset = 1 }) { client, _ in
            try client.register(simplePlan("pa"))
            try client.register(simplePlan("pb"))
            let bulk = (0..<45).map { contact("bulk\($0)") }.joined(separator: ",")
            #expect(try client.call("bulkExecute", ["planId": "pa", "contacts": "[\(bulk)]", "batchSize": "7"]).ok)
            var executed: [String] = []
            for i in 0..<14 { executed.append(try client.run(i % 2 == 0 ? "pa" : "pb", "single\(i)")) }
            for id in executed.prefix(4) { #expect(try client.call("pauseRun", ["runId": id]).ok) }
            let all = try client.call("listRuns", ["limit": "1000"])
            let times = all.runs.compactMap { $0["startedAt"] as? String }
            let middle = times[times.count / 2]
            let filters: [[String: String]] = [
                [:], ["status": "active"], ["planId": "pa"], ["planId": "pb", "status": "paused"],
                ["status": #"["active","paused"]"#], ["startedBefore": middle], ["startedAfter": middle, "planId": "pb"],
            ]
            for filter in filters {
                let whole = try client.call("listRuns", filter.merging(["limit": "1000"]) { a, _ in a })
                #expect(whole.ok, "\(whole.fields)")
                let n = try #require(whole.total)
                for offset in [1, 2, 5, 13, 30, 44, 45, 46, n - 1, n, n + 3] where offset > 0 {
                    for limit in [1, 4, 10] {
                        let page = try client.call(
                            "listRuns", filter.merging(["limit": String(limit), "offset": String(offset)]) { a, _ in a })
                        #expect(page.total == n, "\(filter) offset \(offset)")
                        #expect(
                            page.runIds == Array(whole.runIds.dropFirst(offset).prefix(limit)),
                            "\(filter) offset \(offset) limit \(limit)")
                    }
                }
            }
        }
    }

    @Test func commandsOnRunsOfEveryPartition() async throws {
        try await TestEngine.with(partitions: 4) { client, env in
            let ids = try Self.enroll(client)
            for (c, id) in ids {
                let p = Partitioning.partition(ofContact: c, count: 4)
                #expect(try client.call("pauseRun", ["runId": id]).object["status"] as? String == "paused")
                #expect(try client.call("resumeRun", ["runId": id]).object["status"] as? String == "active")
                #expect(try client.call("verifyAudit", ["runId": id]).object["valid"] as? Bool == true)
                #expect(try env.auditList(id, partition: p).count == 3)
                #expect(try client.call("execute", ["planId": "welcome", "contact": contact(c)]).error == "already_enrolled")
            }
            let s = try client.call("suppress", ["contactId": "contact_3"])
            #expect(s.object["cancelled"] as? Int == 1)
            #expect(try client.getRun(ids["contact_3"]!)["status"] as? String == "cancelled")
            let byStatus = try client.call("listRuns", ["status": "cancelled"])
            #expect(byStatus.runIds == [ids["contact_3"]!])
            #expect(try client.call("listRuns", ["status": "active"]).total == 19)
        }
    }

    @Test func bulkCancelAcrossPartitionsCancelsAll() async throws {
        try await TestEngine.with(partitions: 4) { client, _ in
            _ = try Self.enroll(client)
            let r = try client.call("bulkCancel", ["filters": #"{"planId":"welcome"}"#, "reason": "all"])
            #expect(r.ok, "\(r.fields)")
            // Every partition applies its share; all 20 runs end cancelled.
            #expect(try eventually { try client.call("listRuns", ["status": "cancelled"]).total == 20 })
            #expect(try client.call("listRuns", ["status": "active"]).total == 0)
            let counts = try client.stats().object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts["cancelled"] == 20)
        }
    }

    @Test func bulkCancelAcrossPartitionsRepliesTheTotal() async throws {
        try await TestEngine.with(partitions: 4) { client, env in
            _ = try Self.enroll(client)
            let r = try client.call("bulkCancel", ["filters": #"{"planId":"welcome"}"#, "reason": "all"])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["cancelled"] as? Int == 20, "the reply must count every partition's share: \(r.fields)")
            // One reply per command.
            _ = try client.stats()
            let replies = try env.redis.call(["XRANGE", client.replyStream, "-", "+"]).array ?? []
            let forThis = replies.filter { entry in
                let flat = entry.array?.last?.array?.compactMap(\.string) ?? []
                return zip(flat, flat.dropFirst()).contains { $0 == "commandId" && $1 == r.commandId }
            }
            #expect(forThis.count == 1)
        }
    }

    @Test func bulkExecuteAcrossPartitionsRepliesTheTotal() async throws {
        try await TestEngine.with(partitions: 4) { client, _ in
            try client.register(examplePlan)
            let contacts = "[" + Self.contacts.map { contact($0) }.joined(separator: ",") + ",\(contact("contact_0"))]"
            let r = try client.call("bulkExecute", ["planId": "welcome", "contacts": contacts, "batchSize": "3"])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["created"] as? Int == 20, "\(r.fields)")
            #expect(r.object["skipped"] as? Int == 1, "\(r.fields)")
            #expect(try eventually { try client.call("listRuns").total == 20 })
        }
    }
}
