import DEECore
import Testing

private let signer = AuditSigner()

private func withStatus(_ status: RunStatus, due: Int? = 6, pausedFrom: RunStatus? = nil) -> Run {
    var run = Fixtures.startedRun().run
    run.status = status
    run.due = due
    run.pausedFrom = pausedFrom
    return run
}

private func transitionError(_ body: () throws(DEEError) -> RunChange) -> DEEError? {
    do throws(DEEError) {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

@Suite("Transitions")
struct TransitionTests {
    // MARK: start

    @Test func startActive() throws {
        let plan = Fixtures.plan(Fixtures.linearJSON)
        let ctx = Fixtures.context(clock: 5)
        let change = Transitions.start(
            runId: "r1", plan: plan, version: 2, contact: ["id": "c1"], contactId: "c1", variables: ["v": 1],
            startTick: nil, context: ctx, signer: signer)
        let run = change.run
        #expect(change.created)
        #expect(run.status == .active)
        #expect(run.startTick == 5)
        #expect(run.currentTick == 5)
        #expect(run.due == 6, "the first step executes at the next tick")
        #expect(run.currentStep == "a")
        #expect(run.stepsCompleted == 0)
        #expect(run.stepsRemaining == 4)
        #expect(run.startedAt == 1_795_428_000_000, "startedAt is the entry id's milliseconds")
        #expect(run.planVersion == 2)
        #expect(run.variables == ["v": 1])
        #expect(run.completedAt == nil)
        #expect(change.events.map(\.type) == ["run.created"])
        #expect(change.events.first?.status == .active)
        #expect(change.actions.isEmpty)
        #expect(change.audit.count == 1)
        let entry = try #require(change.audit.first)
        #expect(entry.action == "execute")
        #expect(entry.previousChecksum == Run.genesis)
        #expect(entry.checksum == run.auditHead)
        #expect(run.auditCount == 1)
        #expect(entry.tick == 5)
        #expect(entry.commandId == ctx.commandId.description)
        #expect(entry.requestId == ctx.requestId)
        #expect(entry.actor == "tester")
        #expect(entry.details.object?["status"] == "active")
    }

    /// start's stored audit entry is the canonical body of the details it keeps, and the chain verifies, for
    /// contacts and variables that need sorting and escaping.
    @Test(arguments: [nil, 10] as [Int?])
    func startsAuditEntryIsItsCanonicalBody(startTick: Int?) throws {
        let plan = Fixtures.plan(Fixtures.linearJSON)
        let contact: [String: JSONValue] = ["id": "c\"1", "email": "a@b.c", "zeta": ["b": 2, "a": [1, .double(2.5)]]]
        let variables: [String: JSONValue] = ["z": 1, "a": "é\n", "m": .null]
        for (c, v) in [(contact, variables), (["id": "c1"], [:])] as [([String: JSONValue], [String: JSONValue])] {
            let change = Transitions.start(
                runId: "r1", plan: plan, version: 3, contact: c, contactId: "c1", variables: v, startTick: startTick,
                context: Fixtures.context(clock: 5), signer: signer)
            let entry = try #require(change.audit.first)
            let details: JSONValue = [
                "planId": .string(plan.id), "planVersion": 3, "status": .string(change.run.status.rawValue),
                "startTick": .int(change.run.startTick), "variables": .object(v), "contact": .object(c),
            ]
            #expect(entry.details == details)
            var stored = try #require(JSONValue.parse(entry.storedText)?.object)
            stored["checksum"] = nil
            let body = AuditEntry.body(
                at: entry.at, actor: entry.actor, action: entry.action, runId: entry.runId, reason: entry.reason,
                requestId: entry.requestId, commandId: entry.commandId, tick: entry.tick, details: details,
                previousChecksum: entry.previousChecksum)
            #expect(JSONValue.object(stored) == body)
            #expect(entry.storedText == #"{"checksum":"\#(entry.checksum)","# + body.canonical.dropFirst())
            #expect(signer.verify(entries: [entry], head: change.run.auditHead, count: 1).valid)
        }
    }

    @Test(arguments: [nil, 0, 3, 5] as [Int?])
    func startWithStartTickNotLaterThanTheClockIsOrdinary(startTick: Int?) {
        let run = Fixtures.startedRun(clock: 5, startTick: startTick).run
        #expect(run.status == .active)
        #expect(run.startTick == 5)
        #expect(run.due == 6)
    }

    @Test func startPending() {
        let change = Fixtures.startedRun(clock: 5, startTick: 10)
        let run = change.run
        #expect(run.status == .pending)
        #expect(run.startTick == 10, "for a pending run, the tick at which it will become active")
        #expect(run.currentTick == 5)
        #expect(run.due == 10)
        #expect(run.currentStep == "a")
        #expect(change.events.first?.status == .pending)
        #expect(change.audit.first?.details.object?["startTick"] == 10)
    }

    @Test func startIsDeterministic() {
        #expect(Fixtures.startedRun(clock: 3) == Fixtures.startedRun(clock: 3))
        #expect(Fixtures.startedRun(clock: 3).run.auditHead != Fixtures.startedRun(clock: 4).run.auditHead)
    }

    // MARK: pause

    @Test(arguments: [RunStatus.pending, .active, .waiting])
    func pauseAnOpenRun(from status: RunStatus) throws {
        let run = withStatus(status)
        let ctx = Fixtures.context(ms: 1_795_428_000_100, clock: 7)
        let change = try Transitions.pause(run: run, reason: "hold on", context: ctx, signer: signer)
        #expect(change.run.status == .paused)
        #expect(change.run.pausedFrom == status)
        #expect(change.run.currentTick == 7)
        #expect(change.run.due == run.due, "the timer is kept while paused")
        #expect(change.run.currentStep == run.currentStep)
        #expect(!change.created)
        #expect(change.events.map(\.type) == ["run.paused"])
        #expect(change.audit.map(\.action) == ["pause"])
        #expect(change.audit.first?.reason == "hold on")
        #expect(change.audit.first?.previousChecksum == run.auditHead)
        #expect(change.audit.first?.at == 1_795_428_000_100)
        #expect(change.run.auditCount == run.auditCount + 1)
    }

    @Test(arguments: [RunStatus.paused, .completed, .failed, .cancelled])
    func pauseInvalid(from status: RunStatus) {
        let run = withStatus(status, pausedFrom: status == .paused ? .active : nil)
        let error = transitionError { () throws(DEEError) in
            try Transitions.pause(run: run, reason: nil, context: Fixtures.context(clock: 7), signer: signer)
        }
        #expect(error?.code == .invalidTransition)
        #expect(error?.field == "runId")
        #expect(error?.message.contains(run.id) == true)
    }

    // MARK: resume

    @Test(arguments: [RunStatus.pending, .active, .waiting])
    func resumeReturnsToThePreviousStatus(status: RunStatus) throws {
        let original = withStatus(status, due: 20)
        let paused = try Transitions.pause(run: original, reason: nil, context: Fixtures.context(clock: 7), signer: signer)
        let resumed = try Transitions.resume(run: paused.run, context: Fixtures.context(clock: 9), signer: signer)
        #expect(resumed.run.status == status)
        #expect(resumed.run.pausedFrom == nil)
        #expect(resumed.run.due == 20, "a timer that has not passed is kept")
        #expect(resumed.run.currentTick == 9)
        #expect(resumed.events.map(\.type) == ["run.resumed"])
        #expect(resumed.audit.map(\.action) == ["resume"])
        #expect(resumed.audit.first?.details == ["to": .string(status.rawValue)])
        #expect(resumed.run.auditCount == original.auditCount + 2)
    }

    @Test func resumeAfterTheTimerPassedFiresOnTheNextTick() throws {
        // Active, due at 6, paused at 5, resumed at 9: due 10.
        let run = Fixtures.startedRun(clock: 5).run
        let paused = try Transitions.pause(run: run, reason: nil, context: Fixtures.context(clock: 5), signer: signer)
        let resumed = try Transitions.resume(run: paused.run, context: Fixtures.context(clock: 9), signer: signer)
        #expect(resumed.run.status == .active)
        #expect(resumed.run.due == 10)
    }

    @Test func resumeWhenTheTimerIsDueNowFiresOnTheNextTick() throws {
        let paused = try Transitions.pause(
            run: withStatus(.waiting, due: 9), reason: nil, context: Fixtures.context(clock: 5), signer: signer)
        let resumed = try Transitions.resume(run: paused.run, context: Fixtures.context(clock: 9), signer: signer)
        #expect(resumed.run.due == 10)
        let early = try Transitions.resume(run: paused.run, context: Fixtures.context(clock: 8), signer: signer)
        #expect(early.run.due == 9)
    }

    @Test func resumeAPendingRunWhoseStartPassed() throws {
        let pending = Fixtures.startedRun(clock: 5, startTick: 10)
        let paused = try Transitions.pause(run: pending.run, reason: nil, context: Fixtures.context(clock: 6), signer: signer)
        let resumed = try Transitions.resume(run: paused.run, context: Fixtures.context(clock: 12), signer: signer)
        #expect(resumed.run.status == .pending)
        #expect(resumed.run.due == 13)
    }

    @Test func resumeAWaitWithoutTimerKeepsNoTimer() throws {
        let paused = try Transitions.pause(
            run: withStatus(.waiting, due: nil), reason: nil, context: Fixtures.context(clock: 5), signer: signer)
        let resumed = try Transitions.resume(run: paused.run, context: Fixtures.context(clock: 50), signer: signer)
        #expect(resumed.run.status == .waiting)
        #expect(resumed.run.due == nil)
    }

    @Test(arguments: [RunStatus.pending, .active, .waiting, .completed, .failed, .cancelled])
    func resumeInvalid(from status: RunStatus) {
        let run = withStatus(status)
        let error = transitionError { () throws(DEEError) in
            try Transitions.resume(run: run, context: Fixtures.context(clock: 7), signer: signer)
        }
        #expect(error?.code == .invalidTransition)
        #expect(error?.field == "runId")
    }

    // MARK: cancel

    @Test(arguments: [RunStatus.pending, .active, .waiting, .paused])
    func cancelAnOpenRun(from status: RunStatus) throws {
        let run = withStatus(status, pausedFrom: status == .paused ? .waiting : nil)
        let ctx = Fixtures.context(ms: 1_795_428_000_500, clock: 8)
        let change = try Transitions.cancel(run: run, reason: "opted out", action: "cancelRun", context: ctx, signer: signer)
        let r = change.run
        #expect(r.status == .cancelled)
        #expect(r.completedAt == 1_795_428_000_500)
        #expect(r.currentStep == nil)
        #expect(r.stepsRemaining == 0)
        #expect(r.due == nil)
        #expect(r.pausedFrom == nil)
        #expect(r.awaitKey == nil)
        #expect(r.outcome == nil)
        #expect(r.currentTick == 8)
        #expect(r.stepsCompleted == run.stepsCompleted)
        #expect(change.events.map(\.type) == ["run.cancelled"])
        #expect(change.events.first?.step == nil)
        #expect(change.audit.map(\.action) == ["cancelRun"])
        #expect(change.audit.first?.reason == "opted out")
        #expect(change.audit.first?.details == ["from": .string(status.rawValue)])
    }

    @Test func cancelRecordsWhichCommandCancelled() throws {
        for action in ["bulkCancel", "suppress"] {
            let change = try Transitions.cancel(
                run: Fixtures.startedRun().run, reason: nil, action: action, context: Fixtures.context(clock: 1),
                signer: signer)
            #expect(change.audit.first?.action == action)
        }
    }

    @Test(arguments: [RunStatus.completed, .failed, .cancelled])
    func cancelInvalid(from status: RunStatus) {
        let run = withStatus(status)
        let error = transitionError { () throws(DEEError) in
            try Transitions.cancel(run: run, reason: "x", action: "cancelRun", context: Fixtures.context(clock: 7), signer: signer)
        }
        #expect(error?.code == .invalidTransition)
        #expect(error?.message.contains("cancelRun") == true)
    }

    @Test func finishMakesARunTerminal() {
        var run = withStatus(.waiting, due: 9)
        run.awaitKey = "k"
        run.attempt = 1
        Transitions.finish(&run, status: .completed, outcome: "won", context: Fixtures.context(ms: 77, clock: 12))
        #expect(run.status == .completed)
        #expect(run.outcome == "won")
        #expect(run.completedAt == 77)
        #expect(run.currentTick == 12)
        #expect(run.currentStep == nil && run.stepsRemaining == 0 && run.due == nil && run.awaitKey == nil)
    }

    // MARK: effects

    @Test func runEventFields() {
        let run = Fixtures.startedRun().run
        let event = RunEvent("run.step", run: run, tick: 3, at: 1_795_428_000_000)
        #expect(
            event.fields == [
                "type", "run.step", "runId", run.id, "planId", "linear", "contactId", "c1", "status", "active", "step", "a",
                "tick", "3", "at", "2026-11-23T10:00:00.000Z",
            ])
        var done = run
        done.currentStep = nil
        #expect(RunEvent("run.completed", run: done, tick: 3, at: 0).fields[11] == "", "no step: empty field")
    }

    @Test func actionRequestKey() {
        let k = ActionRequest.key(runId: "r", step: "s", tick: 3, attempt: 0)
        #expect(k.count == 32)
        #expect(k.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(k == ActionRequest.key(runId: "r", step: "s", tick: 3, attempt: 0), "deterministic")
        #expect(k == String(Hex.sha256("r\u{1F}s\u{1F}3\u{1F}0").prefix(32)))
        let others = [
            ActionRequest.key(runId: "r2", step: "s", tick: 3, attempt: 0),
            ActionRequest.key(runId: "r", step: "s2", tick: 3, attempt: 0),
            ActionRequest.key(runId: "r", step: "s", tick: 4, attempt: 0),
            ActionRequest.key(runId: "r", step: "s", tick: 3, attempt: 1),
            // Field boundaries matter: ("r1","3") vs ("r","13").
            ActionRequest.key(runId: "r", step: "s", tick: 33, attempt: 0),
        ]
        #expect(Set(others + [k]).count == 6)
        #expect(
            ActionRequest.key(runId: "a", step: "bc", tick: 1, attempt: 0)
                != ActionRequest.key(runId: "ab", step: "c", tick: 1, attempt: 0))
    }

    @Test func actionRequestFields() {
        let request = ActionRequest(
            runId: "r", contactId: "c", planId: "p", step: "s", action: "send_email",
            params: ["to": "jane@example.com", "a": 1], attempt: 2, tick: 9)
        #expect(request.idempotencyKey == ActionRequest.key(runId: "r", step: "s", tick: 9, attempt: 2))
        #expect(
            request.fields == [
                "runId", "r", "contactId", "c", "planId", "p", "step", "s", "action", "send_email",
                "params", #"{"a":1,"to":"jane@example.com"}"#, "attempt", "2", "tick", "9",
                "idempotencyKey", request.idempotencyKey,
            ])
    }

    @Test func changeContextTimeComesFromTheEntryID() {
        let ctx = ChangeContext(commandId: EntryID(ms: 123, seq: 4), requestId: "x", actor: nil, clock: 0)
        #expect(ctx.at == 123)
    }
}
