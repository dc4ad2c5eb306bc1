import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// Output streams and the audit chain (SPEC 7), and robustness of the ingress against garbage.
@Suite(.serialized) struct StreamTests {
    @Test func eventsForEveryCommandChange() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let created = try client.call("execute", ["planId": "welcome", "contact": contact("c1")])
            let id = try #require(created.object["id"] as? String)
            let paused = try client.call("pauseRun", ["runId": id])
            let resumed = try client.call("resumeRun", ["runId": id])
            let cancelled = try client.call("cancelRun", ["runId": id, "reason": "bye"])
            #expect(cancelled.ok)

            let events = try env.stream("{0}:events").map(\.fields).filter { $0["runId"] == id }
            #expect(events.map { $0["type"] ?? "" } == ["run.created", "run.paused", "run.resumed", "run.cancelled"])
            #expect(events.map { $0["status"] ?? "" } == ["active", "paused", "active", "cancelled"])
            #expect(events.map { $0["step"] ?? "-" } == ["intro", "intro", "intro", ""])
            let commands = [created, paused, resumed, cancelled]
            for (e, cmd) in zip(events, commands) {
                #expect(e["planId"] == "welcome")
                #expect(e["contactId"] == "c1")
                #expect(e["tick"] == "0")
                #expect(isISO(e["at"]))
                #expect(e["at"] == cmd.commandMs.map(Timestamp.iso), "the event time is the command's entry time")
            }

            // Refused commands write no event.
            _ = try client.call("pauseRun", ["runId": id])
            #expect(try env.stream("{0}:events").count == 4)
            // Commands in scope request no actions.
            #expect(try env.xlen("{0}:actions") == 0)
        }
    }

    @Test func suppressAndBulkCancelWriteCancelledEvents() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let a = try client.run("welcome", "a")
            let b = try client.run("welcome", "b")
            _ = try client.call("suppress", ["contactId": "a"])
            _ = try client.call("bulkCancel", ["filters": #"{"contactId":"b"}"#, "reason": "r"])
            let types = try env.stream("{0}:events").map(\.fields)
            #expect(types.filter { $0["type"] == "run.cancelled" }.compactMap { $0["runId"] } == [a, b])
            let audit = try env.auditList(b)
            #expect(audit.last?["action"] as? String == "bulkCancel")
            #expect(audit.last?["reason"] as? String == "r")
            #expect(try env.auditList(a).last?["action"] as? String == "suppress")
        }
    }

    @Test func auditChecksumsChain() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")
            _ = try client.call("pauseRun", ["runId": id, "reason": "one"])
            _ = try client.call("resumeRun", ["runId": id])
            _ = try client.call("pauseRun", ["runId": id])
            _ = try client.call("cancelRun", ["runId": id, "reason": "two"])

            let stored = try env.auditList(id)
            #expect(stored.count == 5)
            #expect(stored.first?["previousChecksum"] as? String == String(repeating: "0", count: 64))
            for i in stored.indices {
                let sum = stored[i]["checksum"] as? String ?? ""
                #expect(sum.count == 64)
                if i > 0 { #expect(stored[i]["previousChecksum"] as? String == stored[i - 1]["checksum"] as? String) }
                for key in ["at", "action", "runId", "requestId", "commandId", "tick", "details"] {
                    #expect(stored[i][key] != nil, "audit entry \(i) has no \(key)")
                }
            }
            #expect(Set(stored.compactMap { $0["checksum"] as? String }).count == 5)

            // getAudit gives the same entries, newest first.
            let replied = try client.call("getAudit", ["runId": id]).array.compactMap { $0 as? [String: Any] }
            #expect(replied.compactMap { $0["checksum"] as? String } == stored.reversed().compactMap { $0["checksum"] as? String })
            // The run hash keeps the chain head and count.
            let head = try env.redis.call(["HGET", env.key("{0}:run:\(id)"), "h"]).string
            #expect(head == stored.last?["checksum"] as? String)
            #expect(try env.redis.call(["HGET", env.key("{0}:run:\(id)"), "a"]).int == 5)
            #expect(try client.call("verifyAudit", ["runId": id]).object["valid"] as? Bool == true)
        }
    }

    @Test func runHashLayout() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")
            let hash = try env.redis.call(["HGETALL", env.key("{0}:run:\(id)")]).array?.compactMap(\.string) ?? []
            var fields: [String: String] = [:]
            for i in stride(from: 0, to: hash.count - 1, by: 2) { fields[hash[i]] = hash[i + 1] }
            // Layout 2 (docs/MEMORY.md): short names; no id (the key), no startedAt (the id's first 13 digits), no
            // field equal to its default.
            #expect(fields["s"] == "active")
            #expect(fields["p"] == "welcome")
            #expect(fields["c"] == "c1")
            #expect(fields["st"] == "intro")
            #expect(fields["id"] == nil && fields["sa"] == nil && fields["n"] == nil && fields["vr"] == nil)
            let base = env.key("{0}")
            #expect(try Indexes.score(env.redis, base: base, status: "active", id) != nil)
            #expect(try env.contactRecord("c1") == "\(id)/welcome")
            #expect(try Indexes.score(env.redis, base: base, status: fields["s"] ?? "", plan: "welcome", id) == String(id.prefix(13)))
            #expect(try env.enrolled("welcome", "c1") == id)
            #expect(try DueSchedule.score(env.redis, base: base, id) == "1")
            _ = try client.call("cancelRun", ["runId": id, "reason": "x"])
            #expect(try Indexes.score(env.redis, base: base, status: "active", id) == nil)
            #expect(try Indexes.score(env.redis, base: base, status: "cancelled", id) != nil)
            #expect(try env.contactRecord("c1") == id)
            #expect(try DueSchedule.score(env.redis, base: base, id) == nil)
        }
    }

    @Test func garbageFloodThenAValidCommand() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let before = try client.stats().result
            var rng = SystemRandomNumberGenerator()
            let junkAlphabet = Array("abc:{}[]\"\\\u{0}\u{1}\u{7f}\u{ff}é€😀 \n\t{0}") + ["\u{FFFD}"]
            func junk(_ n: Int) -> String { String((0..<n).map { _ in junkAlphabet.randomElement(using: &rng)! }) }
            var withReply: [String] = []
            for i in 0..<300 {
                var fields: [(String, String)]
                switch i % 6 {
                case 0: fields = [(junk(5), junk(20))]  // no type
                case 1: fields = [("type", junk(8)), (junk(3), junk(50))]  // unknown command, junk
                case 2: fields = [("type", "execute"), ("args", junk(30))]  // broken JSON
                case 3: fields = [("type", "getRun"), ("runId", junk(12))]  // forbidden characters
                case 4: fields = [("type", "registerPlan"), ("plan", #"{"id":"x","steps":[{"id":"#)]  // truncated JSON
                default: fields = [("type", "listRuns"), ("limit", junk(4)), ("\u{0}", "\u{0}")]
                }
                if i % 3 == 0 {
                    fields.append(("replyTo", client.replyStream))
                    withReply.append(try client.sendRaw(fields))
                } else {
                    try client.sendRaw(fields)
                }
            }
            // A valid command after the flood gets a correct reply.
            let r = try client.call("execute", ["planId": "welcome", "contact": contact("c1")])
            #expect(r.ok, "\(r.fields)")
            #expect(r.object["status"] as? String == "active")
            let id = try #require(r.object["id"] as? String)
            #expect(try client.getRun(id)["contactId"] as? String == "c1")
            // Every garbage entry was rejected (and acknowledged), the ones with replyTo got an error reply.
            #expect(try env.xlen("rejected") == 300)
            for cmd in withReply {
                let reply = try client.reply(to: cmd, timeout: 5)
                #expect(!reply.ok)
                #expect(["bad_request", "unknown_command", "plan_invalid"].contains(reply.error ?? ""), "\(reply.fields)")
            }
            #expect(try eventually {
                try env.redis.call(["XPENDING", env.key("commands"), "dee-engine"]).array?.first?.int == 0
            })
            // Nothing else changed.
            _ = try client.call("cancelRun", ["runId": id, "reason": "cleanup"])
            let after = try client.stats()
            let counts = after.object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts["cancelled"] == 1)
            #expect(counts.values.reduce(0, +) == 1)
            #expect(after.object["plans"] as? Int == 1)
            _ = before
        }
    }
}
