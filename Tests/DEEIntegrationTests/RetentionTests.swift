import DEEClient
import DEEService
import Redis
import Foundation
import Testing

/// What the engine keeps and what it lets go: ingress below the oldest pending entry (SPEC 9), audit entries
/// of terminal runs after the configured retention (SPEC 7).
@Suite(.serialized)
struct RetentionTests {
    @Test func ingressIsTrimmedOnceEveryEntryIsAcknowledged() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            for i in 0..<50 { _ = try client.run("welcome", "c\(i)") }
            // (No check that all 51 entries are still there: on a slow machine the router may already have
            // trimmed some while the executes ran.)
            // The router trims every few seconds; poll for it (bounded), never time it.
            let deadline = Date().addingTimeInterval(20)
            var length = Int.max
            while Date() < deadline {
                length = try env.redis.call(["XLEN", env.key("commands")]).int ?? 0
                if length <= 1 { break }
                Thread.sleep(forTimeInterval: 0.2)
            }
            #expect(length <= 1, "ingress still holds \(length) entries")
            // Nothing was lost: every run is there.
            #expect(try client.call("listRuns", ["limit": "100"]).total == 50)
        }
    }

    @Test func auditOfATerminalRunExpiresAfterTheRetention() async throws {
        try await TestEngine.with(configure: { $0.auditRetentionSeconds = 100 }) { client, env in
            try client.register(examplePlan)
            let open = try client.run("welcome", "c1")
            let done = try client.run("welcome", "c2")
            #expect(try client.call("cancelRun", ["runId": done, "reason": "test"]).ok)
            let ttl = try env.redis.call(["TTL", env.key("{0}:audit:\(done)")]).int ?? -2
            #expect(ttl > 0 && ttl <= 100, "ttl \(ttl)")
            #expect(try env.redis.call(["TTL", env.key("{0}:audit:\(open)")]).int == -1)
        }
    }
}
