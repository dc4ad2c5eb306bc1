import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// SPEC 4: tick semantics, pending runs, branches, pause/resume across waits, enrollment after terminal runs,
/// and a tick over many runs.
@Suite(.serialized) struct TickTests {
    // MARK: SPEC 4's example

    @Test func exampleCompletesAfterSixTicks() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let run = try client.startRun("welcome", contact: ["id": "c1", "email": "c1@example.com"])
            #expect(run.status == "active")
            #expect(run.startTick == 0 && run.currentTick == 0)
            let id = try #require(run.id)
            let t = try client.advanceClock(6)
            #expect(t.tick == 6)
            // The run changed at ticks 1, 2, 5 and 6.
            #expect(t.stepped == 4)
            let r = try client.runView(id)
            #expect(r.status == "completed", "\(r.summary)")
            #expect(r.currentTick == 6)
            #expect(r.stepsCompleted == 4)
            #expect(r.isNull("currentStep"))
            #expect(r.stepsRemaining == 0)
            #expect(r.outcome == "finished")
            #expect(isISO(r.o["completedAt"]))
            #expect(r.isNull("error"))
            let stats = try client.stats().object
            #expect(stats["tick"] as? Int == 6)
            // Two action requests: intro at tick 1 with the contact's email filled in, nudge at tick 5.
            let actions = try env.actionRequests()
            #expect(actions.map { $0["step"] } == ["intro", "nudge"])
            #expect(actions.map { $0["tick"] } == ["1", "5"])
            #expect(paramsOf(actions[0])["to"] == .string("c1@example.com"))
            #expect(paramsOf(actions[0])["template"] == .string("intro"))
            let events = try env.runEvents().filter { $0["runId"] == id }
            #expect(events.map { $0["type"] ?? "" } == ["run.created", "run.step", "run.waiting", "run.step", "run.completed"])
            #expect(events.map { $0["tick"] ?? "" } == ["0", "1", "2", "5", "6"])
        }
    }

    @Test func exampleTickByTick() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try #require(try client.startRun("welcome", contact: ["id": "c1", "email": "c1@example.com"]).id)
            var r = try client.runView(id)
            #expect(r.stepsRemaining == 4 && r.stepsCompleted == 0 && r.currentStep == "intro")

            var t = try client.advanceClock()
            #expect(t.tick == 1 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.stepsCompleted == 1)
            #expect(r.currentStep == "pause")
            #expect(r.stepsRemaining == 3)
            #expect(r.currentTick == 1)

            t = try client.advanceClock()
            #expect(t.tick == 2 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "waiting", "\(r.summary)")
            #expect(r.currentStep == "pause")
            #expect(r.stepsCompleted == 1)
            #expect(r.stepsRemaining == 3)
            #expect(r.currentTick == 2)

            for expected in [3, 4] {
                t = try client.advanceClock()
                #expect(t.tick == expected && t.stepped == 0)
                r = try client.runView(id)
                #expect(r.status == "waiting" && r.currentTick == 2 && r.stepsCompleted == 1, "\(r.summary)")
            }

            t = try client.advanceClock()
            #expect(t.tick == 5 && t.stepped == 1)
            r = try client.runView(id)
            // The wait ends and the second action executes in the same tick.
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.stepsCompleted == 3)
            #expect(r.currentStep == "done")
            #expect(r.stepsRemaining == 1)
            #expect(r.currentTick == 5)

            t = try client.advanceClock()
            #expect(t.tick == 6 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "completed", "\(r.summary)")
            #expect(r.stepsCompleted == 4)
            #expect(r.currentTick == 6)
            #expect(r.isNull("currentStep"))
            #expect(r.stepsRemaining == 0)
            #expect(r.outcome == "finished")

            // Nothing is due any more.
            t = try client.advanceClock()
            #expect(t.tick == 7 && t.stepped == 0)
            #expect(try client.runView(id).currentTick == 6)
        }
    }

    @Test func executeAtLaterClockStartsThere() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            try client.advanceClock(2)
            let run = try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"])
            #expect(run.status == "active")
            #expect(run.startTick == 2 && run.currentTick == 2)
            let id = try #require(run.id)
            let t = try client.advanceClock()
            #expect(t.tick == 3 && t.stepped == 1)
            let r = try client.runView(id)
            #expect(r.stepsCompleted == 1 && r.currentTick == 3 && r.currentStep == "pause")
        }
    }

    // MARK: Pending runs

    @Test func pendingRunActivatesAtStartTick() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let run = try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"], startTick: 3)
            #expect(run.status == "pending", "\(run.summary)")
            #expect(run.startTick == 3)
            #expect(run.currentStep == "intro")
            #expect(run.stepsCompleted == 0)
            let id = try #require(run.id)

            for expected in [1, 2] {
                let t = try client.advanceClock()
                #expect(t.tick == expected && t.stepped == 0)
                #expect(try client.runView(id).status == "pending")
            }
            var t = try client.advanceClock()
            #expect(t.tick == 3 && t.stepped == 1)
            var r = try client.runView(id)
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.stepsCompleted == 0)
            #expect(r.currentStep == "intro")
            #expect(r.currentTick == 3)
            #expect(r.startTick == 3)
            let activated = try env.runEvents().filter { $0["runId"] == id && $0["type"] == "run.activated" }
            #expect(activated.count == 1)
            #expect(activated.first?["tick"] == "3")
            #expect(try env.actionRequests().isEmpty)

            t = try client.advanceClock()
            #expect(t.tick == 4 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.stepsCompleted == 1 && r.currentStep == "pause" && r.currentTick == 4, "\(r.summary)")
            let actions = try env.actionRequests()
            #expect(actions.count == 1)
            #expect(actions.first?["tick"] == "4")
        }
    }

    @Test func startTickNotLaterThanClockIsOrdinaryExecute() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            try client.advanceClock(2)
            for (contactId, s) in [("c1", 1), ("c2", 2)] {
                let run = try client.startRun("welcome", contact: ["id": contactId, "email": "x@y.z"], startTick: s)
                #expect(run.status == "active", "\(run.summary)")
                #expect(run.startTick == 2)
            }
        }
    }

    // MARK: Branches

    /// A branch `b` with one case (`yes`) and a default (`no`), for each op; two runs per op (true and false).
    @Test func branchOps() async throws {
        try await TestEngine.with { client, _ in
            // (op, value, variable value that makes it true, variable value that makes it false)
            let table: [(String, Any, Any, Any?)] = [
                ("eq", "gold", "gold", "silver"),
                ("ne", "gold", "silver", "gold"),
                ("lt", 5, 3, 5),
                ("lte", 5, 5, 6),
                ("gt", 5, 6, 5),
                ("gte", 5, 5, 4),
                ("in", ["a", "b"], "b", "c"),
                ("exists", NSNull(), "anything", nil),
            ]
            var expectations: [(String, String, String)] = []  // (runId, expected outcome, label)
            for (op, value, yes, no) in table {
                let planId = "b-\(op)"
                var when: [String: Any] = ["var": "tier", "op": op]
                if op != "exists" { when["value"] = value }
                try client.register(
                    planText(planId, [
                        ["id": "b", "type": "branch", "cases": [["when": when, "next": "yes"]], "default": "no"],
                        endStep("yes", "yes"), endStep("no", "no"),
                    ]))
                let r1 = try client.startRun(planId, contact: ["id": "t-\(op)"], variables: ["tier": yes])
                expectations.append((try #require(r1.id), "yes", "\(op) true"))
                let vars: [String: Any] = no.map { ["tier": $0] } ?? ["other": 1]
                let r2 = try client.startRun(planId, contact: ["id": "f-\(op)"], variables: vars)
                expectations.append((try #require(r2.id), "no", "\(op) false"))
            }
            // Strings compare with strings; contact attributes; a missing variable makes the case false.
            try client.register(
                planText("b-str", [
                    ["id": "b", "type": "branch", "cases": [["when": ["var": "name", "op": "lt", "value": "banana"], "next": "yes"]],
                     "default": "no"],
                    endStep("yes", "yes"), endStep("no", "no"),
                ]))
            expectations.append((try #require(try client.startRun("b-str", contact: ["id": "s1"], variables: ["name": "apple"]).id), "yes", "string lt true"))
            expectations.append((try #require(try client.startRun("b-str", contact: ["id": "s2"], variables: ["name": "cherry"]).id), "no", "string lt false"))
            expectations.append((try #require(try client.startRun("b-str", contact: ["id": "s3"]).id), "no", "missing var"))
            try client.register(
                planText("b-contact", [
                    ["id": "b", "type": "branch", "cases": [["when": ["var": "contact.country", "op": "eq", "value": "FR"], "next": "yes"]],
                     "default": "no"],
                    endStep("yes", "yes"), endStep("no", "no"),
                ]))
            expectations.append((try #require(try client.startRun("b-contact", contact: ["id": "k1", "country": "FR"]).id), "yes", "contact eq true"))
            expectations.append((try #require(try client.startRun("b-contact", contact: ["id": "k2", "country": "DE"]).id), "no", "contact eq false"))
            expectations.append((try #require(try client.startRun("b-contact", contact: ["id": "k3"]).id), "no", "contact missing"))
            // The first matching case wins, in order.
            try client.register(
                planText("b-first", [
                    ["id": "b", "type": "branch", "cases": [
                        ["when": ["var": "score", "op": "gt", "value": 10], "next": "high"],
                        ["when": ["var": "score", "op": "gt", "value": 0], "next": "low"],
                    ], "default": "zero"],
                    endStep("high", "high"), endStep("low", "low"), endStep("zero", "zero"),
                ]))
            expectations.append((try #require(try client.startRun("b-first", contact: ["id": "x1"], variables: ["score": 50]).id), "high", "first case"))
            expectations.append((try #require(try client.startRun("b-first", contact: ["id": "x2"], variables: ["score": 5]).id), "low", "second case"))
            expectations.append((try #require(try client.startRun("b-first", contact: ["id": "x3"], variables: ["score": -1]).id), "zero", "default"))

            let t = try client.advanceClock(2)
            #expect(t.stepped == 2 * expectations.count)
            for (id, outcome, label) in expectations {
                let r = try client.runView(id)
                #expect(r.status == "completed", "\(label): \(r.summary)")
                #expect(r.outcome == outcome, "\(label): \(r.summary)")
                #expect(r.stepsCompleted == 2, "\(label): \(r.summary)")
            }
        }
    }

    @Test func branchFailsClosed() async throws {
        try await TestEngine.with { client, env in
            try client.register(
                planText("b-eq", [
                    ["id": "b", "type": "branch", "cases": [["when": ["var": "tier", "op": "eq", "value": "gold"], "next": "yes"]],
                     "default": "no"],
                    endStep("yes", "yes"), endStep("no", "no"),
                ]))
            try client.register(
                planText("b-lt", [
                    ["id": "b", "type": "branch", "cases": [["when": ["var": "score", "op": "lt", "value": 5], "next": "yes"]],
                     "default": "no"],
                    endStep("yes", "yes"), endStep("no", "no"),
                ]))
            try client.register(
                planText("b-nodefault", [
                    ["id": "b", "type": "branch", "cases": [["when": ["var": "tier", "op": "eq", "value": "gold"], "next": "yes"]]],
                    endStep("yes", "yes"),
                ]))
            let mismatchEq = try #require(try client.startRun("b-eq", contact: ["id": "m1"], variables: ["tier": 5]).id)
            let mismatchLt = try #require(try client.startRun("b-lt", contact: ["id": "m2"], variables: ["score": "low"]).id)
            let noMatch = try #require(try client.startRun("b-nodefault", contact: ["id": "m3"], variables: ["tier": "silver"]).id)
            let t = try client.advanceClock()
            #expect(t.stepped == 3)
            for (id, label) in [(mismatchEq, "eq number vs string"), (mismatchLt, "lt string vs number"), (noMatch, "no match, no default")] {
                let r = try client.runView(id)
                #expect(r.status == "failed", "\(label): \(r.summary)")
                #expect(!(r.error ?? "").isEmpty, "\(label): \(r.summary)")
                #expect(r.isNull("currentStep"), "\(label)")
                #expect(r.stepsRemaining == 0, "\(label)")
                #expect(r.stepsCompleted == 0, "\(label)")
                #expect(r.currentTick == 1, "\(label)")
                #expect(isISO(r.o["completedAt"]), "\(label)")
                let failed = try env.runEvents().filter { $0["runId"] == id && $0["type"] == "run.failed" }
                #expect(failed.count == 1, "\(label)")
            }
            // Failed runs leave their enrollment: the contacts can run the plans again.
            for (planId, contactId) in [("b-eq", "m1"), ("b-lt", "m2"), ("b-nodefault", "m3")] {
                let again = try client.call("execute", ["planId": planId, "contact": js(["id": contactId])])
                #expect(again.ok, "\(again.fields)")
            }
        }
    }

    // MARK: Pause and resume across waits

    @Test func pausedPastWakeTickFiresOnFirstTickAfterResume() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try #require(try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"]).id)
            try client.advanceClock(2)  // waiting on "pause", wakes at 5
            let paused = try client.call("pauseRun", ["runId": id])
            #expect(paused.ok, "\(paused.fields)")
            #expect(RunView(paused.object).status == "paused")
            var t = try client.advanceClock(4)  // ticks 3…6: the wake tick passes while paused
            #expect(t.tick == 6 && t.stepped == 0)
            var r = try client.runView(id)
            #expect(r.status == "paused" && r.stepsCompleted == 1 && r.currentStep == "pause", "\(r.summary)")
            let resumed = try client.call("resumeRun", ["runId": id])
            #expect(resumed.ok, "\(resumed.fields)")
            r = RunView(resumed.object)
            #expect(r.status == "waiting", "\(r.summary)")
            #expect(r.currentTick == 6)
            t = try client.advanceClock()
            #expect(t.tick == 7 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.stepsCompleted == 3 && r.currentStep == "done" && r.currentTick == 7)
            t = try client.advanceClock()
            r = try client.runView(id)
            #expect(r.status == "completed" && r.currentTick == 8 && r.stepsCompleted == 4, "\(r.summary)")
        }
    }

    @Test func pauseAndResumeBeforeWakeKeepsTheTimer() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try #require(try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"]).id)
            try client.advanceClock(2)  // waiting, wakes at 5
            #expect(try client.call("pauseRun", ["runId": id]).ok)
            try client.advanceClock()  // 3
            #expect(try client.call("resumeRun", ["runId": id]).ok)
            var t = try client.advanceClock()  // 4
            #expect(t.stepped == 0)
            #expect(try client.runView(id).status == "waiting")
            t = try client.advanceClock()  // 5
            #expect(t.stepped == 1)
            let r = try client.runView(id)
            #expect(r.status == "active" && r.stepsCompleted == 3 && r.currentTick == 5, "\(r.summary)")
        }
    }

    @Test func pausedPendingRunActivatesAfterResume() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let id = try #require(try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"], startTick: 2).id)
            #expect(try client.call("pauseRun", ["runId": id]).ok)
            try client.advanceClock(3)
            #expect(try client.runView(id).status == "paused")
            let resumed = try client.call("resumeRun", ["runId": id])
            #expect(RunView(resumed.object).status == "pending", "\(resumed.fields)")
            let t = try client.advanceClock()
            #expect(t.tick == 4 && t.stepped == 1)
            let r = try client.runView(id)
            #expect(r.status == "active" && r.stepsCompleted == 0 && r.currentTick == 4, "\(r.summary)")
            let activated = try env.runEvents().filter { $0["runId"] == id && $0["type"] == "run.activated" }
            #expect(activated.map { $0["tick"] } == ["4"])
        }
    }

    // MARK: Enrollment

    @Test func completedRunReleasesEnrollment() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let first = try #require(try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"]).id)
            let dup = try client.call("execute", ["planId": "welcome", "contact": js(["id": "c1"])])
            #expect(dup.error == "already_enrolled", "\(dup.fields)")
            try client.advanceClock(6)
            #expect(try client.runView(first).status == "completed")
            let again = try client.call("execute", ["planId": "welcome", "contact": js(["id": "c1", "email": "x@y.z"])])
            #expect(again.ok, "\(again.fields)")
            let second = try #require(again.object["id"] as? String)
            #expect(second != first)
            #expect(second > first)
        }
    }

    // MARK: Many runs

    @Test func tickOverManyRuns() async throws {
        try await TestEngine.with { client, env in
            try client.register(
                planText("many", [actionStep("a1"), actionStep("a2"), actionStep("a3"), endStep("done", "ok")]))
            let n = 2000
            let contacts = (0..<n).map { ["id": "m\($0)", "email": "m\($0)@example.com"] }
            let bulk = try client.call("bulkExecute", ["planId": "many", "contacts": js(contacts)], timeout: 120)
            #expect(bulk.ok, "\(bulk.fields)")
            #expect(bulk.object["created"] as? Int == n)
            let t = try client.advanceClock(3)
            #expect(t.tick == 3)
            #expect(t.stepped == 3 * n)
            let events = try env.runEvents()
            #expect(events.count == n + 3 * n)
            #expect(events.filter { $0["type"] == "run.created" }.count == n)
            for tick in 1...3 {
                let steps = events.filter { $0["type"] == "run.step" && $0["tick"] == String(tick) }
                #expect(steps.count == n, "tick \(tick)")
                #expect(Set(steps.compactMap { $0["runId"] }).count == n, "tick \(tick)")
            }
            // Within a tick, runs step in run-id order.
            let tick1 = events.filter { $0["type"] == "run.step" && $0["tick"] == "1" }.compactMap { $0["runId"] }
            #expect(tick1 == tick1.sorted())
            let actions = try env.actionRequests()
            #expect(actions.count == 3 * n)
            let stats = try client.stats().object
            #expect(stats["tick"] as? Int == 3)
            #expect((stats["runsByStatus"] as? [String: Any])?["active"] as? Int == n)
            let listed = try client.call("listRuns", ["status": "active", "limit": "1"])
            #expect(listed.total == n)
            // Every run is on its fourth step.
            let runIds = Array(Set(events.compactMap { $0["runId"] }))
            let replies = try env.redis.pipeline(runIds.map { ["HGET", env.key("{0}:run:\($0)"), "n"] })
            #expect(replies.allSatisfy { $0.string == "3" })
            let t4 = try client.advanceClock()
            #expect(t4.stepped == n)
            #expect((try client.stats().object["runsByStatus"] as? [String: Any])?["completed"] as? Int == n)
        }
    }
}
