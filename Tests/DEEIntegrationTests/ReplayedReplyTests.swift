import DEEClient
import DEEService
import DEETestSupport
import Foundation
import Redis
import Testing

/// At-least-once replies (SPEC 9): a command applied but not replied before its owner stopped is replied by the
/// next owner from its stored result, without being applied again, also when it had no requestId.
@Suite(.serialized)
struct ReplayedReplyTests {
    @Test func appliedButUnrepliedCommandsAreRepliedFromTheirStoredResults() async throws {
        let url = try TestRedis.url()
        let prefix = TestRedis.uniquePrefix()
        let redis = RedisConnection(configuration: try RedisConfiguration(url: url))
        let client = DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: url)), prefix: prefix)

        let a = Task { try await TestEngine.engine(prefix, consumer: "a", url: url).run() }
        let first: [(id: String, runId: String)] = try await offPool {
            try client.register(examplePlan)
            return try (0..<3).map { i in
                let id = try client.send("execute", ["planId": "welcome", "contact": contact("again\(i)")])
                let reply = try client.reply(to: id)
                #expect(reply.ok, "\(reply.fields)")
                return (id, try #require(reply.object["id"] as? String))
            }
        }
        a.cancel()
        _ = try? await a.value

        // As if the owner had died after applying the three and before replying: the replied watermark goes back
        // to before them, and their replies are gone.
        let before = try #require(first.first?.id).split(separator: "-").first.flatMap { Int($0) }.map { "\($0 - 1)-0" }
        try redis.call(["SET", "\(prefix):{0}:replied", try #require(before)])
        try redis.call(["DEL", client.replyStream])

        let b = Task { try await TestEngine.engine(prefix, consumer: "b", url: url).run() }
        try await offPool {
            for (id, runId) in first {
                let again = try client.reply(to: id)
                #expect(again.ok, "\(again.fields)")
                #expect(again.object["id"] as? String == runId)
            }
            // Replied again, not applied again.
            #expect(try client.call("listRuns").total == 3)
        }
        b.cancel()
        _ = try? await b.value
        try await offPool { try redis.unlinkKeys(matching: "\(prefix):*") }
    }
}
