import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// SPEC 6 `replay`: runs from the tick, signal and action scenarios re-execute identically from their audit log,
/// one step per audit entry.
@Suite(.serialized) struct ReplayTests {
    /// Replays `runId` and checks it is identical with one identical step per audit entry.
    static func expectIdentical(
        _ client: DEEClient, _ env: TestEngine.Env, _ runId: String, _ label: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let reply = try client.call("replay", ["runId": runId])
        #expect(reply.ok, "\(label): \(reply.fields)", sourceLocation: sourceLocation)
        #expect(reply.object["identical"] as? Bool == true, "\(label): \(reply.result ?? "")", sourceLocation: sourceLocation)
        let steps = (reply.object["steps"] as? [[String: Any]]) ?? []
        let audit = try env.auditList(runId)
        #expect(!audit.isEmpty, "\(label)", sourceLocation: sourceLocation)
        #expect(steps.count == audit.count, "\(label): \(steps.count) steps, \(audit.count) audit entries", sourceLocation: sourceLocation)
        #expect(steps.allSatisfy { $0["identical"] as? Bool == true }, "\(label): \(reply.result ?? "")", sourceLocation: sourceLocation)
        // Steps follow the audit log in order (oldest first).
        let actions = steps.compactMap { $0["action"] as? String }
        #expect(actions == audit.compactMap { $0["action"] as? String }, "\(label)", sourceLocation: sourceLocation)
    }

    @Test func replayScenarios() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            try client.register(SignalTests.listenPlan())
            try client.register(SignalTests.listenPlan("listenforever", timeout: nil))
            try client.register(ActionTests.awaitedPlan)
            try client.register(ActionTests.strictPlan)
            try client.register(
                planText("miss", [actionStep("send", params: ["to": "{{contact.phone}}"]), endStep("done", "sent")]))
            try client.register(
                planText("br", [
                    ["id": "b", "type": "branch", "cases": [["when": ["var": "tier", "op": "in", "value": ["gold", "vip"]], "next": "yes"]],
                     "default": "no"],
                    endStep("yes", "yes"), endStep("no", "no"),
                ]))
            try client.register(
                planText("brbad", [
                    ["id": "b", "type": "branch", "cases": [["when": ["var": "tier", "op": "gt", "value": 1], "next": "yes"]]],
                    endStep("yes", "yes"),
                ]))

            var runs: [(String, String)] = []
            func add(_ label: String, _ planId: String, _ contact: [String: Any], variables: [String: Any]? = nil, startTick: Int? = nil)
                throws -> String
            {
                let id = try #require(try client.startRun(planId, contact: contact, variables: variables, startTick: startTick).id)
                runs.append((id, label))
                return id
            }
            let completed = try add("completed", "welcome", ["id": "r1", "email": "r1@x.y"], variables: ["v": 1])
            let failedTemplate = try add("failed template", "miss", ["id": "r2"])
            let waiting = try add("waiting for a signal", "listenforever", ["id": "r3"])
            let signalled = try add("signalled", "listen", ["id": "r4"])
            let timedOut = try add("timed out", "listen", ["id": "r5"])
            let pausedWait = try add("paused across a wait", "welcome", ["id": "r6", "email": "r6@x.y"])
            let pausedSignal = try add("signal while paused", "listen", ["id": "r7"])
            let actionOk = try add("action ok", "aw", ["id": "r8", "email": "r8@x.y"])
            let actionRetry = try add("action retried then onFailure", "aw", ["id": "r9", "email": "r9@x.y"])
            let actionFailed = try add("action failed", "aws", ["id": "r10"])
            let actionTimeout = try add("action timed out", "aw", ["id": "r11", "email": "r11@x.y"])
            let exited = try add("exitOn", "listen", ["id": "r12"])
            let pending = try add("pending then activated", "welcome", ["id": "r13", "email": "r13@x.y"], startTick: 2)
            let cancelled = try add("cancelled", "welcome", ["id": "r14", "email": "r14@x.y"])
            _ = try add("branch", "br", ["id": "r15"], variables: ["tier": "vip"])
            _ = try add("branch failed", "brbad", ["id": "r16"], variables: ["tier": "x"])
            let pausedResult = try add("action result while paused", "aw", ["id": "r17", "email": "r17@x.y"])

            // Clock 1: first steps.
            try client.advanceClock()
            func key(_ runId: String) throws -> String {
                try #require(try env.actionRequests().last { $0["runId"] == runId }?["idempotencyKey"])
            }
            #expect(try client.sendActionResult(actionOk, key: try key(actionOk), ok: true, data: ["id": "m1"]).ok)
            #expect(try client.sendActionResult(actionRetry, key: try key(actionRetry), ok: false, error: "e1").ok)
            #expect(try client.sendActionResult(actionFailed, key: try key(actionFailed), ok: false, error: "e1").ok)
            #expect(try client.call("pauseRun", ["runId": pausedResult]).ok)
            #expect(try client.sendActionResult(pausedResult, key: try key(pausedResult), ok: true, data: ["p": 1]).ok)
            #expect(try client.call("cancelRun", ["runId": cancelled, "reason": "test"]).ok)
            // Clock 2: waits start; retries dispatched.
            try client.advanceClock()
            #expect(try client.sendActionResult(actionRetry, key: try key(actionRetry), ok: false, error: "e2").ok)
            #expect(try client.sendActionResult(actionFailed, key: try key(actionFailed), ok: false, error: "e2").ok)
            #expect(try client.call("pauseRun", ["runId": pausedWait]).ok)
            #expect(try client.call("pauseRun", ["runId": pausedSignal]).ok)
            #expect(try client.sendSignal(runId: pausedSignal, "replied", data: ["k": "v"]).object["delivered"] as? Int == 1)
            try client.advanceClock()  // 3
            #expect(try client.sendSignal(contactId: "r4", "replied", data: ["x": 1]).object["delivered"] as? Int == 1)
            #expect(try client.sendSignal(contactId: "r12", "unsubscribed").object["delivered"] as? Int == 1)
            try client.advanceClock(4)  // 7: r5 times out; r11 times out twice
            #expect(try client.call("resumeRun", ["runId": pausedWait]).ok)
            #expect(try client.call("resumeRun", ["runId": pausedSignal]).ok)
            #expect(try client.call("resumeRun", ["runId": pausedResult]).ok)
            try client.advanceClock(3)  // 10

            let expectations: [(String, String)] = [
                (completed, "completed"), (failedTemplate, "failed"), (waiting, "waiting"), (signalled, "completed"),
                (timedOut, "completed"), (pausedWait, "completed"), (pausedSignal, "completed"), (actionOk, "completed"),
                (actionRetry, "completed"), (actionFailed, "failed"), (actionTimeout, "completed"), (exited, "completed"),
                (pending, "completed"), (cancelled, "cancelled"), (pausedResult, "completed"),
            ]
            for (id, status) in expectations {
                let label = runs.first { $0.0 == id }?.1 ?? id
                #expect(try client.runView(id).status == status, "\(label)")
            }
            for (id, label) in runs {
                try Self.expectIdentical(client, env, id, label)
            }
        }
    }

    @Test func replayDetectsADifferentStoredRun() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let id = try #require(try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"]).id)
            try client.advanceClock(6)
            try Self.expectIdentical(client, env, id, "before tampering")
            try env.redis.call(["HSET", env.key("{0}:run:\(id)"), "o", "forged"])
            let reply = try client.call("replay", ["runId": id])
            #expect(reply.ok, "\(reply.fields)")
            #expect(reply.object["identical"] as? Bool == false, "\(reply.result ?? "")")
        }
    }

    @Test func replayUnknownRun() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try #require(try client.startRun("welcome", contact: ["id": "c1", "email": "x@y.z"]).id)
            let missing = String(id.dropLast()) + (id.hasSuffix("0") ? "1" : "0")
            let reply = try client.call("replay", ["runId": missing])
            #expect(reply.error == "not_found", "\(reply.fields)")
        }
    }
}
