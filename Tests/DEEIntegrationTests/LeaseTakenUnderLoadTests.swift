import DEEClient
import DEECore
import DEEStore
import Foundation
import Redis
import Testing

/// A partition lease taken from its owner under load (another holder, or an operator's `SET`, with a new epoch): the
/// owner applies nothing more while the other holds it (its renewal fails, and the fence refuses a script already on
/// its way), and once the lease is free again it takes it back, and every command is applied once and replied.
@Suite struct LeaseTakenUnderLoadTests {
    @Test(.timeLimit(.minutes(2))) func theOwnerStopsWhileAnotherHoldsTheLeaseThenAppliesEverythingOnce() async throws {
        try await TestEngine.with { client, env in
            let redis = env.redis
            let keys = Keys(prefix: env.prefix).partition(0)
            #expect(try client.call("registerPlan", ["plan": examplePlan], timeout: 60).ok)
            #expect(try client.call("execute", ["planId": "welcome", "contact": #"{"id":"first"}"#], timeout: 60).ok)

            // Executes with requestId, sent one after another; half way, the lease goes to another holder (for a
            // minute, so that a slow machine does not see it run out), with a new epoch, while the owner is in a
            // round or between two.
            var ids: [String] = []
            var appliedAtTakeover: String?
            for n in 1...600 {
                ids.append(try client.send(
                    "execute", ["args": #"{"planId":"welcome","contact":{"id":"a\#(n)","email":"a\#(n)@example.com"}}"#],
                    requestId: "taken-\(n)"))
                if n == 300 {
                    let taken = try redis.pipeline([
                        ["MULTI"], ["SET", keys.lease, "another-process", "PX", "60000"], ["INCR", keys.epoch],
                        ["GET", keys.applied], ["EXEC"],
                    ])
                    appliedAtTakeover = taken.last?.array?[2].string
                }
            }
            // While the other holder has the lease, the owner applies nothing.
            Thread.sleep(forTimeInterval: 1.5)
            #expect(try redis.call(["GET", keys.applied]).string == appliedAtTakeover)
            #expect(try redis.call(["GET", keys.lease]).string == "another-process")

            // The other holder gives the lease up; the engine takes it again: every command applied once, and
            // replied.
            try redis.call(["DEL", keys.lease])
            for (n, id) in ids.enumerated() {
                let reply = try client.reply(to: id, timeout: 60)
                #expect(reply.ok, "execute \(n + 1): \(reply.fields)")
            }
            let listed = try client.call("listRuns", ["planId": "welcome", "limit": "1"])
            #expect(listed.object["total"] as? Int == 601, "\(listed.fields)")
        }
    }
}
