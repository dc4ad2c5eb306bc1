import DEEClient
import Foundation
import Redis
import Testing

/// Faults from outside the engine, bounded in count and time: scripts flushed from Redis under load, the
/// ingress stream deleted.
@Suite(.serialized)
struct FaultTests {
    @Test func scriptFlushesUnderLoadLoseNothing() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let flusher = RedisConnection(configuration: try RedisConfiguration(url: env.url))
            defer { flusher.close() }
            // 600 executes sent in bursts (so the owner batches and overlaps them), a SCRIPT FLUSH between bursts.
            var ids: [String] = []
            for burst in 0..<6 {
                for i in 0..<100 {
                    ids.append(try client.send("execute", ["planId": "welcome", "contact": contact("c\(burst)-\(i)")]))
                }
                try flusher.call(["SCRIPT", "FLUSH"])
            }
            var created = 0
            for id in ids where try client.reply(to: id, timeout: 60).ok { created += 1 }
            #expect(created == 600)
            // The partition keeps its copy of the plan version its runs use (SPEC 8), written once per group.
            #expect(try env.redis.call(["GET", env.key("{0}:plan:welcome:1")]).string?.contains("\"welcome\"") == true)
            #expect(try client.call("listRuns", ["limit": "1"]).total == 600)
            #expect(try client.call("verifyAudit", ["runId": try #require(client.call("listRuns", ["limit": "1"]).runIds.first)]).object["valid"] as? Bool == true)
        }
    }

    @Test func theRouterRecreatesItsGroupWhenIngressIsDeleted() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            #expect(try client.call("stats").ok)
            try env.redis.call(["DEL", env.key("commands")])
            // The next command recreates the stream; the router must make its group again and answer.
            let reply = try client.call("execute", ["planId": "welcome", "contact": contact("after")], timeout: 30)
            #expect(reply.ok, "\(reply.fields)")
        }
    }
}
