import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// SPEC 6: hostile numbers cannot stop or wedge the engine. Every number of a plan or a command is a whole
/// number from 0 to 2,147,483,647 (or a narrower range); outside it the command is refused naming the field or
/// path, and the largest accepted values tick without trapping.
@Suite(.serialized) struct HostileInputTests {
    /// Numbers outside every range a plan or command accepts, as JSON text.
    static let outOfRange = [
        "-1", "2147483648", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
        "99999999999999999999999999", "1e308", "1.5", #""3""#,
    ]

    static func plan(_ id: String, ticks: String) -> String {
        #"{"id":""# + id + #"","steps":[{"id":"hello","type":"action","action":"send_email"},"#
            + #"{"id":"pause","type":"wait","ticks":"# + ticks + #"},{"id":"done","type":"end"}]}"#
    }

    @Test func theBugReportsPlanIsRefusedAndTheEngineAnswers() async throws {
        try await TestEngine.with { client, env in
            // The report: ticks 9223372036854775807, executed and ticked, killed the process on every restart.
            let huge = Self.plan("huge", ticks: "9223372036854775807")
            let r = try ErrorTests.rejected(
                client, env, [("type", "registerPlan"), ("plan", huge)], code: "plan_invalid", field: "steps[1].ticks")
            #expect(r.message?.contains("2147483647") == true, "\(r.fields)")
            // Inline in execute: refused the same way, nothing registered, no run.
            _ = try ErrorTests.rejected(
                client, env, [("type", "execute"), ("plan", huge), ("contact", contact("c1"))], code: "plan_invalid",
                field: "steps[1].ticks")
            #expect(try client.call("getPlan", ["planId": "huge"]).error == "not_found")
            for ticks in Self.outOfRange + ["0", "-0"] {
                _ = try ErrorTests.rejected(
                    client, env, [("type", "registerPlan"), ("plan", Self.plan("bad", ticks: ticks))], code: "plan_invalid",
                    field: "steps[1].ticks")
            }
            for timeout in Self.outOfRange + ["0"] {
                let text = #"{"id":"bad","steps":[{"id":"listen","type":"waitForSignal","signal":"s","timeoutTicks":"#
                    + timeout + #"},{"id":"done","type":"end"}]}"#
                _ = try ErrorTests.rejected(
                    client, env, [("type", "registerPlan"), ("plan", text)], code: "plan_invalid",
                    field: "steps[0].timeoutTicks")
            }
            let t = try client.advanceClock(2)
            #expect(t.tick == 2)
            #expect(try client.stats().ok)
        }
    }

    @Test func theLargestTicksAreAcceptedAndTickWithoutTrapping() async throws {
        try await TestEngine.with { client, env in
            let text = #"""
                {"id":"top","steps":[
                  {"id":"hello","type":"action","action":"send_email","await":true,"timeoutTicks":2147483647},
                  {"id":"pause","type":"wait","ticks":2147483647},
                  {"id":"listen","type":"waitForSignal","signal":"go","timeoutTicks":2147483647},
                  {"id":"done","type":"end"}]}
                """#
            let reg = try client.call("registerPlan", ["plan": text])
            #expect(reg.ok, "\(reg.fields)")
            let plain = Self.plan("plain", ticks: "2147483647")
            #expect(try client.call("registerPlan", ["plan": plain]).ok)
            let awaited = try #require(try client.startRun("top", contact: ["id": "c1"]).id)
            let waiting = try #require(try client.startRun("plain", contact: ["id": "c2"]).id)
            let t = try client.advanceClock(2)
            #expect(t.tick == 2)
            #expect(t.stepped == 3, "ticks 1 (both actions) and 2 (the wait begins)")
            let a = try client.runView(awaited)
            #expect(a.status == "waiting" && a.currentStep == "hello", "\(a.summary)")
            let w = try client.runView(waiting)
            #expect(w.status == "waiting" && w.currentStep == "pause", "\(w.summary)")
            // The engine still answers, and goes on ticking.
            #expect(try client.stats().object["tick"] as? Int == 2)
            let more = try client.advanceClock(100_000)
            #expect(more.tick == 100_002)
            #expect(more.stepped == 0)
            #expect(try client.runView(waiting).status == "waiting")
            // The awaited action's result, 100,000 ticks later, moves it on.
            let key = try #require(try env.actionRequests().first { $0["runId"] == awaited }?["idempotencyKey"])
            let r = try client.sendActionResult(awaited, key: key, ok: true)
            #expect(r.ok, "\(r.fields)")
            #expect(try client.advanceClock(1).stepped == 1)
            #expect(try client.runView(awaited).currentStep == "pause")
        }
    }

    @Test func startTickAtTheLargestValue() async throws {
        try await TestEngine.with { client, env in
            try client.register(simplePlan("later"))
            let run = try client.startRun("later", contact: ["id": "c1"], startTick: 2_147_483_647)
            #expect(run.status == "pending", "\(run.summary)")
            #expect(run.startTick == 2_147_483_647)
            let id = try #require(run.id)
            let t = try client.advanceClock(100_000)
            #expect(t.tick == 100_000)
            #expect(t.stepped == 0)
            #expect(try client.runView(id).status == "pending")
            #expect(try client.advanceClock(100_000).tick == 200_000)
            for start in Self.outOfRange {
                _ = try ErrorTests.rejected(
                    client, env, [("type", "execute"), ("planId", "later"), ("contact", contact("c2")), ("startTick", start)],
                    code: "bad_request", field: "startTick")
            }
            #expect(try client.call("getRun", ["runId": id]).ok)
        }
    }

    @Test func outOfRangeCountsLimitsOffsetsAndBatchSizes() async throws {
        try await TestEngine.with { client, env in
            try client.register(simplePlan("p"))
            let commands: [(base: [(String, String)], field: String)] = [
                ([("type", "tick")], "count"),
                ([("type", "listRuns")], "limit"),
                ([("type", "listRuns")], "offset"),
                ([("type", "bulkExecute"), ("planId", "p"), ("contacts", "[]")], "batchSize"),
                ([("type", "getPlan"), ("planId", "p")], "version"),
            ]
            for (base, field) in commands {
                for value in Self.outOfRange + (field == "offset" ? [] : ["0"]) {
                    _ = try ErrorTests.rejected(client, env, base + [(field, value)], code: "bad_request", field: field)
                    // The same number inside args.
                    let members = base.dropFirst().map { "\"\($0.0)\":" + (JSONValue.parse($0.1) == nil ? "\"\($0.1)\"" : $0.1) }
                    let args = "{" + (members + ["\"\(field)\":\(value)"]).joined(separator: ",") + "}"
                    _ = try ErrorTests.rejected(
                        client, env, [base[0], ("args", args)], code: "bad_request", field: field)
                }
            }
            // Within the numbers' range but past a configured limit: too_large.
            _ = try ErrorTests.rejected(client, env, [("type", "tick"), ("count", "100001")], code: "too_large", field: "count")
            _ = try ErrorTests.rejected(
                client, env, [("type", "tick"), ("count", "2147483647")], code: "too_large", field: "count")
            _ = try ErrorTests.rejected(
                client, env, [("type", "listRuns"), ("limit", "2147483647")], code: "too_large", field: "limit")
            // The largest values are fine.
            let page = try client.call("listRuns", ["limit": "1000", "offset": "2147483647"])
            #expect(page.ok, "\(page.fields)")
            #expect(page.runs.isEmpty)
            let bulk = try client.call("bulkExecute", ["planId": "p", "contacts": "[]", "batchSize": "10000"])
            #expect(bulk.ok, "\(bulk.fields)")
            #expect(try client.advanceClock(100_000).tick == 100_000)
            #expect(try client.stats().ok)
        }
    }
}
