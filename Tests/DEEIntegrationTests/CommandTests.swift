import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// Every command of SPEC 6 in scope (not tick, signal, actionResult, replay), against the real engine.
@Suite(.serialized) struct CommandTests {
    // MARK: - Plans

    @Test func registerPlanVersionsByContent() async throws {
        try await TestEngine.with { client, _ in
            let first = try client.register(simplePlan("p1"))
            #expect(first.object["planId"] as? String == "p1")
            #expect(first.object["version"] as? Int == 1)
            #expect(first.object["created"] as? Bool == true)

            // Identical content: the same version, not created.
            let same = try client.register(simplePlan("p1"))
            #expect(same.object["version"] as? Int == 1)
            #expect(same.object["created"] as? Bool == false)

            // The same content with keys in another order and other whitespace is the same content.
            let reordered = """
                { "steps": [ {"type":"action","id":"first","params":{"template":"t"},"action":"send_email"},
                  {"outcome":"done","type":"end","id":"last"} ], "name": "p1", "id": "p1" }
                """
            let again = try client.register(reordered)
            #expect(again.object["version"] as? Int == 1)
            #expect(again.object["created"] as? Bool == false)

            // Changed content: a new version.
            let changed = try client.register(simplePlan("p1", outcome: "other"))
            #expect(changed.object["version"] as? Int == 2)
            #expect(changed.object["created"] as? Bool == true)

            // Going back to v1's content differs from the latest (v2): a new version (SPEC 2: A, B, A is 1, 2, 3).
            let back = try client.register(simplePlan("p1"))
            #expect(back.object["version"] as? Int == 3)
            #expect(back.object["created"] as? Bool == true)
        }
    }

    @Test func getPlanWithAndWithoutVersion() async throws {
        try await TestEngine.with { client, _ in
            try client.register(simplePlan("gp", outcome: "one"))
            try client.register(simplePlan("gp", outcome: "two"))

            let latest = try client.call("getPlan", ["planId": "gp"])
            #expect(latest.ok, "\(latest.fields)")
            #expect(latest.object["id"] as? String == "gp")
            #expect(latest.object["version"] as? Int == 2)
            let steps = latest.object["steps"] as? [[String: Any]] ?? []
            #expect(steps.count == 2)
            #expect(steps.last?["outcome"] as? String == "two")

            let v1 = try client.call("getPlan", ["planId": "gp", "version": "1"])
            #expect(v1.ok, "\(v1.fields)")
            #expect(v1.object["version"] as? Int == 1)
            #expect((v1.object["steps"] as? [[String: Any]])?.last?["outcome"] as? String == "one")

            let missing = try client.call("getPlan", ["planId": "nope"])
            #expect(!missing.ok)
            #expect(missing.error == "not_found")

            let noVersion = try client.call("getPlan", ["planId": "gp", "version": "3"])
            #expect(!noVersion.ok)
            #expect(noVersion.error == "not_found")
        }
    }

    @Test func listPlans() async throws {
        try await TestEngine.with { client, _ in
            let empty = try client.call("listPlans")
            #expect(empty.ok, "\(empty.fields)")
            #expect(empty.array.isEmpty)

            try client.register(simplePlan("alpha", name: "Alpha"))
            try client.register(simplePlan("beta", name: "Beta"))
            try client.register(simplePlan("beta", name: "Beta", outcome: "x"))
            let list = try client.call("listPlans")
            #expect(list.ok, "\(list.fields)")
            let items = list.array.compactMap { $0 as? [String: Any] }
            #expect(items.count == 2)
            let byId = Dictionary(uniqueKeysWithValues: items.map { ($0["planId"] as? String ?? "", $0) })
            #expect(byId["alpha"]?["name"] as? String == "Alpha")
            #expect(byId["alpha"]?["latestVersion"] as? Int == 1)
            #expect(byId["beta"]?["name"] as? String == "Beta")
            #expect(byId["beta"]?["latestVersion"] as? Int == 2)
        }
    }

    // MARK: - execute

    @Test func executeByPlanIdGivesTheFullRun() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let r = try client.call(
                "execute",
                ["planId": "welcome", "contact": contact("c1"), "variables": #"{"tier":"gold","n":3}"#])
            #expect(r.ok, "\(r.fields)")
            let run = r.object
            let id = try #require(run["id"] as? String)
            #expect(id.hasSuffix("-0"))
            #expect(run["planId"] as? String == "welcome")
            #expect(run["planVersion"] as? Int == 1)
            #expect(run["contactId"] as? String == "c1")
            #expect(run["status"] as? String == "active")
            #expect(run["currentStep"] as? String == "intro")
            #expect(run["stepsCompleted"] as? Int == 0)
            #expect(run["stepsRemaining"] as? Int == 4)
            #expect(run["startTick"] as? Int == 0)
            #expect(run["currentTick"] as? Int == 0)
            #expect(isISO(run["startedAt"]))
            #expect(run["startedAt"] as? String == r.commandMs.map(Timestamp.iso))
            #expect(run["completedAt"] is NSNull)
            #expect(run["outcome"] is NSNull)
            #expect(run["error"] is NSNull)
            let vars = run["variables"] as? [String: Any]
            #expect(vars?["tier"] as? String == "gold")
            #expect(vars?["n"] as? Int == 3)

            // getRun gives the same object.
            let got = try client.call("getRun", ["runId": id])
            #expect(got.ok)
            #expect(got.result == r.result)
        }
    }

    @Test func executeInlinePlanRegistersIt() async throws {
        try await TestEngine.with { client, _ in
            let r = try client.call("execute", ["plan": simplePlan("inline1"), "contact": contact("c1")])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["planId"] as? String == "inline1")
            #expect(r.object["planVersion"] as? Int == 1)
            #expect(r.object["status"] as? String == "active")
            #expect(r.object["stepsRemaining"] as? Int == 2)

            let plan = try client.call("getPlan", ["planId": "inline1"])
            #expect(plan.ok, "\(plan.fields)")
            #expect(plan.object["version"] as? Int == 1)
            let plans = try client.call("listPlans")
            #expect(plans.array.compactMap { ($0 as? [String: Any])?["planId"] as? String } == ["inline1"])

            // The same inline plan again (another contact) stays on version 1.
            let r2 = try client.call("execute", ["plan": simplePlan("inline1"), "contact": contact("c2")])
            #expect(r2.object["planVersion"] as? Int == 1)
            // Changed inline content: version 2.
            let r3 = try client.call("execute", ["plan": simplePlan("inline1", outcome: "z"), "contact": contact("c3")])
            #expect(r3.object["planVersion"] as? Int == 2)
        }
    }

    @Test func executeWithPlanVersion() async throws {
        try await TestEngine.with { client, _ in
            try client.register(simplePlan("pv", outcome: "a"))
            try client.register(simplePlan("pv", outcome: "b"))
            let latest = try client.call("execute", ["planId": "pv", "contact": contact("c1")])
            #expect(latest.object["planVersion"] as? Int == 2)
            let old = try client.call("execute", ["planId": "pv", "planVersion": "1", "contact": contact("c2")])
            #expect(old.ok, "\(old.fields)")
            #expect(old.object["planVersion"] as? Int == 1)
            let none = try client.call("execute", ["planId": "pv", "planVersion": "7", "contact": contact("c3")])
            #expect(none.error == "not_found")
        }
    }

    @Test func executeWithFutureStartTickIsPending() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let r = try client.call("execute", ["planId": "welcome", "contact": contact("c1"), "startTick": "5"])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["status"] as? String == "pending")
            #expect(r.object["startTick"] as? Int == 5)
            #expect(r.object["currentTick"] as? Int == 0)
            #expect(r.object["currentStep"] as? String == "intro")
            let id = try #require(r.object["id"] as? String)
            #expect(try client.getRun(id)["status"] as? String == "pending")

            // startTick at (or before) the clock: an ordinary execute.
            let now = try client.call("execute", ["planId": "welcome", "contact": contact("c2"), "startTick": "0"])
            #expect(now.object["status"] as? String == "active")
            #expect(now.object["startTick"] as? Int == 0)

            // A pending run holds the enrollment too.
            let again = try client.call("execute", ["planId": "welcome", "contact": contact("c1")])
            #expect(again.error == "already_enrolled")
        }
    }

    @Test func argumentsAsArgsJSON() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let r = try client.call(
                "execute", ["args": js(["planId": "welcome", "contact": ["id": "c1", "email": "x@y.z"], "startTick": 3])])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["status"] as? String == "pending")
            let list = try client.call("listRuns", ["args": #"{"status":["pending"],"limit":2}"#])
            #expect(list.ok, "\(list.fields)")
            #expect(list.total == 1)
        }
    }

    // MARK: - pause, resume, cancel

    @Test func pauseResumeCancel() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")

            let paused = try client.call("pauseRun", ["runId": id, "reason": "holiday"])
            #expect(paused.ok, "\(paused.fields)")
            #expect(paused.object["status"] as? String == "paused")
            #expect(paused.object["currentStep"] as? String == "intro")
            #expect(try client.getRun(id)["status"] as? String == "paused")

            let resumed = try client.call("resumeRun", ["runId": id])
            #expect(resumed.ok, "\(resumed.fields)")
            #expect(resumed.object["status"] as? String == "active")

            let cancelled = try client.call("cancelRun", ["runId": id, "reason": "Contact requested removal"])
            #expect(cancelled.ok, "\(cancelled.fields)")
            let run = cancelled.object
            #expect(run["status"] as? String == "cancelled")
            #expect(run["currentStep"] is NSNull)
            #expect(run["stepsRemaining"] as? Int == 0)
            #expect(isISO(run["completedAt"]))
            #expect(run["completedAt"] as? String == cancelled.commandMs.map(Timestamp.iso))

            // The reason is in the audit log.
            let audit = try client.call("getAudit", ["runId": id])
            #expect(audit.ok, "\(audit.fields)")
            let entries = audit.array.compactMap { $0 as? [String: Any] }
            #expect(entries.count == 4)
            #expect(entries.first?["action"] as? String == "cancel")
            #expect(entries.first?["reason"] as? String == "Contact requested removal")
            #expect(entries.contains { $0["reason"] as? String == "holiday" })

            // The enrollment is released: the contact can be enrolled again.
            let again = try client.call("execute", ["planId": "welcome", "contact": contact("c1")])
            #expect(again.ok, "\(again.fields)")
            #expect(again.object["id"] as? String != id)
            #expect(try env.enrolled("welcome", "c1") == again.object["id"] as? String)
        }
    }

    @Test func pauseAndResumeAPendingRun() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1", ["startTick": "10"])
            let paused = try client.call("pauseRun", ["runId": id])
            #expect(paused.object["status"] as? String == "paused")
            let resumed = try client.call("resumeRun", ["runId": id])
            #expect(resumed.object["status"] as? String == "pending")
            #expect(resumed.object["startTick"] as? Int == 10)
            // A paused run can be cancelled.
            _ = try client.call("pauseRun", ["runId": id])
            let cancelled = try client.call("cancelRun", ["runId": id, "reason": "r"])
            #expect(cancelled.object["status"] as? String == "cancelled")
        }
    }

    // MARK: - suppress, unsuppress

    @Test func suppressCancelsOpenRunsAndBlocksEnrollment() async throws {
        try await TestEngine.with { client, env in
            try client.register(simplePlan("pa"))
            try client.register(simplePlan("pb"))
            let a = try client.run("pa", "x")
            let b = try client.run("pb", "x")
            let other = try client.run("pa", "y")

            let s = try client.call("suppress", ["contactId": "x", "reason": "complaint"])
            #expect(s.ok, "\(s.fields)")
            #expect(s.object["cancelled"] as? Int == 2)
            #expect(try client.getRun(a)["status"] as? String == "cancelled")
            #expect(try client.getRun(b)["status"] as? String == "cancelled")
            #expect(try client.getRun(other)["status"] as? String == "active")
            #expect(try env.redis.call(["HEXISTS", env.key("{0}:suppressed"), "x"]).int == 1)
            let audit = try client.call("getAudit", ["runId": a]).array.compactMap { $0 as? [String: Any] }
            #expect(audit.first?["reason"] as? String == "complaint")

            // Suppressing again cancels nothing more.
            #expect(try client.call("suppress", ["contactId": "x"]).object["cancelled"] as? Int == 0)

            let refused = try client.call("execute", ["planId": "pa", "contact": contact("x")])
            #expect(!refused.ok)
            #expect(refused.error == "suppressed")

            let bulk = try client.call("bulkExecute", ["planId": "pb", "contacts": "[\(contact("x")),\(contact("z"))]"])
            #expect(bulk.ok, "\(bulk.fields)")
            #expect(bulk.object["created"] as? Int == 1)
            #expect(bulk.object["skipped"] as? Int == 1)
            let skipped = bulk.object["skippedContacts"] as? [[String: Any]] ?? []
            #expect(skipped.count == 1)
            #expect(skipped.first?["contactId"] as? String == "x")
            #expect(skipped.first?["reason"] as? String == "suppressed")

            let u = try client.call("unsuppress", ["contactId": "x"])
            #expect(u.ok, "\(u.fields)")
            #expect(u.result == "{}")
            #expect(try env.redis.call(["HEXISTS", env.key("{0}:suppressed"), "x"]).int == 0)
            let ok = try client.call("execute", ["planId": "pa", "contact": contact("x")])
            #expect(ok.ok, "\(ok.fields)")
            #expect(ok.object["status"] as? String == "active")
        }
    }

    // MARK: - audit

    @Test func getAuditNewestFirstWithLimit() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")
            _ = try client.call("pauseRun", ["runId": id])
            _ = try client.call("resumeRun", ["runId": id])
            _ = try client.call("cancelRun", ["runId": id, "reason": "done"])

            let all = try client.call("getAudit", ["runId": id])
            #expect(all.ok, "\(all.fields)")
            let entries = all.array.compactMap { $0 as? [String: Any] }
            #expect(entries.map { $0["action"] as? String ?? "" } == ["cancel", "resume", "pause", "execute"])
            for e in entries {
                #expect(e["runId"] as? String == id)
                #expect(isISO(e["at"]))
                #expect(e["checksum"] is String)
                #expect(e["commandId"] is String)
                #expect(e["requestId"] is String)
            }

            let two = try client.call("getAudit", ["runId": id, "limit": "2"])
            #expect(two.ok, "\(two.fields)")
            let twoEntries = two.array.compactMap { $0 as? [String: Any] }
            #expect(twoEntries.map { $0["action"] as? String ?? "" } == ["cancel", "resume"])

            let missing = try client.call("getAudit", ["runId": "0000000000001-000000-00000-0"])
            #expect(missing.error == "not_found")
        }
    }

    @Test func auditActorAndRequestId() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")
            let cmd = try client.sendRaw([
                ("type", "pauseRun"), ("runId", id), ("actor", "ops@example.com"), ("requestId", "pause-1"),
                ("replyTo", client.replyStream),
            ])
            let r = try client.reply(to: cmd)
            #expect(r.ok, "\(r.fields)")
            #expect(r.requestId == "pause-1")
            #expect(r.commandId == cmd)
            #expect(r.fields["type"] == "pauseRun")
            let top = try #require(try client.call("getAudit", ["runId": id, "limit": "1"]).array.first as? [String: Any])
            #expect(top["action"] as? String == "pause")
            #expect(top["actor"] as? String == "ops@example.com")
            #expect(top["requestId"] as? String == "pause-1")
            #expect(top["commandId"] as? String == cmd)
        }
    }

    @Test func verifyAuditDetectsTamperingAndTruncation() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let a = try client.run("welcome", "a")
            let b = try client.run("welcome", "b")
            let c = try client.run("welcome", "c")
            for id in [a, b, c] {
                _ = try client.call("pauseRun", ["runId": id, "reason": "r1"])
                _ = try client.call("resumeRun", ["runId": id])
            }

            let ok = try client.call("verifyAudit", ["runId": a])
            #expect(ok.ok, "\(ok.fields)")
            #expect(ok.object["valid"] as? Bool == true)
            #expect(ok.object["entries"] as? Int == 3)
            #expect(ok.object["brokenAt"] == nil)

            // Edit entry 1 of run a (its reason).
            let key = env.key("{0}:audit:\(a)")
            let original = try #require(try env.redis.call(["LINDEX", key, "1"]).string)
            let edited = original.replacingOccurrences(of: "\"r1\"", with: "\"r2\"")
            #expect(edited != original)
            try env.redis.call(["LSET", key, "1", edited])
            let tampered = try client.call("verifyAudit", ["runId": a])
            #expect(tampered.ok, "\(tampered.fields)")
            #expect(tampered.object["valid"] as? Bool == false)
            #expect(tampered.object["brokenAt"] as? Int == 1)

            // Remove the last entry of run b.
            try env.redis.call(["RPOP", env.key("{0}:audit:\(b)")])
            let truncated = try client.call("verifyAudit", ["runId": b])
            #expect(truncated.object["valid"] as? Bool == false)
            #expect(truncated.object["brokenAt"] as? Int == 2)

            // Remove the middle entry of run c.
            let mid = try #require(try env.redis.call(["LINDEX", env.key("{0}:audit:\(c)"), "1"]).string)
            try env.redis.call(["LREM", env.key("{0}:audit:\(c)"), "1", mid])
            let removed = try client.call("verifyAudit", ["runId": c])
            #expect(removed.object["valid"] as? Bool == false)
            #expect(removed.object["brokenAt"] as? Int == 1)

            // Untouched runs stay valid.
            let fresh = try client.run("welcome", "d")
            #expect(try client.call("verifyAudit", ["runId": fresh]).object["valid"] as? Bool == true)
        }
    }

    // MARK: - stats

    @Test func statsCountsRunsAndPlans() async throws {
        try await TestEngine.with { client, _ in
            let empty = try client.stats()
            #expect(empty.ok, "\(empty.fields)")
            #expect(empty.object["tick"] as? Int == 0)
            #expect(empty.object["plans"] as? Int == 0)
            #expect(empty.object["partitions"] as? Int == 1)
            let emptyCounts = empty.object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(emptyCounts.values.reduce(0, +) == 0)

            try client.register(examplePlan)
            try client.register(simplePlan("other"))
            let a = try client.run("welcome", "a")
            let b = try client.run("welcome", "b")
            _ = try client.run("welcome", "c")
            _ = try client.run("other", "a", ["startTick": "4"])
            _ = try client.call("pauseRun", ["runId": a])
            _ = try client.call("cancelRun", ["runId": b, "reason": "x"])

            let s = try client.stats()
            #expect(s.object["plans"] as? Int == 2)
            #expect(s.object["partitions"] as? Int == 1)
            #expect(s.object["tick"] as? Int == 0)
            let counts = s.object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts["active"] == 1)
            #expect(counts["paused"] == 1)
            #expect(counts["cancelled"] == 1)
            #expect(counts["pending"] == 1)
            #expect(counts["completed"] ?? 0 == 0)
            #expect(counts["failed"] ?? 0 == 0)
            #expect(counts["waiting"] ?? 0 == 0)
        }
    }
}
