import DEEClient
import DEECore
import DEEService
import Foundation
import Redis
import Testing

/// Error codes of SPEC 5: each malformed command gets its error reply, lands on `P:rejected`, and changes nothing.
@Suite(.serialized) struct ErrorTests {
    /// Sends raw fields (with this client's replyTo), waits for the reply, and checks the rejection was recorded
    /// on `P:rejected` with the same code and that stats did not change.
    static func rejected(
        _ client: DEEClient, _ env: TestEngine.Env, _ fields: [(String, String)], code: String, field: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> DEEReply {
        let before = try client.stats().result
        let id = try client.sendRaw(fields + [("replyTo", client.replyStream)])
        let r = try client.reply(to: id)
        #expect(!r.ok, "\(r.fields)", sourceLocation: sourceLocation)
        #expect(r.error == code, "\(r.fields)", sourceLocation: sourceLocation)
        if let field { #expect(r.field == field, "\(r.fields)", sourceLocation: sourceLocation) }
        #expect(r.message.map { !$0.isEmpty } == true, sourceLocation: sourceLocation)
        #expect(r.commandId == id, sourceLocation: sourceLocation)
        let entries = try env.rejected(id)
        #expect(entries.count == 1, "no entry on rejected for \(fields)", sourceLocation: sourceLocation)
        #expect(entries.first?["error"] == code, sourceLocation: sourceLocation)
        if let field { #expect(entries.first?["field"] == field, sourceLocation: sourceLocation) }
        #expect(try client.stats().result == before, "a rejected command changed state", sourceLocation: sourceLocation)
        return r
    }

    @Test func badRequests() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let runId = try client.run("welcome", "c1")

            // Missing type.
            _ = try Self.rejected(client, env, [("runId", runId)], code: "bad_request", field: "type")
            _ = try Self.rejected(client, env, [("type", "")], code: "bad_request", field: "type")
            // Broken JSON in args, and args that is not an object.
            _ = try Self.rejected(client, env, [("type", "getRun"), ("args", #"{"runId": "#)], code: "bad_request", field: "args")
            _ = try Self.rejected(client, env, [("type", "getRun"), ("args", "[1,2]")], code: "bad_request", field: "args")
            // args and fields mixed.
            _ = try Self.rejected(
                client, env, [("type", "getRun"), ("args", js(["runId": runId])), ("runId", runId)], code: "bad_request")
            // Broken JSON in an object argument.
            _ = try Self.rejected(
                client, env, [("type", "execute"), ("planId", "welcome"), ("contact", "{id:")], code: "bad_request",
                field: "contact")
            // Wrong argument types.
            _ = try Self.rejected(client, env, [("type", "listRuns"), ("limit", "abc")], code: "bad_request", field: "limit")
            _ = try Self.rejected(client, env, [("type", "listRuns"), ("limit", "\"5\"")], code: "bad_request", field: "limit")
            _ = try Self.rejected(client, env, [("type", "listRuns"), ("args", #"{"limit":"abc"}"#)], code: "bad_request", field: "limit")
            _ = try Self.rejected(
                client, env, [("type", "execute"), ("planId", "welcome"), ("contact", "[1]")], code: "bad_request",
                field: "contact")
            _ = try Self.rejected(client, env, [("type", "getRun"), ("args", #"{"runId":5}"#)], code: "bad_request", field: "runId")
            _ = try Self.rejected(client, env, [("type", "listRuns"), ("limit", "0")], code: "bad_request", field: "limit")
            _ = try Self.rejected(client, env, [("type", "listRuns"), ("offset", "-1")], code: "bad_request", field: "offset")
            _ = try Self.rejected(client, env, [("type", "listRuns"), ("status", "bogus")], code: "bad_request", field: "status")
            _ = try Self.rejected(
                client, env, [("type", "listRuns"), ("status", #"["active","nope"]"#)], code: "bad_request", field: "status")
            _ = try Self.rejected(
                client, env, [("type", "listRuns"), ("startedAfter", "yesterday")], code: "bad_request", field: "startedAfter")
            // Ids with forbidden characters.
            _ = try Self.rejected(client, env, [("type", "getRun"), ("runId", "a:b")], code: "bad_request", field: "runId")
            _ = try Self.rejected(client, env, [("type", "getRun"), ("runId", "{x}")], code: "bad_request", field: "runId")
            _ = try Self.rejected(
                client, env, [("type", "execute"), ("planId", "welcome"), ("contact", contact("a:b"))], code: "bad_request",
                field: "contact.id")
            _ = try Self.rejected(
                client, env, [("type", "execute"), ("planId", "welcome"), ("contact", contact("{0}"))], code: "bad_request",
                field: "contact.id")
            _ = try Self.rejected(
                client, env, [("type", "execute"), ("planId", "we lcome"), ("contact", contact("c9"))], code: "bad_request",
                field: "planId")
            _ = try Self.rejected(client, env, [("type", "suppress"), ("contactId", "x\ny")], code: "bad_request", field: "contactId")
            _ = try Self.rejected(
                client, env, [("type", "listRuns"), ("planId", "a:{b}")], code: "bad_request", field: "planId")
            _ = try Self.rejected(
                client, env, [("type", "suppress"), ("contactId", String(repeating: "x", count: 129))], code: "bad_request",
                field: "contactId")
            // Unknown argument.
            _ = try Self.rejected(client, env, [("type", "getRun"), ("runId", runId), ("colour", "red")], code: "bad_request", field: "colour")
            _ = try Self.rejected(client, env, [("type", "stats"), ("verbose", "true")], code: "bad_request", field: "verbose")
            _ = try Self.rejected(
                client, env, [("type", "listRuns"), ("args", #"{"statuz":"active"}"#)], code: "bad_request", field: "statuz")
            // Missing required arguments.
            _ = try Self.rejected(client, env, [("type", "getRun")], code: "bad_request", field: "runId")
            _ = try Self.rejected(client, env, [("type", "cancelRun"), ("runId", runId)], code: "bad_request", field: "reason")
            _ = try Self.rejected(client, env, [("type", "execute"), ("planId", "welcome")], code: "bad_request", field: "contact")
            _ = try Self.rejected(
                client, env, [("type", "execute"), ("planId", "welcome"), ("contact", #"{"email":"x@y"}"#)],
                code: "bad_request", field: "contact.id")
            _ = try Self.rejected(client, env, [("type", "execute"), ("contact", contact("c2"))], code: "bad_request", field: "plan")
            _ = try Self.rejected(
                client, env, [("type", "execute"), ("planId", "welcome"), ("plan", examplePlan), ("contact", contact("c2"))],
                code: "bad_request", field: "planId")
            // bulkCancel needs at least one filter, and only known filters.
            _ = try Self.rejected(
                client, env, [("type", "bulkCancel"), ("filters", "{}"), ("reason", "r")], code: "bad_request", field: "filters")
            _ = try Self.rejected(
                client, env, [("type", "bulkCancel"), ("reason", "r")], code: "bad_request", field: "filters")
            _ = try Self.rejected(
                client, env, [("type", "bulkCancel"), ("filters", #"{"limit":5}"#), ("reason", "r")], code: "bad_request",
                field: "filters.limit")
            _ = try Self.rejected(
                client, env, [("type", "bulkCancel"), ("filters", #"{"planId":"welcome"}"#)], code: "bad_request",
                field: "reason")
            // A field given twice.
            _ = try Self.rejected(client, env, [("type", "getRun"), ("runId", runId), ("runId", runId)], code: "bad_request")
            // A requestId too long.
            _ = try Self.rejected(
                client, env, [("type", "stats"), ("requestId", String(repeating: "r", count: 129))], code: "bad_request",
                field: "requestId")

            // The run is untouched by all of this.
            #expect(try client.getRun(runId)["status"] as? String == "active")
            #expect(try client.call("verifyAudit", ["runId": runId]).object["entries"] as? Int == 1)
        }
    }

    @Test func unknownCommand() async throws {
        try await TestEngine.with { client, env in
            let r = try Self.rejected(client, env, [("type", "launchMissiles")], code: "unknown_command", field: "type")
            #expect(r.fields["type"] == "launchMissiles")
            _ = try Self.rejected(client, env, [("type", "GETRUN"), ("runId", "x")], code: "unknown_command")
        }
    }

    @Test func notFound() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            // A well-formed run id that does not exist.
            let ghost = "0000000000001-000000-00000-0"
            for type in ["getRun", "pauseRun", "resumeRun", "verifyAudit", "getAudit"] {
                let r = try client.call(type, ["runId": ghost])
                #expect(r.error == "not_found", "\(type): \(r.fields)")
                #expect(r.field == "runId", "\(type): \(r.fields)")
            }
            #expect(try client.call("cancelRun", ["runId": ghost, "reason": "x"]).error == "not_found")
            // A valid id that is no run id of this engine.
            #expect(try client.call("getRun", ["runId": "hello"]).error == "not_found")
            // A run id naming a partition this deployment does not have.
            #expect(try client.call("getRun", ["runId": "0000000000001-000000-00000-7"]).error == "not_found")
            // Plans.
            #expect(try client.call("execute", ["planId": "nope", "contact": contact("c1")]).error == "not_found")
            #expect(try client.call("bulkExecute", ["planId": "nope", "contacts": "[\(contact("c1"))]"]).error == "not_found")
            #expect(try client.call("getPlan", ["planId": "nope"]).error == "not_found")
            let counts = try client.stats().object["runsByStatus"] as? [String: Int] ?? [:]
            #expect(counts.values.reduce(0, +) == 0)
        }
    }

    @Test func invalidTransitions() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")

            let resumeActive = try client.call("resumeRun", ["runId": id])
            #expect(!resumeActive.ok)
            #expect(resumeActive.error == "invalid_transition")
            #expect(resumeActive.message?.contains("active") == true)

            _ = try client.call("pauseRun", ["runId": id])
            let pauseTwice = try client.call("pauseRun", ["runId": id])
            #expect(pauseTwice.error == "invalid_transition")

            _ = try client.call("cancelRun", ["runId": id, "reason": "x"])
            let pauseCancelled = try client.call("pauseRun", ["runId": id])
            #expect(pauseCancelled.error == "invalid_transition")
            #expect(pauseCancelled.message?.contains("cancelled") == true)
            #expect(try client.call("resumeRun", ["runId": id]).error == "invalid_transition")
            #expect(try client.call("cancelRun", ["runId": id, "reason": "again"]).error == "invalid_transition")

            // Nothing was written by the refused commands.
            let run = try client.getRun(id)
            #expect(run["status"] as? String == "cancelled")
            let audit = try client.call("getAudit", ["runId": id]).array
            #expect(audit.count == 3)
            #expect(try client.call("verifyAudit", ["runId": id]).object["valid"] as? Bool == true)
        }
    }

    @Test func alreadyEnrolledNamesTheOpenRun() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            let id = try client.run("welcome", "c1")
            let again = try client.call("execute", ["planId": "welcome", "contact": contact("c1")])
            #expect(!again.ok)
            #expect(again.error == "already_enrolled")
            #expect(again.message?.contains(id) == true, "\(again.fields)")
            // Paused still holds the enrollment.
            _ = try client.call("pauseRun", ["runId": id])
            #expect(try client.call("execute", ["planId": "welcome", "contact": contact("c1")]).error == "already_enrolled")
            // Another plan is another enrollment.
            try client.register(simplePlan("second"))
            #expect(try client.call("execute", ["planId": "second", "contact": contact("c1")]).ok)
            // One run only for welcome/c1.
            #expect(try client.call("listRuns", ["planId": "welcome", "contactId": "c1"]).total == 1)
        }
    }

    @Test func suppressedContact() async throws {
        try await TestEngine.with { client, _ in
            try client.register(examplePlan)
            _ = try client.call("suppress", ["contactId": "c1"])
            let r = try client.call("execute", ["planId": "welcome", "contact": contact("c1")])
            #expect(!r.ok)
            #expect(r.error == "suppressed")
            #expect(try client.call("listRuns", ["contactId": "c1"]).total == 0)
        }
    }

    @Test func planInvalid() async throws {
        try await TestEngine.with { client, env in
            // Unknown step reference.
            let badRef = js([
                "id": "bad", "steps": [
                    ["id": "a", "type": "action", "action": "x", "next": "nowhere"], ["id": "e", "type": "end"],
                ],
            ])
            let r1 = try Self.rejected(client, env, [("type", "registerPlan"), ("plan", badRef)], code: "plan_invalid")
            #expect(r1.message?.contains("steps[0].next") == true, "\(r1.fields)")
            #expect(r1.field == "steps[0].next")

            let badTimeout = js([
                "id": "bad", "steps": [
                    ["id": "w", "type": "waitForSignal", "signal": "s", "onTimeout": "ghost"], ["id": "e", "type": "end"],
                ],
            ])
            let r2 = try Self.rejected(client, env, [("type", "registerPlan"), ("plan", badTimeout)], code: "plan_invalid")
            #expect(r2.message?.contains("steps[0].onTimeout") == true, "\(r2.fields)")

            // Duplicate ids.
            let dup = js([
                "id": "bad", "steps": [
                    ["id": "a", "type": "action", "action": "x"], ["id": "a", "type": "end"],
                ],
            ])
            let r3 = try Self.rejected(client, env, [("type", "registerPlan"), ("plan", dup)], code: "plan_invalid")
            #expect(r3.message?.contains("steps[1].id") == true, "\(r3.fields)")
            #expect(r3.message?.contains("duplicate") == true, "\(r3.fields)")

            // Awaited action without timeoutTicks.
            let awaited = js([
                "id": "bad", "steps": [
                    ["id": "a", "type": "action", "action": "x", "await": true], ["id": "e", "type": "end"],
                ],
            ])
            let r4 = try Self.rejected(client, env, [("type", "registerPlan"), ("plan", awaited)], code: "plan_invalid")
            #expect(r4.message?.contains("steps[0].timeoutTicks") == true, "\(r4.fields)")

            // No end reachable; a default-path loop; a bad plan id; an unknown step type.
            let noEnd = js(["id": "bad", "steps": [["id": "w", "type": "wait", "ticks": 1, "next": "w"]]])
            _ = try Self.rejected(client, env, [("type", "registerPlan"), ("plan", noEnd)], code: "plan_invalid")
            let badId = js(["id": "a:b", "steps": [["id": "e", "type": "end"]]])
            let r5 = try Self.rejected(client, env, [("type", "registerPlan"), ("plan", badId)], code: "plan_invalid")
            #expect(r5.field == "id")
            let badType = js(["id": "bad", "steps": [["id": "e", "type": "explode"]]])
            let r6 = try Self.rejected(client, env, [("type", "registerPlan"), ("plan", badType)], code: "plan_invalid")
            #expect(r6.field == "steps[0].type")

            // An invalid inline plan in execute is refused the same way, and registers nothing.
            let r7 = try Self.rejected(
                client, env, [("type", "execute"), ("plan", dup), ("contact", contact("c1"))], code: "plan_invalid")
            #expect(r7.message?.contains("steps[1].id") == true)
            #expect(try client.call("getPlan", ["planId": "bad"]).error == "not_found")
            #expect(try client.call("listPlans").array.isEmpty)
        }
    }

    @Test func tooLarge() async throws {
        try await TestEngine.with { client, env in
            let r = try Self.rejected(client, env, [("type", "listRuns"), ("limit", "5000")], code: "too_large", field: "limit")
            #expect(r.message?.contains("1000") == true)
            // The limit itself is fine.
            let ok = try client.call("listRuns", ["limit": "1000"])
            #expect(ok.ok, "\(ok.fields)")
            _ = try Self.rejected(
                client, env, [("type", "bulkExecute"), ("planId", "p"), ("contacts", "[]"), ("batchSize", "20000")],
                code: "too_large", field: "batchSize")
        }
    }

    @Test func tooLargeEntryWithSmallLimits() async throws {
        try await TestEngine.with(configure: { config in
            config.limits.maxEntryBytes = 1000
            config.limits.maxContacts = 3
        }) { client, env in
            _ = try Self.rejected(
                client, env, [("type", "stats"), ("junk", String(repeating: "x", count: 2000))], code: "too_large")
            let contacts = "[" + (0..<4).map { contact("c\($0)") }.joined(separator: ",") + "]"
            _ = try Self.rejected(
                client, env, [("type", "bulkExecute"), ("plan", simplePlan("p")), ("contacts", contacts)],
                code: "too_large", field: "contacts")
        }
    }

    @Test func replyToIntoTheEngineKeySpaceIsRejected() async throws {
        try await TestEngine.with { client, env in
            try client.register(examplePlan)
            let runId = try client.run("welcome", "c1")
            let target = env.key("{0}:run:x")
            let id = try client.sendRaw([("type", "pauseRun"), ("runId", runId), ("replyTo", target)])
            let id2 = try client.sendRaw([("type", "stats"), ("replyTo", env.key("commands"))])
            // A later command's reply means the router has handled the earlier entries.
            _ = try client.stats()
            let entries = try env.rejected(id)
            #expect(entries.count == 1)
            #expect(entries.first?["error"] == "bad_request")
            #expect(entries.first?["field"] == "replyTo")
            #expect(try env.rejected(id2).first?["field"] == "replyTo")
            #expect(try !env.exists("{0}:run:x"))
            // The command was not applied.
            #expect(try client.getRun(runId)["status"] as? String == "active")
            // Nothing was added to the ingress stream but the commands sent.
            #expect(try env.stream("commands").allSatisfy { $0.fields["commandId"] == nil })

            // Under <prefix>:replies: is allowed.
            let ok = try client.sendRaw([("type", "stats"), ("replyTo", env.key("replies:ops"))])
            #expect(try eventually { try env.xlen("replies:ops") == 1 })
            #expect(try env.stream("replies:ops").first?.fields["commandId"] == ok)
        }
    }
}
