import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// Plan versions (SPEC 2): content that differs from the LATEST version is a new version, even when an older
/// version had it; only the latest version's content answers that version (created = false).
@Suite(.serialized) struct PlanVersionTests {
    static func version(_ r: DEEReply) -> Int? { r.object["version"] as? Int }
    static func created(_ r: DEEReply) -> Bool? { r.object["created"] as? Bool }

    @Test func returningToAnOlderContentIsANewVersion() async throws {
        try await TestEngine.with { client, _ in
            let a = simplePlan("pv", outcome: "a"), b = simplePlan("pv", outcome: "b")
            let r1 = try client.register(a)
            #expect(Self.version(r1) == 1 && Self.created(r1) == true, "\(r1.fields)")
            // A, A: the latest, not created.
            let r1again = try client.register(a)
            #expect(Self.version(r1again) == 1 && Self.created(r1again) == false, "\(r1again.fields)")
            let r2 = try client.register(b)
            #expect(Self.version(r2) == 2 && Self.created(r2) == true, "\(r2.fields)")
            // A, B, A: version 3, not version 1.
            let r3 = try client.register(a)
            #expect(Self.version(r3) == 3 && Self.created(r3) == true, "\(r3.fields)")
            // The latest now has A's content: A again answers 3.
            let r3again = try client.register(a)
            #expect(Self.version(r3again) == 3 && Self.created(r3again) == false, "\(r3again.fields)")
            // B is no longer the latest: version 4.
            let r4 = try client.register(b)
            #expect(Self.version(r4) == 4 && Self.created(r4) == true, "\(r4.fields)")

            // Every version keeps its own content; the latest is 4.
            for (v, outcome) in [(1, "a"), (2, "b"), (3, "a"), (4, "b")] {
                let p = try client.call("getPlan", ["planId": "pv", "version": String(v)])
                #expect(p.ok, "\(p.fields)")
                #expect((p.object["steps"] as? [[String: Any]])?.last?["outcome"] as? String == outcome, "v\(v)")
            }
            #expect(Self.version(try client.call("getPlan", ["planId": "pv"])) == 4)
            let listed = try client.call("listPlans").array.compactMap { $0 as? [String: Any] }
            #expect(listed.first { $0["planId"] as? String == "pv" }?["latestVersion"] as? Int == 4)
        }
    }

    @Test func sameContentInAnotherFormIsTheLatestVersion() async throws {
        try await TestEngine.with { client, _ in
            try client.register(simplePlan("pf"))
            try client.register(simplePlan("pf", outcome: "other"))
            // v1's content, keys reordered: it differs from the latest, so a new version.
            let reordered = """
                { "steps": [ {"type":"action","id":"first","params":{"template":"t"},"action":"send_email"},
                  {"outcome":"done","type":"end","id":"last"} ], "name": "pf", "id": "pf" }
                """
            let r3 = try client.register(reordered)
            #expect(Self.version(r3) == 3 && Self.created(r3) == true, "\(r3.fields)")
            // And once it is the latest, the canonical form of the same content answers it.
            let same = try client.register(simplePlan("pf"))
            #expect(Self.version(same) == 3 && Self.created(same) == false, "\(same.fields)")
        }
    }

    @Test func repeatedRequestIdAnswersItsStoredResult() async throws {
        try await TestEngine.with { client, _ in
            let a = simplePlan("pr", outcome: "a"), b = simplePlan("pr", outcome: "b")
            let first = try client.call("registerPlan", ["plan": a], requestId: "pr-1")
            #expect(first.ok && Self.version(first) == 1 && Self.created(first) == true, "\(first.fields)")
            let second = try client.call("registerPlan", ["plan": b], requestId: "pr-2")
            #expect(Self.version(second) == 2 && Self.created(second) == true, "\(second.fields)")
            // The same command again: its stored result (version 1, created), not a new version 3.
            let again = try client.call("registerPlan", ["plan": a], requestId: "pr-1")
            #expect(again.ok, "\(again.fields)")
            #expect(again.result == first.result)
            #expect(Self.version(again) == 1 && Self.created(again) == true)
            // And again for the second.
            let again2 = try client.call("registerPlan", ["plan": b], requestId: "pr-2")
            #expect(again2.result == second.result)
            #expect(Self.version(try client.call("getPlan", ["planId": "pr"])) == 2)
            // A new request with A's content: version 3.
            let third = try client.call("registerPlan", ["plan": a], requestId: "pr-3")
            #expect(Self.version(third) == 3 && Self.created(third) == true, "\(third.fields)")
        }
    }

    /// An inline plan given to execute/bulkExecute is registered as registerPlan registers it.
    @Test func inlinePlansFollowTheLatestVersion() async throws {
        try await TestEngine.with { client, _ in
            let a = simplePlan("pi", outcome: "a"), b = simplePlan("pi", outcome: "b")
            let r1 = try client.call("execute", ["plan": a, "contact": contact("c1")])
            #expect(r1.ok && r1.object["planVersion"] as? Int == 1, "\(r1.fields)")
            // The same inline content: the same version.
            let r1b = try client.call("execute", ["plan": a, "contact": contact("c2")])
            #expect(r1b.object["planVersion"] as? Int == 1, "\(r1b.fields)")
            #expect(Self.version(try client.register(b)) == 2)
            // A again, inline, after B: a new version 3, as registerPlan would give.
            let r3 = try client.call("execute", ["plan": a, "contact": contact("c3")])
            #expect(r3.ok && r3.object["planVersion"] as? Int == 3, "\(r3.fields)")
            let bulk = try client.call("bulkExecute", ["plan": a, "contacts": "[\(contact("c4")),\(contact("c5"))]"])
            #expect(bulk.object["created"] as? Int == 2, "\(bulk.fields)")
            let runs = try client.call("listRuns", ["planId": "pi", "limit": "10"]).runs
            let versions = Dictionary(uniqueKeysWithValues: runs.map { ($0["contactId"] as? String ?? "", $0["planVersion"] as? Int ?? 0) })
            #expect(versions == ["c1": 1, "c2": 1, "c3": 3, "c4": 3, "c5": 3])
            // B inline is not the latest any more: version 4.
            let r4 = try client.call("execute", ["plan": b, "contact": contact("c6")])
            #expect(r4.object["planVersion"] as? Int == 4, "\(r4.fields)")
            #expect(Self.version(try client.register(b)) == 4)
        }
    }
}
