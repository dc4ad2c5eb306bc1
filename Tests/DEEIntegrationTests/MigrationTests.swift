import DEEClient
import DEECore
import DEEService
import DEEStore
import Foundation
import Redis
import Testing

/// `dee migrate` from a deployment written in layout 1 (long run-hash field names, docs/MEMORY.md): the engine
/// reads and writes such hashes while they exist, and after the migration every read answers the same.
@Suite(.serialized) struct MigrationTests {
    /// The bench's plan: action, wait 1000 ticks, action, end.
    static let benchPlan = #"{"id":"bench","steps":[{"id":"hello","type":"action","action":"send","params":{"to":"{{contact.email}}"}},{"id":"pause","type":"wait","ticks":1000},{"id":"nudge","type":"action","action":"send","params":{"to":"{{contact.email}}"}},{"id":"done","type":"end"}]}"#

    /// A run hash as layout 1 wrote it: long names, every field but nulls, `id` included.
    static func legacyFields(_ r: Run) -> [String] {
        let all: [(String, String?)] = [
            ("id", r.id), ("planId", r.planId), ("planVersion", String(r.planVersion)), ("contactId", r.contactId),
            ("status", r.status.rawValue), ("currentStep", r.currentStep),
            ("stepsCompleted", String(r.stepsCompleted)), ("stepsRemaining", String(r.stepsRemaining)),
            ("startTick", String(r.startTick)), ("currentTick", String(r.currentTick)),
            ("startedAt", String(r.startedAt)), ("completedAt", r.completedAt.map { String($0) }),
            ("outcome", r.outcome), ("variables", JSONValue.object(r.variables).canonical), ("error", r.error),
            ("contact", JSONValue.object(r.contact).canonical), ("pausedFrom", r.pausedFrom?.rawValue),
            ("due", r.due.map { String($0) }), ("attempt", r.attempt == 0 ? nil : String(r.attempt)),
            ("awaitKey", r.awaitKey), ("deferred", r.deferred.isEmpty ? nil : JSONValue.array(r.deferred).canonical),
            ("auditHead", r.auditHead), ("auditCount", String(r.auditCount)),
        ]
        return all.flatMap { k, v in v.map { [k, $0] } ?? [] }
    }

    static func runIds(_ env: TestEngine.Env) throws -> [String] {
        try Indexes.allRuns(env.redis, base: env.key("{0}"))
    }

    static func hash(_ env: TestEngine.Env, _ id: String) throws -> [String: String] {
        try env.redis.call(["HGETALL", env.key("{0}:run:\(id)")]).pairs
    }

    /// Rewrites every run hash of the deployment as layout 1 wrote it, and forgets the recorded layout.
    static func writeLayoutOne(_ env: TestEngine.Env) throws {
        for id in try runIds(env) {
            let run = try #require(Run(id: id, fields: try hash(env, id)))
            try env.redis.call(["DEL", env.key("{0}:run:\(id)")])
            try env.redis.call(["HSET", env.key("{0}:run:\(id)")] + legacyFields(run))
        }
        try env.redis.call(["HDEL", env.key("meta"), "layout"])
    }

    /// Every contact record of partition 0 (layout 3): contact → value.
    static func records(_ env: TestEngine.Env) throws -> [String: String] {
        var out: [String: String] = [:]
        for key in (try env.redis.call(["KEYS", env.key("{0}:cx:*")]).array ?? []).compactMap(\.string) {
            out.merge(try env.redis.call(["HGETALL", key]).pairs) { a, _ in a }
        }
        return out
    }

    /// The records the engine writes for the runs there are: each contact's runs in id (creation) order, the
    /// open ones tagged with their plan.
    static func expectedRecords(_ env: TestEngine.Env) throws -> [String: String] {
        var out: [String: String] = [:]
        for id in try runIds(env) {
            let run = try #require(Run(id: id, fields: try hash(env, id)))
            let token = ContactRecords.token(runId: id, planId: run.planId, open: run.status.isOpen)
            out[run.contactId] = out[run.contactId].map { $0 + " " + token } ?? token
        }
        return out
    }

    /// Rewrites the contact records as layouts 1 and 2 kept them: a sorted set per contact (scored by
    /// startedAt) and the `enroll` hash (`plan:contact` → open run); records layout 2.
    static func writeLayoutTwoContacts(_ env: TestEngine.Env) throws {
        for (contact, value) in try records(env) {
            for token in value.split(separator: " ") {
                let parts = token.split(separator: "/", maxSplits: 1).map(String.init)
                let run = try #require(Run(id: parts[0], fields: try hash(env, parts[0])))
                try env.redis.call(["ZADD", env.key("{0}:idx:contact:\(contact)"), String(run.startedAt), run.id])
                if parts.count == 2 { try env.redis.call(["HSET", env.key("{0}:enroll"), "\(parts[1]):\(contact)", run.id]) }
            }
        }
        for key in (try env.redis.call(["KEYS", env.key("{0}:cx:*")]).array ?? []).compactMap(\.string) {
            try env.redis.call(["DEL", key])
        }
        try env.redis.call(["HSET", env.key("meta"), "layout", String(Layout.compactRuns)])
    }

    /// Every read a client makes of the deployment, as JSON text: each run, and listRuns by every filter SPEC 6 has.
    static func answers(_ client: DEEClient, _ env: TestEngine.Env) throws -> [String] {
        var out: [String] = []
        for id in try runIds(env) { out.append(js(try client.getRun(id))) }
        let ids = try runIds(env)
        let mid = try #require(ids.dropFirst(ids.count / 2).first.map { String($0.prefix(13)) })
        let queries: [[String: String]] = [
            [:], ["status": "waiting"], ["status": #"["active","paused","cancelled"]"#], ["planId": "bench"],
            ["planId": "bench", "status": "waiting"], ["planId": "other"], ["contactId": "b7"],
            ["contactId": "b7", "status": "waiting"], ["contactId": "b7", "planId": "other"],
            ["contactId": "b3", "status": "paused"], ["startedAfter": mid], ["startedBefore": mid, "limit": "7"],
            ["status": "waiting", "offset": "40", "limit": "30"],
        ]
        for q in queries {
            let r = try client.call("listRuns", q.merging(["limit": q["limit"] ?? "1000"]) { a, _ in a })
            #expect(r.ok, "\(q): \(r.fields)")
            out.append(js(q) + " " + js(r.object))
        }
        out.append(js(try client.stats().object["runsByStatus"] ?? [:]))
        return out
    }

    /// Runs of two plans in several states: waiting (bulk), active, paused, cancelled, completed, with variables.
    static func populate(_ client: DEEClient) throws {
        try client.register(benchPlan)
        try client.register(simplePlan("other"))
        let contacts = (0..<120).map { #"{"id":"b\#($0)","email":"x@y.z"}"# }.joined(separator: ",")
        let bulk = try client.call("bulkExecute", ["planId": "bench", "contacts": "[\(contacts)]", "batchSize": "50"])
        #expect(bulk.ok, "\(bulk.fields)")
        _ = try client.advanceClock(2)
        for c in ["b7", "b3", "x1"] { try client.run("other", c, ["variables": #"{"tier":"gold","n":2}"#]) }
        _ = try client.advanceClock(2)
        try client.run("other", "b7")
        let b3 = try #require(
            try client.call("listRuns", ["contactId": "b3", "planId": "bench"]).runIds.first)
        #expect(try client.call("pauseRun", ["runId": b3, "reason": "hold"]).ok)
        let b5 = try #require(try client.call("listRuns", ["contactId": "b5"]).runIds.first)
        #expect(try client.call("cancelRun", ["runId": b5, "reason": "gone"]).ok)
    }

    @Test func aLayoutOneDeploymentIsReadTheSameBeforeAndAfterDeeMigrate() async throws {
        try await TestEngine.with { client, env in
            try Self.populate(client)
            let expected = try Self.answers(client, env)
            let ids = try Self.runIds(env)
            #expect(ids.count == 124)
            // Written by this engine: layout 2, recorded when the deployment started.
            #expect(try env.redis.call(["HGET", env.key("meta"), "layout"]).int == Layout.current)
            let compact = try Dictionary(uniqueKeysWithValues: ids.map { ($0, try Self.hash(env, $0)) })

            let records = try Self.records(env)
            #expect(records == (try Self.expectedRecords(env)))
            try Self.writeLayoutTwoContacts(env)
            try Self.writeLayoutOne(env)
            #expect(try Self.hash(env, ids[0])["planId"] == "bench")
            // Lazily tolerant: every read answers the same from layout-1 hashes.
            #expect(try Self.answers(client, env) == expected)

            // The migration in bounded batches, interrupted after one and resumed.
            let migration = LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1, batchSize: 20)
            let first = try migration.run(maxBatches: 1, env.redis)
            #expect(!first.done && first.batches == 1)
            #expect(try migration.layout(env.redis) == Layout.longFields)
            #expect(try env.redis.call(["HGET", env.key("meta"), "migrate:2:0"]).string != nil, "its cursor is kept")
            let rest = try migration.run(env.redis)
            #expect(rest.done)
            // Both steps: the run hashes (layout 2), then the 121 contacts' indexes (layout 3).
            #expect(first.converted + rest.converts.first { $0.layout == 2 }!.count == ids.count)
            #expect(rest.converts.first { $0.layout == 3 }?.count == 121)
            #expect(try migration.layout(env.redis) == Layout.current)
            #expect(try env.redis.call(["HKEYS", env.key("meta")]).array?.compactMap(\.string).filter { $0.hasPrefix("migrate:") } == [])
            // Exactly the hashes and records the engine writes, and the same answers.
            for id in ids { #expect(try Self.hash(env, id) == compact[id], "\(id)") }
            #expect(try Self.records(env) == records)
            #expect(try env.redis.call(["KEYS", env.key("{0}:idx:contact:*")]).array?.count == 0)
            #expect(try !env.exists("{0}:enroll"))
            #expect(try Self.answers(client, env) == expected)
            // Again: nothing to do.
            let again = try migration.run(env.redis)
            #expect(again.done && again.converted == 0 && again.batches == 0)
        }
    }

    /// Writes to layout-1 hashes before the migration reaches them (the engine updates only changed fields, by
    /// short name): reads see the new values, and the migration keeps them.
    @Test func runsChangedBeforeTheMigrationKeepTheirChanges() async throws {
        try await TestEngine.with { client, env in
            try Self.populate(client)
            try Self.writeLayoutOne(env)
            let b3 = try #require(try client.call("listRuns", ["contactId": "b3", "planId": "bench"]).runIds.first)
            #expect(try client.call("resumeRun", ["runId": b3]).ok)
            let b9 = try #require(try client.call("listRuns", ["contactId": "b9"]).runIds.first)
            #expect(try client.call("pauseRun", ["runId": b9]).ok)
            // Steps every run due: "other" runs finish (currentStep and due deleted under both names).
            _ = try client.advanceClock(3)
            #expect(try Self.hash(env, b9)["s"] == "paused" && Self.hash(env, b9)["status"] == "waiting")
            let expected = try Self.answers(client, env)
            #expect(try client.getRun(b3)["status"] as? String == "waiting")
            #expect(try client.getRun(b9)["status"] as? String == "paused")
            let completed = try client.call("listRuns", ["planId": "other", "status": "completed"])
            #expect(completed.total == 4, "\(completed.fields)")
            for id in completed.runIds { #expect(try client.getRun(id)["currentStep"] is NSNull) }

            let done = try LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1).run(env.redis)
            #expect(done.done)
            #expect(try Self.answers(client, env) == expected)
            for id in try Self.runIds(env) {
                let h = try Self.hash(env, id)
                let run = try #require(Run(id: id, fields: h))
                var written: [String: String] = [:]
                for (k, v) in run.storedFields { if let v { written[k] = v } }
                #expect(h == written, "\(id)")
            }
        }
    }

    /// Layout 2 → 3 with the engine running: before the migration it reads enrollments and contacts' runs from
    /// layout 2's keys as well as from records (runs created since), and every answer stays the same through an
    /// interrupted migration with writes between its batches.
    @Test func aLayoutTwoDeploymentFoldsItsContactIndexesWhileTheEngineRuns() async throws {
        try await TestEngine.with(configure: { $0.leaseMilliseconds = 1500 }) { client, env in
            try Self.populate(client)
            try Self.writeLayoutTwoContacts(env)
            // The owner reads the layout at each renewal (every 500 ms here).
            Thread.sleep(forTimeInterval: 1.2)
            // Enrollments of layout 2 hold: b1 has an open bench run there, b5's was cancelled.
            let again = try client.call("execute", ["planId": "bench", "contact": #"{"id":"b1","email":"x@y.z"}"#])
            #expect(again.error == "already_enrolled", "\(again.fields)")
            let bulk = try client.call(
                "bulkExecute", ["planId": "bench", "contacts": #"[{"id":"b2","email":"x@y.z"},{"id":"b5","email":"x@y.z"},{"id":"n1","email":"x@y.z"}]"#])
            #expect(bulk.object["created"] as? Int == 2 && bulk.object["skipped"] as? Int == 1, "\(bulk.fields)")
            // A contact's runs: layout 2's and the record's.
            #expect(try client.call("listRuns", ["contactId": "b5"]).total == 2)
            // A layout-2 run finishing leaves its enrollment.
            let b4 = try #require(try client.call("listRuns", ["contactId": "b4"]).runIds.first)
            #expect(try client.call("cancelRun", ["runId": b4, "reason": "x"]).ok)
            #expect(try env.redis.call(["HEXISTS", env.key("{0}:enroll"), "bench:b4"]).int == 0)
            try client.run("bench", "b4")

            let expected = try Self.answers(client, env)
            let migration = LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1, batchSize: 10)
            let first = try migration.run(maxBatches: 3, env.redis)
            #expect(!first.done && first.converts.map(\.layout) == [3])
            #expect(try Self.answers(client, env) == expected, "half migrated")
            // Writes between batches: a new contact, a second plan for a migrated or unmigrated one.
            try client.run("other", "n2")
            for c in ["b0", "b60", "b119"] { try client.run("other", c) }
            let dup = try client.call("execute", ["planId": "bench", "contact": #"{"id":"b60","email":"x@y.z"}"#])
            #expect(dup.error == "already_enrolled", "\(dup.fields)")
            let rest = try migration.run(env.redis)
            #expect(rest.done)
            #expect(try migration.layout(env.redis) == Layout.current)
            #expect(try Self.records(env) == (try Self.expectedRecords(env)))
            #expect(try env.redis.call(["KEYS", env.key("{0}:idx:contact:*")]).array?.count == 0)
            #expect(try !env.exists("{0}:enroll"))
            Thread.sleep(forTimeInterval: 1.2)
            let after = try client.call("execute", ["planId": "bench", "contact": #"{"id":"b1","email":"x@y.z"}"#])
            #expect(after.error == "already_enrolled", "\(after.fields)")
            #expect(try client.call("listRuns", ["contactId": "b60"]).total == 2)
        }
    }

    /// A deployment started before `layout` was recorded starts as layout 1 (its hashes may be old), a new one
    /// as the current layout.
    @Test func theLayoutIsRecordedForANewDeploymentOnly() async throws {
        try await TestEngine.with { client, env in
            #expect(try client.stats().ok, "the engine started (and checked the deployment)")
            #expect(try LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1).layout(env.redis) == Layout.current)
            try env.redis.call(["HDEL", env.key("meta"), "layout"])
            #expect(try LayoutMigration(keys: Keys(prefix: env.prefix), partitions: 1).layout(env.redis) == Layout.longFields)
        }
    }
}
