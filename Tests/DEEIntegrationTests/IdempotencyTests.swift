import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// requestId semantics (SPEC 5): applied once, the stored result (success or error) replied again; reuse for a
/// different command is `bad_request` naming `requestId`.
@Suite(.serialized) struct IdempotencyTests {
    @Test func sameRequestIdTwiceMakesOneRun() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let args = ["planId": "welcome", "contact": contact("c1"), "variables": #"{"a":1}"#]
            let first = try client.call("execute", args, requestId: "req-1")
            let second = try client.call("execute", args, requestId: "req-1")
            #expect(first.ok, "\(first.fields)")
            #expect(second.ok, "\(second.fields)")
            #expect(first.requestId == "req-1")
            #expect(second.requestId == "req-1")
            #expect(first.commandId != second.commandId)
            #expect(first.result == second.result)
            #expect(try client.call("listRuns").total == 1)
            let counts = try client.stats().object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts["active"] == 1)
            // One audit entry and one run.created event.
            let id = try #require(first.object["id"] as? String)
            #expect(try client.call("getAudit", ["runId": id]).array.count == 1)
        }
    }

    @Test func sameRequestIdAsFieldsOrArgsIsTheSameCommand() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let first = try client.call("execute", ["planId": "welcome", "contact": contact("c1")], requestId: "req-a")
            let second = try client.call(
                "execute", ["args": "{\"contact\":\(contact("c1")),\"planId\":\"welcome\"}"], requestId: "req-a")
            #expect(second.ok, "\(second.fields)")
            #expect(first.result == second.result)
            #expect(try client.call("listRuns").total == 1)
        }
    }

    @Test func sameRequestIdWithDifferentArgumentsIsBadRequest() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let first = try client.call("execute", ["planId": "welcome", "contact": contact("c1")], requestId: "req-1")
            #expect(first.ok)
            let other = try client.call("execute", ["planId": "welcome", "contact": contact("c2")], requestId: "req-1")
            #expect(!other.ok)
            #expect(other.error == "bad_request")
            #expect(other.field == "requestId")
            #expect(other.requestId == "req-1")
            // Another type with the same requestId.
            let runId = try #require(first.object["id"] as? String)
            let pause = try client.call("pauseRun", ["runId": runId], requestId: "req-1")
            #expect(pause.error == "bad_request")
            #expect(pause.field == "requestId")
            // Nothing changed.
            #expect(try client.call("listRuns").total == 1)
            #expect(try client.getRun(runId)["status"] as? String == "active")
            // The original still replies its result.
            let again = try client.call("execute", ["planId": "welcome", "contact": contact("c1")], requestId: "req-1")
            #expect(again.result == first.result)
        }
    }

    @Test func requestIdReplayedAfterAnErrorGivesTheSameError() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let open = try client.run("welcome", "c1")
            let refused = try client.call("execute", ["planId": "welcome", "contact": contact("c1")], requestId: "req-2")
            #expect(refused.error == "already_enrolled")
            // Free the enrollment: a new command would succeed now, the replayed one must not.
            _ = try client.call("cancelRun", ["runId": open, "reason": "x"])
            let replayed = try client.call("execute", ["planId": "welcome", "contact": contact("c1")], requestId: "req-2")
            #expect(!replayed.ok)
            #expect(replayed.error == "already_enrolled")
            #expect(replayed.message == refused.message)
            #expect(try client.call("listRuns", ["status": "active"]).total == 0)
            // A new requestId is a new command.
            let fresh = try client.call("execute", ["planId": "welcome", "contact": contact("c1")], requestId: "req-3")
            #expect(fresh.ok, "\(fresh.fields)")

            // invalid_transition is stored too.
            let id = try #require(fresh.object["id"] as? String)
            let bad = try client.call("resumeRun", ["runId": id], requestId: "req-4")
            #expect(bad.error == "invalid_transition")
            _ = try client.call("pauseRun", ["runId": id])
            let badAgain = try client.call("resumeRun", ["runId": id], requestId: "req-4")
            #expect(badAgain.error == "invalid_transition")
            #expect(try client.getRun(id)["status"] as? String == "paused")
        }
    }

    @Test func pauseWithRequestIdTwiceRepliesTheStoredRun() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")
            let first = try client.call("pauseRun", ["runId": id, "reason": "r"], requestId: "p-1")
            let second = try client.call("pauseRun", ["runId": id, "reason": "r"], requestId: "p-1")
            #expect(first.ok, "\(first.fields)")
            #expect(second.ok, "\(second.fields)")
            #expect(first.result == second.result)
            #expect(try client.call("getAudit", ["runId": id]).array.count == 2)

            // bulkCancel and suppress too.
            let c1 = try client.call("bulkCancel", ["filters": #"{"planId":"welcome"}"#, "reason": "x"], requestId: "bc-1")
            #expect(c1.object["cancelled"] as? Int == 1)
            let c2 = try client.call("bulkCancel", ["filters": #"{"planId":"welcome"}"#, "reason": "x"], requestId: "bc-1")
            #expect(c2.result == c1.result)
            let s1 = try client.call("suppress", ["contactId": "zz"], requestId: "s-1")
            let s2 = try client.call("suppress", ["contactId": "zz"], requestId: "s-1")
            #expect(s1.ok)
            #expect(s1.result == s2.result)
        }
    }

    @Test func bulkExecuteWithRequestIdTwice() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let contacts = "[" + (0..<7).map { contact("c\($0)") }.joined(separator: ",") + "]"
            let a = try client.call("bulkExecute", ["planId": "welcome", "contacts": contacts, "batchSize": "3"], requestId: "b-1")
            let b = try client.call("bulkExecute", ["planId": "welcome", "contacts": contacts, "batchSize": "3"], requestId: "b-1")
            #expect(a.ok, "\(a.fields)")
            #expect(a.object["created"] as? Int == 7)
            #expect(b.result == a.result)
            #expect(try client.call("listRuns").total == 7)
        }
    }

    @Test func registerPlanWithRequestId() async throws {
        try await TestEngine.with { client, _ in
            let first = try client.call("registerPlan", ["plan": simplePlan("rp")], requestId: "reg-1")
            #expect(first.object["created"] as? Bool == true)
            // A later version by someone else does not change what reg-1 replies.
            try client.register(simplePlan("rp", outcome: "v2"))
            let again = try client.call("registerPlan", ["plan": simplePlan("rp")], requestId: "reg-1")
            #expect(again.ok, "\(again.fields)")
            #expect(again.result == first.result)
            #expect(again.object["created"] as? Bool == true)
            // Other content under the same requestId.
            let other = try client.call("registerPlan", ["plan": simplePlan("rp", outcome: "v3")], requestId: "reg-1")
            #expect(other.error == "bad_request")
            #expect(other.field == "requestId")
            #expect(try client.call("getPlan", ["planId": "rp"]).object["version"] as? Int == 2)
        }
    }

    @Test
    func requestIdOfRegisterPlanReusedForAnotherType() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let reg = try client.call("registerPlan", ["plan": simplePlan("x1")], requestId: "shared-1")
            #expect(reg.ok)
            let exec = try client.call("execute", ["planId": "welcome", "contact": contact("c1")], requestId: "shared-1")
            #expect(exec.error == "bad_request", "\(exec.fields)")
            #expect(exec.field == "requestId")

            let run = try client.call("execute", ["planId": "welcome", "contact": contact("c2")], requestId: "shared-2")
            #expect(run.ok)
            let reg2 = try client.call("registerPlan", ["plan": simplePlan("x2")], requestId: "shared-2")
            #expect(reg2.error == "bad_request", "\(reg2.fields)")
            #expect(reg2.field == "requestId")
            #expect(try client.call("getPlan", ["planId": "x2"]).error == "not_found")
        }
    }

    @Test
    func requestIdOfAPlanNotFoundErrorIsStored() async throws {
        try await TestEngine.with { client, _ in
            let missing = try client.call("execute", ["planId": "later", "contact": contact("c1")], requestId: "nf-1")
            #expect(missing.error == "not_found")
            try client.register(simplePlan("later"))
            let replayed = try client.call("execute", ["planId": "later", "contact": contact("c1")], requestId: "nf-1")
            #expect(replayed.error == "not_found", "\(replayed.fields)")
            #expect(try client.call("listRuns").total == 0)
        }
    }
}
