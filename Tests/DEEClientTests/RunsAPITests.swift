import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// Every example of the Runs API page (`reference/runs-api.txt`), through the typed client, against a real engine.
@Suite struct RunsAPITests {
    @Test func executeStartsAnActiveRun() async throws {
        try await ClientHarness.with { engine, _ in
            let plan = try Plan(json: welcomePlanJSON)
            let run = try await engine.execute(plan, contact: Contact(id: "contact_123", email: "jane@example.com"))
            #expect(run.status == .active)
            #expect(run.planId == "welcome")
            #expect(run.planVersion == 1)
            #expect(run.contactId == "contact_123")
            #expect(run.currentStep == "intro")
            #expect(run.stepsCompleted == 0)
            #expect(run.stepsRemaining == 4)
            #expect(run.completedAt == nil)
            #expect(run.outcome == nil)
            #expect(try await engine.getRun(run.id) == run)
        }
    }

    @Test func listRunsAllActive() async throws {
        try await ClientHarness.with { engine, _ in
            let plan = try Plan(json: welcomePlanJSON)
            var ids: [String] = []
            for n in 1...3 {
                // A millisecond of its own each: runs of one millisecond list oldest first (id ascending).
                try await Task.sleep(for: .milliseconds(2))
                ids.append(try await engine.execute(plan, contact: Contact(id: "c\(n)")).id)
            }
            _ = try await engine.cancelRun(ids[1], reason: "not this one")
            let active = try await engine.listRuns(status: [.active])
            #expect(active.total == 2)
            #expect(active.runs.map(\.id) == [ids[2], ids[0]])  // newest first
            #expect(active.runs.allSatisfy { $0.status == .active })
        }
    }

    @Test func listRunsForAContact() async throws {
        try await ClientHarness.with { engine, _ in
            let welcome = try Plan(json: welcomePlanJSON)
            let other = try Plan(json: #"{"id":"other","steps":[{"id":"e","type":"end"}]}"#)
            let a = try await engine.execute(welcome, contact: Contact(id: "contact_123"))
            let b = try await engine.execute(other, contact: Contact(id: "contact_123"))
            _ = try await engine.execute(welcome, contact: Contact(id: "contact_456"))
            let contactRuns = try await engine.listRuns(contactId: "contact_123")
            #expect(contactRuns.total == 2)
            #expect(Set(contactRuns.runs.map(\.id)) == [a.id, b.id])
        }
    }

    @Test func failedRunsInTheLast24Hours() async throws {
        try await ClientHarness.with { engine, _ in
            // `{{contact.phone}}` has no value: the action cannot be filled, so the run fails (fail-closed).
            let fragile = try Plan(
                json: #"""
                    {"id":"fragile","steps":[
                      {"id":"call","type":"action","action":"sms","params":{"to":"{{contact.phone}}"}},
                      {"id":"done","type":"end"}]}
                    """#)
            let doomed = try await engine.execute(fragile, contact: Contact(id: "no_phone"))
            _ = try await engine.execute(
                try Plan(json: welcomePlanJSON), contact: Contact(id: "fine", email: "fine@example.com"))
            try await engine.tick()
            let failed = try await engine.listRuns(status: [.failed], startedAfter: Date(timeIntervalSinceNow: -86_400))
            #expect(failed.total == 1)
            #expect(failed.runs.first?.id == doomed.id)
            #expect(failed.runs.first?.error?.contains("phone") == true)
            #expect(failed.runs.first?.completedAt != nil)
            let older = try await engine.listRuns(status: [.failed], startedBefore: Date(timeIntervalSinceNow: -86_400))
            #expect(older.total == 0)
        }
    }

    @Test func pauseAndResume() async throws {
        try await ClientHarness.with { engine, _ in
            let run = try await engine.execute(try Plan(json: welcomePlanJSON), contact: Contact(id: "contact_123"))
            let paused = try await engine.pauseRun(run.id)
            #expect(paused.status == .paused)
            let resumed = try await engine.resumeRun(run.id)
            #expect(resumed.status == .active)
            let error = await #expect(throws: DEEClientError.self) { _ = try await engine.resumeRun(run.id) }
            #expect(error?.code == "invalid_transition")
        }
    }

    @Test func cancelRecordsTheReasonInTheAuditLog() async throws {
        try await ClientHarness.with { engine, _ in
            let run = try await engine.execute(try Plan(json: welcomePlanJSON), contact: Contact(id: "contact_123"))
            let cancelled = try await engine.cancelRun(run.id, reason: "Contact requested removal")
            #expect(cancelled.status == .cancelled)
            #expect(cancelled.currentStep == nil)
            let audit = try await engine.audit(run.id)
            #expect(audit.first?.action == "cancel")
            #expect(audit.first?.reason == "Contact requested removal")
            #expect(audit.last?.action == "execute")
            #expect(try await engine.verify(run.id).valid)
        }
    }

    @Test func runsCompleteWithTheirEndStepsOutcome() async throws {
        try await ClientHarness.with { engine, _ in
            let run = try await engine.execute(
                try Plan(json: welcomePlanJSON), contact: Contact(id: "contact_123", email: "jane@example.com"))
            let ticked = try await engine.tick(count: 6)
            #expect(ticked.tick == 6)
            let done = try await engine.getRun(run.id)
            #expect(done.status == .completed)
            #expect(done.outcome == "replied")
            #expect(done.currentTick == 6)
            #expect(done.stepsCompleted == 4)
            #expect(done.stepsRemaining == 0)
            #expect(done.completedAt != nil)
            let replay = try await engine.replay(run.id)
            #expect(replay.identical)
            #expect(replay.steps.count == 5)  // execute and four ticks that changed the run
        }
    }

    @Test func bulkExecuteCountsCreatedSkippedAndErrors() async throws {
        try await ClientHarness.with { engine, _ in
            let plan = try Plan(json: welcomePlanJSON)
            _ = try await engine.execute(plan, contact: Contact(id: "enrolled"))
            try await engine.suppress(contactId: "suppressed", reason: "bounced")
            let contacts = (1...4).map { Contact(id: "new_\($0)", email: "n\($0)@example.com") }
                + [Contact(id: "enrolled"), Contact(id: "suppressed"), Contact(id: "not valid")]
            let results = try await engine.bulkExecute(
                plan, contacts: contacts, variables: ["campaign": "spring"], batchSize: 2)
            #expect(results.created == 4)
            #expect(results.skipped == 2)
            #expect(results.errors == 1)
            #expect(results.skippedContacts.map(\.contactId) == ["enrolled", "suppressed"])
            #expect(results.skippedContacts.map(\.reason) == ["already_enrolled", "suppressed"])
            #expect(results.errorDetails.first?.index == 6)
            #expect(results.errorDetails.first?.error.code == .badRequest)
            let created = try await engine.listRuns(status: [.active], planId: "welcome")
            #expect(created.total == 5)
            let new = created.runs.filter { $0.contactId.hasPrefix("new_") }
            #expect(new.count == 4)
            #expect(new.allSatisfy { $0.variables["campaign"] == "spring" })
        }
    }

    @Test func bulkCancelByFilters() async throws {
        try await ClientHarness.with { engine, _ in
            let old = try Plan(
                json: #"{"id":"old-plan","steps":[{"id":"w","type":"wait","ticks":10},{"id":"e","type":"end"}]}"#)
            let keep = try Plan(json: welcomePlanJSON)
            for n in 1...5 { _ = try await engine.execute(old, contact: Contact(id: "c\(n)")) }
            let kept = try await engine.execute(keep, contact: Contact(id: "c1"))
            let paused = try await engine.listRuns(planId: "old-plan", contactId: "c5").runs[0]
            _ = try await engine.pauseRun(paused.id)
            let cancelled = try await engine.bulkCancel(
                .matching(status: [.active], planId: "old-plan"), reason: "Plan deprecated")
            #expect(cancelled == 4)
            #expect(try await engine.listRuns(status: [.active], planId: "old-plan").total == 0)
            #expect(try await engine.listRuns(status: [.cancelled], planId: "old-plan").total == 4)
            #expect(try await engine.getRun(paused.id).status == .paused)
            #expect(try await engine.getRun(kept.id).status == .active)
            let one = try await engine.listRuns(planId: "old-plan", contactId: "c1").runs[0]
            #expect(try await engine.audit(one.id, limit: 1).first?.reason == "Plan deprecated")
        }
    }
}
