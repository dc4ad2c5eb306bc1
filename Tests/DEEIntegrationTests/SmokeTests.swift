import DEEClient
import Testing

@Suite struct SmokeTests {
    @Test func registerExecuteGet() async throws {
        try await TestEngine.with { client, _ in
            let reg = try client.call("registerPlan", ["plan": examplePlan])
            #expect(reg.ok, "\(reg.fields)")
            #expect(reg.object["version"] as? Int == 1)
            let run = try client.call("execute", ["planId": "welcome", "contact": #"{"id":"c1","email":"a@b.c"}"#])
            #expect(run.ok, "\(run.fields)")
            let id = try #require(run.object["id"] as? String)
            let got = try client.call("getRun", ["runId": id])
            #expect(got.object["status"] as? String == "active")
            #expect(got.object["stepsRemaining"] as? Int == 4)
        }
    }
}
