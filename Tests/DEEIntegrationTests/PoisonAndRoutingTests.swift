import DEEClient
import DEECore
import DEEService
import Foundation
import Redis
import Testing

/// SPEC 5 and 9: poison entries are retired after their attempts (counted in Redis) and re-driven by operators;
/// requestIds are claimed across partitions; bulk commands carry each partition only its share; state left behind
/// never wedges ticks.
@Suite struct PoisonAndRoutingTests {
    /// Polls `body` until it returns a value or the deadline passes.
    static func eventually<T>(_ seconds: Double = 20, _ body: () throws -> T?) rethrows -> T? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let v = try body() { return v }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    /// A tick whose progress record an operator overwrote with a string: reading it fails before the tick writes
    /// anything, every time. Sent with an id of our own so the test knows the record's key.
    static func sendPoisonTick(_ client: DEEClient, _ env: TestEngine.Env, requestId: String) throws -> String {
        let id = "\(UInt64(Date().timeIntervalSince1970 * 1000) + 50)-7"
        try env.redis.call(["SET", env.key("{0}:progress:\(id)"), "garbage"])
        try env.redis.call([
            "XADD", env.key("commands"), id, "type", "tick", "requestId", requestId, "replyTo", client.replyStream,
        ])
        return id
    }

    @Test func anInboxEntryThatAlwaysFailsIsDeadLetteredAndTheEngineGoesOn() async throws {
        try await TestEngine.with(configure: { $0.maxDeliveries = 3 }) { client, env in
            try client.register(examplePlan)
            let run = try client.run("welcome", "c1")
            let id = try Self.sendPoisonTick(client, env, requestId: "tick-1")
            let tick = try client.reply(to: id, timeout: 60)
            #expect(!tick.ok)
            #expect(tick.error == "internal", "\(tick.fields)")
            // The commands after it are not held up: the engine answers on.
            let paused = try client.call("pauseRun", ["runId": run])
            #expect(paused.ok, "\(paused.fields)")

            let dead = try client.call("listDeadletters", ["limit": "10"])
            #expect(dead.ok, "\(dead.fields)")
            let letters = dead.array.compactMap { $0 as? [String: Any] }
            #expect(letters.count == 1)
            let letter = try #require(letters.first)
            #expect(letter["source"] as? String == "partition 0")
            #expect(letter["commandId"] as? String == id)
            let entry = (letter["entry"] as? [String: Any]) ?? [:]
            #expect(entry["type"] as? String == "tick")
            #expect(entry["requestId"] as? String == "tick-1")
            #expect(try env.redis.call(["HLEN", env.key("{0}:attempts")]).int == 0, "the count is forgotten once retired")

            // The operator repairs the state and re-drives the command: it applies, once.
            try env.redis.call(["DEL", env.key("{0}:progress:\(id)")])
            let redrive = try client.call("redriveDeadletter", ["id": try #require(letter["id"] as? String)])
            #expect(redrive.ok, "\(redrive.fields)")
            let redriven = try client.reply(to: try #require(redrive.object["commandId"] as? String), timeout: 30)
            #expect(redriven.ok, "\(redriven.fields)")
            #expect(redriven.object["tick"] as? Int == 1, "\(redriven.fields)")
            #expect(try client.call("listDeadletters").array.isEmpty)
            let again = try client.call("redriveDeadletter", ["id": try #require(letter["id"] as? String)])
            #expect(again.error == "not_found", "\(again.fields)")
        }
    }

    @Test func anIngressEntryThatAlwaysFailsIsDeadLetteredAndAnswered() async throws {
        try await TestEngine.with(configure: { $0.maxDeliveries = 3 }) { client, env in
            // The plan registry's key of this plan is not a hash: registering it can never succeed.
            try env.redis.call(["SET", env.key("{plans}:plan:broken"), "x"])
            let r = try client.call("registerPlan", ["plan": simplePlan("broken")], timeout: 60)
            #expect(r.error == "internal", "\(r.fields)")
            // The next command is answered.
            #expect(try client.call("registerPlan", ["plan": simplePlan("fine")]).ok)
            let letters = try client.call("listDeadletters").array.compactMap { $0 as? [String: Any] }
            #expect(letters.count == 1)
            #expect(letters.first?["source"] as? String == "ingress")
            #expect(letters.first?["commandId"] as? String == r.commandId)
            #expect(try env.redis.call(["HLEN", env.key("router:attempts")]).int == 0)
        }
    }

    /// Attempts are counted in Redis (so an engine restarted between attempts goes on counting), one per attempt.
    @Test func attemptsAreCountedInRedis() async throws {
        try await TestEngine.with(configure: { $0.maxDeliveries = 1_000 }) { client, env in
            let id = try Self.sendPoisonTick(client, env, requestId: "tick-2")
            let counted = try Self.eventually {
                let n = try env.redis.call(["HGET", env.key("{0}:attempts"), id]).string.flatMap { Int($0) } ?? 0
                return n >= 3 ? n : nil
            }
            #expect(counted != nil, "the owner counts its attempts at the entry in <prefix>:{0}:attempts")
        }
    }

    @Test func aRequestIdIsClaimedAcrossPartitions() async throws {
        try await TestEngine.with(partitions: 4) { client, _ in
            try client.register(examplePlan)
            // Two contacts in different partitions.
            let a = "ca"
            let b = try #require((0..<100).map { "cb\($0)" }.first {
                Partitioning.partition(ofContact: $0, count: 4) != Partitioning.partition(ofContact: a, count: 4)
            })
            let first = try client.call("execute", ["planId": "welcome", "contact": contact(a)], requestId: "same")
            #expect(first.ok, "\(first.fields)")
            let second = try client.call("execute", ["planId": "welcome", "contact": contact(b)], requestId: "same")
            #expect(second.error == "bad_request" && second.field == "requestId", "\(second.fields)")
            // The same command again is a repeat: its stored result.
            let repeated = try client.call("execute", ["planId": "welcome", "contact": contact(a)], requestId: "same")
            #expect(repeated.ok && repeated.result == first.result, "\(repeated.fields)")
            // And a plan registration cannot take it either.
            let plan = try client.call("registerPlan", ["plan": simplePlan("other")], requestId: "same")
            #expect(plan.error == "bad_request" && plan.field == "requestId", "\(plan.fields)")
        }
    }

    @Test func aBulkExecuteCarriesEachPartitionOnlyItsShare() async throws {
        try await TestEngine.with(partitions: 4) { client, env in
            try client.register(examplePlan)
            let ids = (0..<40).map { "bulk\($0)" }
            // Two contacts enrolled beforehand (skipped), one element without an id (an error).
            try client.run("welcome", ids[29])
            try client.run("welcome", ids[3])
            var contacts = ids.map { contact($0) }
            contacts[17] = #"{"email":"no-id@example.com"}"#
            let r = try client.call(
                "bulkExecute", ["planId": "welcome", "contacts": "[" + contacts.joined(separator: ",") + "]"])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["created"] as? Int == 37)
            #expect(r.object["skipped"] as? Int == 2)
            #expect(r.object["errors"] as? Int == 1)
            let skipped = (r.object["skippedContacts"] as? [[String: Any]]) ?? []
            #expect(skipped.compactMap { $0["contactId"] as? String } == [ids[3], ids[29]], "by index in the command")
            let errors = (r.object["errorDetails"] as? [[String: Any]]) ?? []
            #expect(errors.compactMap { $0["index"] as? Int } == [17])

            // Each inbox got only the contacts that hash to it.
            var carried = 0
            for p in 0..<4 {
                let entries = try env.redis.call(["XRANGE", env.key("{\(p)}:inbox"), r.commandId ?? "", r.commandId ?? ""])
                    .streamEntries
                for (_, fields) in entries {
                    let args = JSONValue.parse(fields["args"] ?? "")?.object ?? [:]
                    let share = args["contacts"]?.array ?? []
                    for c in share {
                        #expect(Partitioning.partition(ofBulkContact: c, count: 4) == p)
                    }
                    carried += share.count
                }
            }
            // The inbox may already be trimmed below the replied watermark; what is there is a share, never more.
            #expect(carried <= 40)
        }
    }

    /// An index or schedule entry whose run is gone (an operator deleted it, or eviction did) is skipped with a log
    /// line; ticks go on.
    @Test func aScheduledRunThatIsGoneDoesNotStopTicks() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let gone = try client.run("welcome", "c1")
            let kept = try client.run("welcome", "c2")
            #expect(try client.call("tick", ["count": "2"]).ok)
            try env.redis.call(["DEL", env.key("{0}:run:\(gone)")])
            let overwritten = try client.run("welcome", "c3")
            try env.redis.call(["DEL", env.key("{0}:run:\(overwritten)")])
            try env.redis.call(["SET", env.key("{0}:run:\(overwritten)"), "not a hash"])
            let tick = try client.call("tick", ["count": "5"], timeout: 30)
            #expect(tick.ok, "\(tick.fields)")
            #expect(tick.object["tick"] as? Int == 7)
            #expect(try DueSchedule.score(env.redis, base: env.key("{0}"), gone) == nil)
            #expect(try DueSchedule.score(env.redis, base: env.key("{0}"), overwritten) == nil)
            #expect(try DueSchedule.problems(env.redis, base: env.key("{0}")).isEmpty)
            #expect(try client.call("getRun", ["runId": kept]).object["status"] as? String == "completed")
        }
    }
}

/// An execute by planId after an inline plan made a new version, in the same router batch, runs the new version.
@Suite struct LatestVersionInOneBatchTests {
    @Test func anInlinePlanVersionIsSeenByTheNextCommandOfItsBatch() async throws {
        try await TestEngine.with { client, env in
            try client.register(simplePlan("lv"))
            let inline = simplePlan("lv", outcome: "second")
            // In one pipeline, so that the router reads them in one batch: the first caches version 1 as the latest.
            let ids = try env.redis.pipeline([
                ["XADD", env.key("commands"), "*", "type", "execute", "planId", "lv", "contact", contact("z"),
                 "replyTo", client.replyStream],
                ["XADD", env.key("commands"), "*", "type", "execute", "plan", inline, "contact", contact("a"),
                 "replyTo", client.replyStream],
                ["XADD", env.key("commands"), "*", "type", "execute", "planId", "lv", "contact", contact("b"),
                 "replyTo", client.replyStream],
            ]).compactMap(\.string)
            try #require(ids.count == 3)
            #expect(try client.reply(to: ids[0]).object["planVersion"] as? Int == 1)
            let first = try client.reply(to: ids[1])
            let second = try client.reply(to: ids[2])
            #expect(first.object["planVersion"] as? Int == 2, "\(first.fields)")
            #expect(second.object["planVersion"] as? Int == 2, "\(second.fields)")
        }
    }
}
