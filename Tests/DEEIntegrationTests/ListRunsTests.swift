import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// listRuns: every filter, combinations, paging, exact totals, order (SPEC 6, runs-api.txt).
@Suite(.serialized) struct ListRunsTests {
    /// Runs created in order (oldest first): plan A for a0…a4, plan B for b0, b1 and a0.
    /// a1 is paused, a2 cancelled, b1 pending (startTick 9).
    struct Fixture {
        var ids: [String] = []
        var startedAt: [String] = []
        var byName: [String: String] = [:]
    }

    static func fixture(_ client: DEEClient) throws -> Fixture {
        try client.register(simplePlan("A"))
        try client.register(simplePlan("B"))
        var f = Fixture()
        for (plan, c, extra) in [
            ("A", "a0", [:]), ("A", "a1", [:]), ("A", "a2", [:]), ("A", "a3", [:]), ("A", "a4", [:]),
            ("B", "b0", [:]), ("B", "b1", ["startTick": "9"]), ("B", "a0", [:]),
        ] as [(String, String, [String: String])] {
            // Distinct milliseconds, so that the time window can split the runs.
            usleep(3000)
            let r = try client.call("execute", ["planId": plan, "contact": contact(c)].merging(extra) { a, _ in a })
            #expect(r.ok, "\(r.fields)")
            let id = try #require(r.object["id"] as? String)
            f.ids.append(id)
            f.startedAt.append(r.object["startedAt"] as? String ?? "")
            f.byName["\(plan)/\(c)"] = id
        }
        _ = try client.call("pauseRun", ["runId": f.byName["A/a1"]!])
        _ = try client.call("cancelRun", ["runId": f.byName["A/a2"]!, "reason": "test"])
        return f
    }

    @Test func noFilterNewestFirstExactTotal() async throws {
        try await TestEngine.with { client, _ in
            let f = try Self.fixture(client)
            let all = try client.call("listRuns")
            #expect(all.ok, "\(all.fields)")
            #expect(all.total == 8)
            #expect(all.runIds == Array(f.ids.reversed()))
            // startedAt never increases down the list.
            let times = all.runs.compactMap { $0["startedAt"] as? String }
            #expect(times == times.sorted(by: >))
            // Each run is a full ExecutionRun.
            for run in all.runs {
                for key in ["id", "planId", "planVersion", "contactId", "status", "currentStep", "stepsCompleted",
                    "stepsRemaining", "startTick", "currentTick", "startedAt", "completedAt", "outcome", "variables"]
                {
                    #expect(run[key] != nil, "missing \(key)")
                }
            }
        }
    }

    @Test func limitAndOffset() async throws {
        try await TestEngine.with { client, _ in
            let f = try Self.fixture(client)
            let newest = Array(f.ids.reversed())
            let page = try client.call("listRuns", ["limit": "3", "offset": "2"])
            #expect(page.ok, "\(page.fields)")
            #expect(page.total == 8)
            #expect(page.runIds == Array(newest[2..<5]))

            let tail = try client.call("listRuns", ["limit": "5", "offset": "6"])
            #expect(tail.total == 8)
            #expect(tail.runIds == Array(newest[6...]))

            let past = try client.call("listRuns", ["offset": "100"])
            #expect(past.total == 8)
            #expect(past.runIds.isEmpty)

            // Paging with a filter: total is still exact.
            let planPage = try client.call("listRuns", ["planId": "A", "limit": "2", "offset": "1"])
            #expect(planPage.total == 5)
            let planAll = Array(f.ids[0..<5].reversed())
            #expect(planPage.runIds == Array(planAll[1..<3]))
        }
    }

    @Test func byStatusSingleAndArray() async throws {
        try await TestEngine.with { client, _ in
            let f = try Self.fixture(client)
            let active = try client.call("listRuns", ["status": "active"])
            #expect(active.ok, "\(active.fields)")
            #expect(active.total == 5)
            #expect(active.runs.allSatisfy { $0["status"] as? String == "active" })
            #expect(Set(active.runIds) == Set([f.byName["A/a0"]!, f.byName["A/a3"]!, f.byName["A/a4"]!, f.byName["B/b0"]!, f.byName["B/a0"]!]))

            let paused = try client.call("listRuns", ["status": "paused"])
            #expect(paused.runIds == [f.byName["A/a1"]!])

            let several = try client.call("listRuns", ["status": #"["paused","cancelled","pending"]"#])
            #expect(several.ok, "\(several.fields)")
            #expect(several.total == 3)
            #expect(several.runIds == [f.byName["B/b1"]!, f.byName["A/a2"]!, f.byName["A/a1"]!])

            let severalPage = try client.call("listRuns", ["status": #"["paused","cancelled","pending"]"#, "limit": "1", "offset": "1"])
            #expect(severalPage.total == 3)
            #expect(severalPage.runIds == [f.byName["A/a2"]!])

            let none = try client.call("listRuns", ["status": "completed"])
            #expect(none.ok)
            #expect(none.total == 0)
            #expect(none.runIds.isEmpty)
        }
    }

    @Test func byPlanAndContact() async throws {
        try await TestEngine.with { client, _ in
            let f = try Self.fixture(client)
            let b = try client.call("listRuns", ["planId": "B"])
            #expect(b.total == 3)
            #expect(b.runIds == [f.byName["B/a0"]!, f.byName["B/b1"]!, f.byName["B/b0"]!])

            let a0 = try client.call("listRuns", ["contactId": "a0"])
            #expect(a0.total == 2)
            #expect(a0.runIds == [f.byName["B/a0"]!, f.byName["A/a0"]!])

            let unknown = try client.call("listRuns", ["planId": "nope"])
            #expect(unknown.ok)
            #expect(unknown.total == 0)
        }
    }

    @Test func combinedFilters() async throws {
        try await TestEngine.with { client, _ in
            let f = try Self.fixture(client)
            let activeA = try client.call("listRuns", ["planId": "A", "status": "active"])
            #expect(activeA.total == 3)
            #expect(activeA.runIds == [f.byName["A/a4"]!, f.byName["A/a3"]!, f.byName["A/a0"]!])

            let a0InB = try client.call("listRuns", ["planId": "B", "contactId": "a0"])
            #expect(a0InB.total == 1)
            #expect(a0InB.runIds == [f.byName["B/a0"]!])

            let openA = try client.call("listRuns", ["planId": "A", "status": #"["paused","active"]"#, "limit": "2"])
            #expect(openA.total == 4)
            #expect(openA.runIds == [f.byName["A/a4"]!, f.byName["A/a3"]!])

            let nothing = try client.call("listRuns", ["planId": "B", "status": "paused"])
            #expect(nothing.total == 0)
        }
    }

    @Test func startedWindowIsoAndEpoch() async throws {
        try await TestEngine.with { client, _ in
            let f = try Self.fixture(client)
            // Runs 2…5 (inclusive after, exclusive before), by ISO text.
            let iso = try client.call("listRuns", ["startedAfter": f.startedAt[2], "startedBefore": f.startedAt[6]])
            #expect(iso.ok, "\(iso.fields)")
            #expect(iso.total == 4)
            #expect(iso.runIds == Array(f.ids[2..<6].reversed()))

            // The same window in epoch milliseconds.
            let after = try #require(Timestamp.parse(f.startedAt[2]))
            let before = try #require(Timestamp.parse(f.startedAt[6]))
            let epoch = try client.call("listRuns", ["startedAfter": String(after), "startedBefore": String(before)])
            #expect(epoch.ok, "\(epoch.fields)")
            #expect(epoch.runIds == iso.runIds)
            #expect(epoch.total == 4)

            // Epoch ms inside args JSON as a number.
            let json = try client.call("listRuns", ["args": js(["startedAfter": after, "startedBefore": before])])
            #expect(json.runIds == iso.runIds)

            // One side only.
            let onlyAfter = try client.call("listRuns", ["startedAfter": f.startedAt[5]])
            #expect(onlyAfter.runIds == Array(f.ids[5...].reversed()))
            let onlyBefore = try client.call("listRuns", ["startedBefore": String(after)])
            #expect(onlyBefore.runIds == Array(f.ids[0..<2].reversed()))

            // Window combined with a plan and a status.
            let combined = try client.call(
                "listRuns", ["planId": "A", "status": "active", "startedAfter": f.startedAt[2], "startedBefore": f.startedAt[6]])
            #expect(combined.total == 2)
            #expect(combined.runIds == [f.byName["A/a4"]!, f.byName["A/a3"]!])

            // An empty window.
            let empty = try client.call("listRuns", ["startedAfter": String(before), "startedBefore": String(after)])
            #expect(empty.ok)
            #expect(empty.total == 0)

            // A date far in the past and a timezone offset.
            let everything = try client.call("listRuns", ["startedAfter": "2000-01-01T00:00:00.000+02:00"])
            #expect(everything.total == 8)
        }
    }
}
