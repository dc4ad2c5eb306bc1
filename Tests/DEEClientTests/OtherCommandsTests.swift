import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// The typed calls beyond the Runs API page: plans, signals, action results, suppression, stats, dead letters.
@Suite struct OtherCommandsTests {
    @Test func plansRegisterGetAndList() async throws {
        try await ClientHarness.with { engine, _ in
            let plan = try Plan(json: welcomePlanJSON)
            let first = try await engine.registerPlan(plan)
            #expect(first == PlanRegistration(planId: "welcome", version: 1, created: true))
            #expect(try await engine.registerPlan(plan).created == false)
            let changed = try Plan(json: welcomePlanJSON.replacingOccurrences(of: "\"ticks\":3", with: "\"ticks\":4"))
            #expect(try await engine.registerPlan(changed).version == 2)
            let got = try await engine.getPlan("welcome", version: 1)
            #expect(got.version == 1)
            #expect(got.plan.contentHash == plan.contentHash)
            #expect(try await engine.getPlan("welcome").version == 2)
            #expect(try await engine.listPlans() == [PlanSummary(planId: "welcome", name: "Welcome", latestVersion: 2)])
            let error = await #expect(throws: DEEClientError.self) { _ = try await engine.getPlan("nope") }
            #expect(error?.code == "not_found")
        }
    }

    @Test func aSignalMovesAWaitingRun() async throws {
        try await ClientHarness.with { engine, _ in
            let listen = try Plan(
                json: #"""
                    {"id":"listen","exitOn":["unsubscribed"],"steps":[
                      {"id":"wait","type":"waitForSignal","signal":"replied","timeoutTicks":5,"onSignal":"won",
                       "onTimeout":"lost"},
                      {"id":"won","type":"end","outcome":"replied"},
                      {"id":"lost","type":"end","outcome":"no_reply"}]}
                    """#)
            let run = try await engine.execute(listen, contact: Contact(id: "c1"))
            try await engine.tick()
            #expect(try await engine.getRun(run.id).status == .waiting)
            #expect(try await engine.signal(contactId: "c1", name: "replied", data: ["via": "email"]) == 1)
            try await engine.tick()
            let done = try await engine.getRun(run.id)
            #expect(done.outcome == "replied")
            #expect(done.variables["via"] == "email")
            #expect(try await engine.signal(runId: run.id, name: "replied") == 0)
        }
    }

    @Test func anActionResultCompletesAnAwaitedAction() async throws {
        try await ClientHarness.with { engine, env in
            let sync = try Plan(
                json: #"""
                    {"id":"sync","steps":[
                      {"id":"push","type":"action","action":"crm_push","await":true,"timeoutTicks":5},
                      {"id":"done","type":"end","outcome":"synced"}]}
                    """#)
            let run = try await engine.execute(sync, contact: Contact(id: "c1"))
            try await engine.tick()
            let requests = try await env.raw.call(["XRANGE", env.key("{0}:actions"), "-", "+"]).streamEntries
            let key = try #require(requests.first?.fields["idempotencyKey"])
            let resumed = try await engine.actionResult(
                runId: run.id, idempotencyKey: key, ok: true, data: ["crmId": 7])
            #expect(resumed.status == .active)
            #expect(resumed.variables["crmId"] == 7)
            try await engine.tick()
            #expect(try await engine.getRun(run.id).outcome == "synced")
        }
    }

    @Test func suppressCancelsAndSkipsUntilUnsuppressed() async throws {
        try await ClientHarness.with { engine, _ in
            let plan = try Plan(json: welcomePlanJSON)
            let run = try await engine.execute(plan, contact: Contact(id: "c1", email: "c1@example.com"))
            #expect(try await engine.suppress(contactId: "c1", reason: "complained") == 1)
            #expect(try await engine.getRun(run.id).status == .cancelled)
            let error = await #expect(throws: DEEClientError.self) {
                _ = try await engine.execute(plan, contact: Contact(id: "c1"))
            }
            #expect(error?.code == "suppressed")
            try await engine.unsuppress(contactId: "c1")
            #expect(try await engine.execute(plan, contact: Contact(id: "c1")).status == .active)
            let enrolled = await #expect(throws: DEEClientError.self) {
                _ = try await engine.execute(plan, contact: Contact(id: "c1"))
            }
            #expect(enrolled?.errorCode == .alreadyEnrolled)
        }
    }

    @Test func statsVerifyAndDeadletters() async throws {
        try await ClientHarness.with { engine, _ in
            let run = try await engine.execute(try Plan(json: welcomePlanJSON), contact: Contact(id: "c1"))
            try await engine.tick(count: 2)
            let stats = try await engine.stats()
            #expect(stats.tick == 2)
            #expect(stats.plans == 1)
            #expect(stats.partitions == 1)
            #expect(stats.runsByStatus.values.reduce(0, +) == 1)
            #expect(stats.runsByStatus.count == RunStatus.allCases.count)
            let verification = try await engine.verify(run.id)
            #expect(verification.valid)
            #expect(verification.entries == (try await engine.audit(run.id)).count)
            #expect(try await engine.listDeadletters() == [])
            let error = await #expect(throws: DEEClientError.self) { try await engine.redriveDeadletter("1-0") }
            #expect(error?.code == "not_found")
        }
    }
}
