import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// SPEC 2 and 7: action requests, params templating, awaited actions with retries, timeouts and onFailure.
@Suite(.serialized) struct ActionTests {
    // MARK: Templating

    @Test func paramsTemplating() async throws {
        try await TestEngine.with { client, env in
            try client.register(
                planText("tpl", [
                    actionStep("send", "send_sms", params: [
                        "to": "{{contact.email}}",
                        "age": "{{contact.age}}",
                        "vip": "{{contact.vip}}",
                        "greeting": "Hi {{contact.name}}, you are {{contact.age}}",
                        "code": "{{vars.code}}",
                        "count": "{{vars.count}}",
                        "nested": ["list": ["{{vars.flag}}", "static", 3]],
                        "plain": "no placeholder",
                    ]),
                    endStep("done", "sent"),
                ]))
            let run = try client.startRun(
                "tpl", contact: ["id": "c1", "email": "ann@example.com", "name": "Ann", "age": 42, "vip": true],
                variables: ["code": "X1", "count": 2.5, "flag": false])
            let id = try #require(run.id)
            let t = try client.advanceClock()
            #expect(t.stepped == 1)
            let actions = try env.actionRequests()
            try #require(actions.count == 1)
            let a = actions[0]
            #expect(a["runId"] == id)
            #expect(a["contactId"] == "c1")
            #expect(a["planId"] == "tpl")
            #expect(a["step"] == "send")
            #expect(a["action"] == "send_sms")
            #expect(a["attempt"] == "1")
            #expect(a["tick"] == "1")
            #expect(isHex32(a["idempotencyKey"]), "\(a)")
            #expect(a["idempotencyKey"] == ActionRequest.key(runId: id, step: "send", tick: 1, attempt: 1))
            let p = paramsOf(a)
            #expect(p["to"] == .string("ann@example.com"))
            // A whole-string placeholder keeps the value's JSON type.
            #expect(p["age"] == .int(42), "\(a["params"] ?? "")")
            #expect(p["vip"] == .bool(true), "\(a["params"] ?? "")")
            #expect(p["count"]?.number == 2.5, "\(a["params"] ?? "")")
            #expect(p["code"] == .string("X1"))
            // Inside a longer string, the text.
            #expect(p["greeting"] == .string("Hi Ann, you are 42"))
            #expect(p["nested"]?.object?["list"] == .array([.bool(false), .string("static"), .int(3)]))
            #expect(p["plain"] == .string("no placeholder"))
            let r = try client.runView(id)
            #expect(r.status == "active" && r.currentStep == "done" && r.stepsCompleted == 1, "\(r.summary)")
        }
    }

    @Test func missingPlaceholderFailsWithoutPublishing() async throws {
        try await TestEngine.with { client, env in
            try client.register(
                planText("miss-c", [actionStep("send", params: ["to": "{{contact.phone}}"]), endStep("done", "sent")]))
            try client.register(
                planText("miss-v", [actionStep("send", params: ["body": "Your code is {{vars.code}}"]), endStep("done", "sent")]))
            let a = try #require(try client.startRun("miss-c", contact: ["id": "c1", "email": "x@y.z"]).id)
            let b = try #require(try client.startRun("miss-v", contact: ["id": "c2"], variables: ["other": 1]).id)
            let t = try client.advanceClock()
            #expect(t.stepped == 2)
            for (id, label) in [(a, "contact.phone"), (b, "vars.code")] {
                let r = try client.runView(id)
                #expect(r.status == "failed", "\(label): \(r.summary)")
                #expect((r.error ?? "").contains(label), "\(label): \(r.summary)")
                #expect(r.isNull("currentStep"))
                #expect(r.stepsRemaining == 0)
                #expect(r.stepsCompleted == 0)
                #expect(isISO(r.o["completedAt"]))
                let last = try env.runEvents().last { $0["runId"] == id }
                #expect(last?["type"] == "run.failed", "\(label)")
            }
            #expect(try env.xlen("{0}:actions") == 0)
            // Failed runs leave `enroll`: the contacts can run the plans again.
            let again = try client.call("execute", ["planId": "miss-c", "contact": js(["id": "c1", "phone": "+1555"])])
            #expect(again.ok, "\(again.fields)")
            let againB = try client.call("execute", ["planId": "miss-v", "contact": js(["id": "c2"]), "variables": js(["code": "9"])])
            #expect(againB.ok, "\(againB.fields)")
            try client.advanceClock()
            let sent = try env.actionRequests()
            #expect(sent.count == 2)
            #expect(Set(sent.compactMap { paramsOf($0)["to"]?.string ?? paramsOf($0)["body"]?.string }) == ["+1555", "Your code is 9"])
        }
    }

    // MARK: Awaited actions

    /// send (awaited, timeout 2, retries 1, onFailure fallback) → sent; fallback → gave_up.
    static let awaitedPlan = planText("aw", [
        actionStep("send", params: ["to": "{{contact.email}}"], extra: ["await": true, "timeoutTicks": 2, "retries": 1, "onFailure": "fallback"]),
        endStep("sent", "sent"),
        endStep("fallback", "gave_up"),
    ])
    /// The same without onFailure.
    static let strictPlan = planText("aws", [
        actionStep("send", extra: ["await": true, "timeoutTicks": 2, "retries": 1]),
        endStep("sent", "sent"),
    ])

    @Test func awaitedActionOk() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.awaitedPlan)
            let id = try #require(try client.startRun("aw", contact: ["id": "c1", "email": "x@y.z"], variables: ["a": 1]).id)
            var t = try client.advanceClock()
            #expect(t.stepped == 1)
            var r = try client.runView(id)
            #expect(r.status == "waiting" && r.currentStep == "send" && r.stepsCompleted == 0, "\(r.summary)")
            let req = try #require(try env.actionRequests().first)
            #expect(req["attempt"] == "1" && req["tick"] == "1")
            let key = try #require(req["idempotencyKey"])
            // A result with another key is ignored.
            let wrong = try client.sendActionResult(id, key: String(repeating: "0", count: 32), ok: true)
            #expect(RunView(wrong.object).status == "waiting", "\(wrong.fields)")
            let res = try client.sendActionResult(id, key: key, ok: true, data: ["messageId": "m1", "a": 2])
            #expect(res.ok, "\(res.fields)")
            r = RunView(res.object)
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.currentStep == "sent")
            #expect(r.stepsCompleted == 1)
            #expect(r.currentTick == 1)
            #expect(r.variables["messageId"] as? String == "m1")
            #expect(r.variables["a"] as? Int == 2)
            t = try client.advanceClock()
            #expect(t.tick == 2 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "completed" && r.outcome == "sent" && r.stepsCompleted == 2, "\(r.summary)")
            // The same result again changes nothing.
            let again = try client.sendActionResult(id, key: key, ok: true)
            #expect(RunView(again.object).status == "completed", "\(again.fields)")
            #expect(try env.actionRequests().count == 1)
        }
    }

    @Test func awaitedActionFailureRetriesThenOnFailure() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.awaitedPlan)
            let id = try #require(try client.startRun("aw", contact: ["id": "c1", "email": "x@y.z"]).id)
            try client.advanceClock()
            let k1 = try #require(try env.actionRequests().first?["idempotencyKey"])
            var res = try client.sendActionResult(id, key: k1, ok: false, error: "smtp 451")
            #expect(res.ok, "\(res.fields)")
            var r = RunView(res.object)
            #expect(r.status == "active" && r.currentStep == "send" && r.stepsCompleted == 0, "\(r.summary)")
            // Dispatched again on the next tick, attempt 2, with another key.
            var t = try client.advanceClock()
            #expect(t.tick == 2 && t.stepped == 1)
            var reqs = try env.actionRequests()
            try #require(reqs.count == 2)
            #expect(reqs[1]["attempt"] == "2" && reqs[1]["tick"] == "2" && reqs[1]["step"] == "send")
            let k2 = try #require(reqs[1]["idempotencyKey"])
            #expect(k2 != k1 && isHex32(k2))
            #expect(k2 == ActionRequest.key(runId: id, step: "send", tick: 2, attempt: 2))
            #expect(try client.runView(id).status == "waiting")
            // The old key no longer counts.
            res = try client.sendActionResult(id, key: k1, ok: false)
            #expect(RunView(res.object).status == "waiting", "\(res.fields)")
            res = try client.sendActionResult(id, key: k2, ok: false, error: "smtp 550")
            r = RunView(res.object)
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.currentStep == "fallback")
            #expect(r.stepsCompleted == 1)
            t = try client.advanceClock()
            #expect(t.tick == 3 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "completed" && r.outcome == "gave_up" && r.stepsCompleted == 2 && r.currentTick == 3, "\(r.summary)")
            reqs = try env.actionRequests()
            #expect(reqs.count == 2)
        }
    }

    @Test func awaitedActionFailurePastRetriesWithoutOnFailureFails() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.strictPlan)
            let id = try #require(try client.startRun("aws", contact: ["id": "c1"]).id)
            try client.advanceClock()
            let k1 = try #require(try env.actionRequests().first?["idempotencyKey"])
            _ = try client.sendActionResult(id, key: k1, ok: false, error: "boom")
            try client.advanceClock()
            let k2 = try #require(try env.actionRequests().last?["idempotencyKey"])
            #expect(k2 != k1)
            let res = try client.sendActionResult(id, key: k2, ok: false, error: "boom again")
            let r = RunView(res.object)
            #expect(r.status == "failed", "\(r.summary)")
            #expect(!(r.error ?? "").isEmpty)
            #expect(r.isNull("currentStep"))
            #expect(r.stepsRemaining == 0)
            #expect(isISO(r.o["completedAt"]))
            let last = try env.runEvents().last { $0["runId"] == id }
            #expect(last?["type"] == "run.failed")
            // The contact can enroll again.
            #expect(try client.call("execute", ["planId": "aws", "contact": js(["id": "c1"])]).ok)
        }
    }

    @Test func awaitedActionTimeoutCountsAsFailure() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.awaitedPlan)
            try client.register(Self.strictPlan)
            let a = try #require(try client.startRun("aw", contact: ["id": "c1", "email": "x@y.z"]).id)
            let b = try #require(try client.startRun("aws", contact: ["id": "c2"]).id)
            try client.advanceClock(2)  // attempt 1 at tick 1, times out at 3
            #expect(try client.runView(a).status == "waiting")
            var t = try client.advanceClock()  // 3: timed out, attempt 2 is dispatched on the next tick
            #expect(t.stepped == 2)
            var r = try client.runView(a)
            #expect(r.status == "active" && r.currentStep == "send" && r.stepsCompleted == 0, "\(r.summary)")
            t = try client.advanceClock()  // 4
            #expect(t.stepped == 2)
            let reqs = try env.actionRequests().filter { $0["runId"] == a }
            #expect(reqs.map { $0["attempt"] } == ["1", "2"])
            #expect(reqs.map { $0["tick"] } == ["1", "4"])
            #expect(try client.runView(a).status == "waiting")
            try client.advanceClock()  // 5
            #expect(try client.runView(a).status == "waiting")
            t = try client.advanceClock()  // 6: the second timeout goes to onFailure (which is an end: completes at 6)
            #expect(t.stepped == 2)
            r = try client.runView(a)
            #expect(r.status == "completed" && r.outcome == "gave_up" && r.currentTick == 6, "\(r.summary)")
            r = try client.runView(b)
            #expect(r.status == "failed" && r.currentTick == 6 && !(r.error ?? "").isEmpty, "\(r.summary)")
            #expect(try env.actionRequests().filter { $0["runId"] == b }.map { $0["attempt"] } == ["1", "2"])
        }
    }

    @Test func pausedRunKeepsActionResultUntilResume() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.awaitedPlan)
            let id = try #require(try client.startRun("aw", contact: ["id": "c1", "email": "x@y.z"]).id)
            try client.advanceClock()
            let key = try #require(try env.actionRequests().first?["idempotencyKey"])
            #expect(try client.call("pauseRun", ["runId": id]).ok)
            let res = try client.sendActionResult(id, key: key, ok: true, data: ["m": 1])
            #expect(res.ok, "\(res.fields)")
            #expect(RunView(res.object).status == "paused")
            try client.advanceClock(5)  // the timeout passes while paused
            let resumed = RunView(try client.call("resumeRun", ["runId": id]).object)
            #expect(resumed.status == "active" && resumed.currentStep == "sent" && resumed.variables["m"] as? Int == 1, "\(resumed.summary)")
            try client.advanceClock()
            let r = try client.runView(id)
            #expect(r.status == "completed" && r.outcome == "sent", "\(r.summary)")
            #expect(try env.actionRequests().count == 1)
        }
    }
}
