import DEEClient
import DEECore
import DEEService
import DEEStore
import DEETestSupport
import Foundation
import Redis
import Testing

/// The owner sends a group's next apply script before the answer to the one before it (CommandBatching, two in
/// flight). A script that fails in Redis must stop the one queued behind it: else the later commands would be applied
/// before the earlier ones, which are then applied one by one after them.
@Suite struct ChunksInFlightTests {
    @Test func aChunkThatFailsInRedisStopsTheOneBehindIt() async throws {
        // 200 executes: one router batch, one inbox round, one group of four chunks of 64.
        try await group(of: 200, poisoned: 30)
    }

    /// A group as large as the owner reads (`inboxBatch`, 1,024): the router reads the 900 in one batch
    /// (`readCount` 1,024 here) and appends them in one script, so the owner's next read has all 900, one group of
    /// fifteen chunks; the 700th's run fails the eleventh chunk, with chunks queued behind it.
    @Test func aLateChunkOfALargeGroupFailsInRedis() async throws {
        try await group(of: 900, poisoned: 700, readCount: 1024)
    }

    func group(of count: Int, poisoned failing: Int, readCount: Int? = nil) async throws {
        try await TestEngine.with(configure: { config in
            config.maxDeliveries = 2
            if let readCount { config.readCount = readCount }
        }) { client, env in
            let redis = env.redis
            let prefix = env.prefix
            let keys = Keys(prefix: prefix).partition(0)

            // The owner's first batch after taking the partition is applied one entry at a time: a first execute.
            #expect(try client.call("registerPlan", ["plan": examplePlan], timeout: 60).ok)
            #expect(try client.call("execute", ["planId": "welcome", "contact": #"{"id":"first"}"#], timeout: 60).ok)

            // The executes in one transaction, under ids of our own.
            let ms = UInt64(Date().timeIntervalSince1970 * 1000) + 1000
            func id(_ seq: Int) -> String { "\(ms)-\(seq)" }
            let executes = 1...count
            // The run the failing execute creates already has a key of another type (state an operator left behind):
            // its chunk's script fails in Redis at that run's HSET, every time.
            let poisoned = RunID.make(entry: EntryID(ms: ms, seq: UInt64(failing)), index: 0, partition: 0)
            try redis.call(["SET", keys.run(poisoned), "not a hash"])
            let adds = executes.map { n in
                [
                    "XADD", "\(prefix):commands", id(n), "type", "execute", "requestId", "chunk-\(n)",
                    "replyTo", client.replyStream,
                    "args", #"{"planId":"welcome","contact":{"id":"c\#(n)","email":"c\#(n)@example.com"}}"#,
                ]
            }
            let sent = try redis.pipeline([["MULTI"]] + adds + [["EXEC"]])
            #expect(sent.last?.array?.count == count)

            for n in executes {
                let reply = try client.reply(to: id(n), timeout: 60)
                if n == failing {
                    #expect(reply.error == "internal", "\(reply.fields)")
                } else {
                    #expect(reply.ok, "execute \(n): \(reply.fields)")
                }
            }
            // Every other execute made its run, once; the poisoned one went to the dead letters.
            let listed = try client.call("listRuns", ["planId": "welcome", "limit": "1"])
            #expect(listed.object["total"] as? Int == count, "\(listed.fields)")
            let letters = try redis.call(["XRANGE", Keys(prefix: prefix).deadletter, "-", "+"]).streamEntries
            #expect(letters.map { $0.fields["commandId"] } == [id(failing)])
            #expect(try redis.call(["GET", keys.applied]).string == id(count))
            // In entry order: the runs' first events come in the order of the commands that created them.
            var seen = Set<String>()
            var order: [String] = []
            for entry in try redis.call(["XRANGE", keys.events, "-", "+"]).streamEntries {
                if let run = entry.fields["runId"], seen.insert(run).inserted { order.append(run) }
            }
            #expect(order.count == count)
            #expect(order == order.sorted())
            #expect(!seen.contains(poisoned))
        }
    }
}
