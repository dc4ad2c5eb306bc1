import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// SPEC 2–4: waitForSignal, exitOn, and signals that reach paused runs.
@Suite(.serialized) struct SignalTests {
    /// intro (action) → listen (waitForSignal "replied", timeout 5) → won / lost.
    static func listenPlan(_ id: String = "listen", exitOn: [String]? = ["unsubscribed"], timeout: Int? = 5) -> String {
        planText(id, exitOn: exitOn, [
            actionStep("intro"),
            listenStep("listen", "replied", timeout: timeout, onSignal: "won", onTimeout: "lost"),
            endStep("won", "replied"),
            endStep("lost", "no_reply"),
        ])
    }

    @Test func signalByContactCompletesTheWait() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.listenPlan())
            let run = try client.startRun("listen", contact: ["id": "c1"], variables: ["mood": "meh", "keep": 1])
            #expect(run.stepsRemaining == 3)  // intro, listen, lost (the default path takes onTimeout)
            let id = try #require(run.id)
            try client.advanceClock(2)
            var r = try client.runView(id)
            #expect(r.status == "waiting" && r.currentStep == "listen" && r.stepsCompleted == 1, "\(r.summary)")
            try client.advanceClock()  // clock 3
            let s = try client.sendSignal(contactId: "c1", "replied", data: ["mood": "happy", "reply": "yes"])
            #expect(s.ok, "\(s.fields)")
            #expect(s.object["delivered"] as? Int == 1)
            r = try client.runView(id)
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.currentStep == "won")
            #expect(r.stepsCompleted == 2)
            #expect(r.stepsRemaining == 1)
            #expect(r.currentTick == 3)
            #expect(r.variables["mood"] as? String == "happy")
            #expect(r.variables["reply"] as? String == "yes")
            #expect(r.variables["keep"] as? Int == 1)
            // Due at C'+1.
            let t = try client.advanceClock()
            #expect(t.tick == 4 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "completed" && r.outcome == "replied" && r.currentTick == 4 && r.stepsCompleted == 3, "\(r.summary)")
            // A later signal reaches no open run.
            #expect(try client.sendSignal(contactId: "c1", "replied").object["delivered"] as? Int == 0)
            let types = try env.runEvents().filter { $0["runId"] == id }.map { $0["type"] ?? "" }
            #expect(types == ["run.created", "run.step", "run.waiting", "run.step", "run.completed"])
        }
    }

    @Test func signalByRunId() async throws {
        try await TestEngine.with { client, _ in
            try client.register(Self.listenPlan())
            let id = try #require(try client.startRun("listen", contact: ["id": "c1"]).id)
            let other = try #require(try client.startRun("listen", contact: ["id": "c2"]).id)
            try client.advanceClock(2)
            let s = try client.sendSignal(runId: id, "replied", data: ["n": 7])
            #expect(s.ok, "\(s.fields)")
            #expect(s.object["delivered"] as? Int == 1)
            let r = try client.runView(id)
            #expect(r.status == "active" && r.currentStep == "won" && r.variables["n"] as? Int == 7, "\(r.summary)")
            #expect(try client.runView(other).status == "waiting")
        }
    }

    @Test func planIdFilter() async throws {
        try await TestEngine.with { client, _ in
            try client.register(Self.listenPlan("pa"))
            try client.register(Self.listenPlan("pb"))
            let a = try #require(try client.startRun("pa", contact: ["id": "c1"]).id)
            let b = try #require(try client.startRun("pb", contact: ["id": "c1"]).id)
            try client.advanceClock(2)
            var s = try client.sendSignal(contactId: "c1", "replied", planId: "pa")
            #expect(s.object["delivered"] as? Int == 1, "\(s.fields)")
            #expect(try client.runView(a).currentStep == "won")
            #expect(try client.runView(b).status == "waiting")
            s = try client.sendSignal(contactId: "c1", "replied", planId: "nope")
            #expect(s.object["delivered"] as? Int == 0, "\(s.fields)")
            s = try client.sendSignal(contactId: "c1", "replied")
            #expect(s.object["delivered"] as? Int == 1, "\(s.fields)")
            #expect(try client.runView(b).currentStep == "won")
        }
    }

    @Test func timeoutGoesToOnTimeout() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.listenPlan())
            let id = try #require(try client.startRun("listen", contact: ["id": "c1"]).id)
            try client.advanceClock(6)  // waiting from tick 2, times out at 7
            var r = try client.runView(id)
            #expect(r.status == "waiting" && r.currentTick == 2, "\(r.summary)")
            let t = try client.advanceClock()
            #expect(t.tick == 7 && t.stepped == 1)
            r = try client.runView(id)
            // The timeout completes the wait (+1), and the onTimeout end step executes in the same tick.
            #expect(r.status == "completed", "\(r.summary)")
            #expect(r.outcome == "no_reply")
            #expect(r.currentTick == 7)
            #expect(r.stepsCompleted == 3)
            let last = try env.runEvents().last { $0["runId"] == id }
            #expect(last?["type"] == "run.completed" && last?["tick"] == "7")
        }
    }

    @Test func onSignalAndOnTimeoutDefaultToNext() async throws {
        try await TestEngine.with { client, _ in
            try client.register(
                planText("dflt", [listenStep("listen", "ping", timeout: 2), endStep("after", "next")]))
            let a = try #require(try client.startRun("dflt", contact: ["id": "c1"]).id)
            let b = try #require(try client.startRun("dflt", contact: ["id": "c2"]).id)
            try client.advanceClock()  // both waiting from tick 1, time out at 3
            #expect(try client.sendSignal(contactId: "c1", "ping").object["delivered"] as? Int == 1)
            try client.advanceClock(2)
            let ra = try client.runView(a)
            let rb = try client.runView(b)
            #expect(ra.status == "completed" && ra.outcome == "next" && ra.currentTick == 2, "\(ra.summary)")
            #expect(rb.status == "completed" && rb.outcome == "next" && rb.currentTick == 3, "\(rb.summary)")
        }
    }

    @Test func signalToRunNotWaitingIsNotDelivered() async throws {
        try await TestEngine.with { client, _ in
            try client.register(Self.listenPlan())
            let id = try #require(try client.startRun("listen", contact: ["id": "c1"]).id)
            // Active on its first step, not waiting yet.
            var s = try client.sendSignal(contactId: "c1", "replied")
            #expect(s.ok, "\(s.fields)")
            #expect(s.object["delivered"] as? Int == 0)
            #expect(try client.runView(id).stepsCompleted == 0)
            try client.advanceClock(2)
            // Waiting, but for another name.
            s = try client.sendSignal(contactId: "c1", "clicked", data: ["x": 1])
            #expect(s.object["delivered"] as? Int == 0, "\(s.fields)")
            s = try client.sendSignal(runId: id, "clicked")
            #expect(s.object["delivered"] as? Int == 0, "\(s.fields)")
            let r = try client.runView(id)
            #expect(r.status == "waiting" && r.currentStep == "listen" && r.variables["x"] == nil, "\(r.summary)")
            // A contact with no runs.
            s = try client.sendSignal(contactId: "nobody", "replied")
            #expect(s.object["delivered"] as? Int == 0, "\(s.fields)")
        }
    }

    @Test func exitOnCompletesOpenRunsInEveryOpenStatus() async throws {
        try await TestEngine.with { client, env in
            try client.register(Self.listenPlan())
            try client.register(examplePlan)  // exitOn: unsubscribed, too
            try client.register(Self.listenPlan("noexit", exitOn: nil, timeout: nil))
            let waiting = try #require(try client.startRun("listen", contact: ["id": "w"]).id)
            let untouched = try #require(try client.startRun("noexit", contact: ["id": "w"]).id)
            try client.advanceClock(2)
            let active = try #require(try client.startRun("listen", contact: ["id": "a"]).id)
            let pending = try #require(try client.startRun("listen", contact: ["id": "p"], startTick: 10).id)
            let paused = try #require(try client.startRun("welcome", contact: ["id": "z", "email": "z@z.z"]).id)
            #expect(try client.call("pauseRun", ["runId": paused]).ok)

            for (contactId, runId, from) in [("w", waiting, "waiting"), ("a", active, "active"), ("p", pending, "pending"), ("z", paused, "paused")] {
                let s = try client.sendSignal(contactId: contactId, "unsubscribed", data: ["via": "link"])
                #expect(s.ok, "\(s.fields)")
                #expect(s.object["delivered"] as? Int == 1, "\(from): \(s.fields)")
                let r = try client.runView(runId)
                #expect(r.status == "completed", "\(from): \(r.summary)")
                #expect(r.outcome == "unsubscribed", "\(from)")
                #expect(r.isNull("currentStep"), "\(from)")
                #expect(r.stepsRemaining == 0, "\(from)")
                #expect(r.currentTick == 2, "\(from)")
                #expect(isISO(r.o["completedAt"]), "\(from)")
                let last = try env.runEvents().last { $0["runId"] == runId }
                #expect(last?["type"] == "run.completed", "\(from)")
            }
            // A plan without that exitOn ignores it.
            #expect(try client.runView(untouched).status == "waiting")
            // Nothing is left to step; the contacts can enroll again.
            let t = try client.advanceClock(10)
            #expect(t.stepped == 0)
            for contactId in ["w", "a", "p"] {
                let again = try client.call("execute", ["planId": "listen", "contact": js(["id": contactId])])
                #expect(again.ok, "\(contactId): \(again.fields)")
            }
        }
    }

    @Test func signalWhilePausedIsAppliedAtResume() async throws {
        try await TestEngine.with { client, _ in
            try client.register(Self.listenPlan())
            let id = try #require(try client.startRun("listen", contact: ["id": "c1"]).id)
            try client.advanceClock(2)  // waiting; times out at 7
            #expect(try client.call("pauseRun", ["runId": id]).ok)
            let s = try client.sendSignal(contactId: "c1", "replied", data: ["got": true])
            #expect(s.object["delivered"] as? Int == 1, "\(s.fields)")
            var r = try client.runView(id)
            #expect(r.status == "paused" && r.currentStep == "listen" && r.stepsCompleted == 1, "\(r.summary)")
            try client.advanceClock()  // clock 3
            let resumed = try client.call("resumeRun", ["runId": id])
            #expect(resumed.ok, "\(resumed.fields)")
            r = RunView(resumed.object)
            #expect(r.status == "active", "\(r.summary)")
            #expect(r.currentStep == "won")
            #expect(r.stepsCompleted == 2)
            #expect(r.variables["got"] as? Bool == true)
            let t = try client.advanceClock()
            #expect(t.tick == 4 && t.stepped == 1)
            r = try client.runView(id)
            #expect(r.status == "completed" && r.outcome == "replied" && r.currentTick == 4, "\(r.summary)")
        }
    }

    @Test func keptSignalWinsOverTimeoutThatPassedWhilePaused() async throws {
        try await TestEngine.with { client, _ in
            try client.register(Self.listenPlan())
            let id = try #require(try client.startRun("listen", contact: ["id": "c1"]).id)
            try client.advanceClock(2)
            #expect(try client.call("pauseRun", ["runId": id]).ok)
            try client.advanceClock(8)  // clock 10: the timeout (7) passed while paused
            #expect(try client.sendSignal(runId: id, "replied").object["delivered"] as? Int == 1)
            #expect(try client.call("resumeRun", ["runId": id]).ok)
            try client.advanceClock()
            let r = try client.runView(id)
            #expect(r.status == "completed" && r.outcome == "replied" && r.currentTick == 11, "\(r.summary)")
        }
    }

    @Test func timeoutThatPassedWhilePausedFiresAfterResume() async throws {
        try await TestEngine.with { client, _ in
            try client.register(Self.listenPlan())
            let id = try #require(try client.startRun("listen", contact: ["id": "c1"]).id)
            try client.advanceClock(2)
            #expect(try client.call("pauseRun", ["runId": id]).ok)
            try client.advanceClock(8)  // clock 10
            #expect(try client.runView(id).status == "paused")
            #expect(try client.call("resumeRun", ["runId": id]).ok)
            #expect(try client.runView(id).status == "waiting")
            let t = try client.advanceClock()
            #expect(t.tick == 11 && t.stepped == 1)
            let r = try client.runView(id)
            #expect(r.status == "completed" && r.outcome == "no_reply" && r.currentTick == 11, "\(r.summary)")
        }
    }
}
