import DEEClient
import DEECore
import DEEService
import Foundation
import Redis
import Testing

/// bulkExecute and bulkCancel (SPEC 6).
@Suite(.serialized) struct BulkTests {
    @Test func bulkExecuteCountsSkipsAndErrorsInSmallBatches() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let pre = try client.run("welcome", "pre")
            _ = try client.call("suppress", ["contactId": "sup"])
            let contacts = [
                contact("c0"),  // 0 created
                contact("c1"),  // 1 created
                contact("pre"),  // 2 skipped: already_enrolled (an earlier run)
                contact("sup"),  // 3 skipped: suppressed
                #"{"id":"a:b"}"#,  // 4 error: forbidden characters
                contact("c5"),  // 5 created
                contact("c0"),  // 6 skipped: already_enrolled (earlier in this command, another batch)
                "42",  // 7 error: not an object
                #"{"email":"x@y.z"}"#,  // 8 error: no id
                contact("c9"),  // 9 created
                contact("c9"),  // 10 skipped: duplicate in the same batch
            ]
            let r = try client.call(
                "bulkExecute",
                ["planId": "welcome", "contacts": "[" + contacts.joined(separator: ",") + "]", "batchSize": "3",
                 "variables": #"{"campaign":"spring"}"#])
            #expect(r.ok, "\(r.fields)")
            let o = r.object
            #expect(o["created"] as? Int == 4)
            #expect(o["skipped"] as? Int == 4)
            #expect(o["errors"] as? Int == 3)
            let skipped = (o["skippedContacts"] as? [[String: Any]] ?? []).map {
                "\($0["contactId"] as? String ?? "?"):\($0["reason"] as? String ?? "?")"
            }
            #expect(skipped == ["pre:already_enrolled", "sup:suppressed", "c0:already_enrolled", "c9:already_enrolled"])
            let errors = o["errorDetails"] as? [[String: Any]] ?? []
            #expect(errors.compactMap { $0["index"] as? Int } == [4, 7, 8])
            for e in errors {
                let err = e["error"] as? [String: Any]
                #expect(err?["code"] as? String == "bad_request", "\(e)")
                #expect((err?["message"] as? String)?.isEmpty == false)
            }

            // The runs exist, active, with the shared variables; one run per contact.
            let list = try client.call("listRuns", ["planId": "welcome", "limit": "100"])
            #expect(list.total == 5)
            let byContact = Dictionary(grouping: list.runs, by: { $0["contactId"] as? String ?? "" })
            #expect(Set(byContact.keys) == ["pre", "c0", "c1", "c5", "c9"])
            #expect(byContact.values.allSatisfy { $0.count == 1 })
            for run in list.runs where run["id"] as? String != pre {
                #expect(run["status"] as? String == "active")
                #expect((run["variables"] as? [String: Any])?["campaign"] as? String == "spring")
                #expect(run["startedAt"] as? String == r.commandMs.map(Timestamp.iso))
                #expect(run["stepsRemaining"] as? Int == 4)
            }
            // Run ids sort in the contacts' order.
            let created = list.runs.filter { $0["id"] as? String != pre }
                .sorted { ($0["id"] as? String ?? "") < ($1["id"] as? String ?? "") }
                .compactMap { $0["contactId"] as? String }
            #expect(created == ["c0", "c1", "c5", "c9"])
            // One run.created event per created run.
            let events = try env.stream("{0}:events").map(\.fields).filter { $0["type"] == "run.created" }
            #expect(events.count == 5)
            // The batch progress record is gone once the command completed.
            let progress = try env.redis.call(["KEYS", env.key("{0}:progress:*")]).array ?? []
            #expect(progress.isEmpty)
            let counts = try client.stats().object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts["active"] == 5)
        }
    }

    @Test func bulkExecuteInlinePlanAndDefaults() async throws {
        try await TestEngine.with { client, _ in
            let contacts = "[" + (0..<250).map { contact("k\($0)") }.joined(separator: ",") + "]"
            let r = try client.call("bulkExecute", ["plan": simplePlan("bulkinline"), "contacts": contacts])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["created"] as? Int == 250)
            #expect(r.object["skipped"] as? Int == 0)
            #expect(r.object["errors"] as? Int == 0)
            #expect((r.object["skippedContacts"] as? [Any])?.isEmpty == true)
            #expect((r.object["errorDetails"] as? [Any])?.isEmpty == true)
            #expect(try client.call("getPlan", ["planId": "bulkinline"]).ok)
            #expect(try client.call("listRuns", ["planId": "bulkinline"]).total == 250)

            // Again: every contact is enrolled now.
            let again = try client.call("bulkExecute", ["planId": "bulkinline", "contacts": contacts, "batchSize": "7"])
            #expect(again.object["created"] as? Int == 0)
            #expect(again.object["skipped"] as? Int == 250)
            #expect((again.object["skippedContacts"] as? [Any])?.count == 250)

            // An empty list is fine.
            let empty = try client.call("bulkExecute", ["planId": "bulkinline", "contacts": "[]"])
            #expect(empty.ok, "\(empty.fields)")
            #expect(empty.object["created"] as? Int == 0)
        }
    }

    @Test func bulkCancelCancelsOnlyMatchingOpenRuns() async throws {
        try await TestEngine.with { client, env in
            try client.register(simplePlan("A"))
            try client.register(simplePlan("B"))
            var a: [String] = []
            for i in 0..<6 { a.append(try client.run("A", "c\(i)")) }
            let pendingA = try client.run("A", "p", ["startTick": "5"])
            let b0 = try client.run("B", "c0")
            let b1 = try client.run("B", "c1")
            _ = try client.call("pauseRun", ["runId": a[1]])
            _ = try client.call("cancelRun", ["runId": a[2], "reason": "earlier"])
            let cancelledAudit = try client.call("getAudit", ["runId": a[2]]).array.count

            let r = try client.call("bulkCancel", ["filters": #"{"planId":"A"}"#, "reason": "Plan deprecated"])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["cancelled"] as? Int == 6)  // 4 active + 1 paused + 1 pending
            for id in a + [pendingA] {
                #expect(try client.getRun(id)["status"] as? String == "cancelled")
            }
            #expect(try client.getRun(b0)["status"] as? String == "active")
            #expect(try client.getRun(b1)["status"] as? String == "active")
            // The run cancelled earlier was not touched again.
            #expect(try client.call("getAudit", ["runId": a[2]]).array.count == cancelledAudit)
            let top = try #require(try client.call("getAudit", ["runId": a[0], "limit": "1"]).array.first as? [String: Any])
            #expect(top["reason"] as? String == "Plan deprecated")
            #expect(top["action"] as? String == "bulkCancel")

            // Again: nothing left to cancel.
            let again = try client.call("bulkCancel", ["filters": #"{"planId":"A"}"#, "reason": "again"])
            #expect(again.object["cancelled"] as? Int == 0)

            // Status and contact filters combined: only B's c1.
            let one = try client.call(
                "bulkCancel", ["filters": #"{"planId":"B","contactId":"c1","status":"active"}"#, "reason": "one"])
            #expect(one.object["cancelled"] as? Int == 1)
            #expect(try client.getRun(b1)["status"] as? String == "cancelled")
            #expect(try client.getRun(b0)["status"] as? String == "active")

            // A status filter of closed statuses cancels nothing.
            let closed = try client.call("bulkCancel", ["filters": #"{"status":["cancelled","completed"]}"#, "reason": "x"])
            #expect(closed.object["cancelled"] as? Int == 0)

            // A time filter alone.
            let started = try #require(try client.getRun(b0)["startedAt"] as? String)
            let byTime = try client.call("bulkCancel", ["filters": js(["startedAfter": started]), "reason": "time"])
            #expect(byTime.object["cancelled"] as? Int == 1)
            let counts = try client.stats().object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts["cancelled"] == 9)
            #expect(counts.values.reduce(0, +) == 9)
            #expect(try env.enrollments() == 0)
        }
    }

    @Test func bulkCancelManyRunsInSeveralBatches() async throws {
        try await TestEngine.with(configure: { $0.cancelBatchSize = 7 }) { client, _ in
            let contacts = "[" + (0..<40).map { contact("m\($0)") }.joined(separator: ",") + "]"
            let created = try client.call("bulkExecute", ["plan": simplePlan("many"), "contacts": contacts, "batchSize": "9"])
            #expect(created.object["created"] as? Int == 40)
            let r = try client.call("bulkCancel", ["filters": #"{"status":"active"}"#, "reason": "all"])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["cancelled"] as? Int == 40)
            #expect(try client.call("listRuns", ["status": "cancelled"]).total == 40)
            #expect(try client.call("listRuns", ["status": "active"]).total == 0)
        }
    }
}
