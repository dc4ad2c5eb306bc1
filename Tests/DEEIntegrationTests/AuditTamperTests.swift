import DEEClient
import DEECore
import Foundation
import DEEService
import Redis
import Testing

/// verifyAudit (SPEC 7) against plain Redis writes to a run's audit list (`{p}:audit:<runId>`, oldest first)
/// and to the chain head and entry count its run hash keeps; and never a false alarm on untampered runs.
@Suite(.serialized) struct AuditTamperTests {
    /// intro (action) → pause (wait 2) → listen (waitForSignal "replied", timeout 4) → won / lost.
    static let plan = planText("tamper", exitOn: ["unsubscribed"], [
        actionStep("intro", params: ["to": "{{contact.email}}", "name": "{{vars.name}}"]),
        waitStep("pause", 2),
        listenStep("listen", "replied", timeout: 4, onSignal: "won", onTimeout: "lost"),
        endStep("won", "replied"),
        endStep("lost", "no_reply"),
    ])

    struct Verdict {
        let valid: Bool?
        let entries: Int?
        let brokenAt: Int?
        let expired: Bool?
    }

    static func verify(_ client: DEEClient, _ runId: String) throws -> Verdict {
        let r = try client.call("verifyAudit", ["runId": runId])
        #expect(r.ok, "\(r.fields)")
        let o = r.object
        return Verdict(
            valid: o["valid"] as? Bool, entries: o["entries"] as? Int, brokenAt: o["brokenAt"] as? Int,
            expired: o["expired"] as? Bool)
    }

    /// Runs for contacts t0…t(n-1), each with pause (reason "r1") and resume, then two ticks: every run has the
    /// same entries (execute, pause, resume, two steps…). Returns the run ids and their entry count.
    static func runs(_ client: DEEClient, _ env: TestEngine.Env, _ n: Int) throws -> (ids: [String], entries: Int) {
        try client.register(plan)
        var ids: [String] = []
        for i in 0..<n {
            let id = try client.run("tamper", "t\(i)", ["variables": #"{"name":"Zoë ✓","score":15}"#])
            ids.append(id)
        }
        for id in ids {
            #expect(try client.call("pauseRun", ["runId": id, "reason": "r1"]).ok)
            #expect(try client.call("resumeRun", ["runId": id]).ok)
        }
        try client.advanceClock(2)
        let counts = try Set(ids.map { try env.redis.call(["LLEN", env.key("{0}:audit:\($0)")]).int ?? 0 })
        #expect(counts.count == 1)
        let entries = try #require(counts.first)
        #expect(entries >= 5)
        for id in ids {
            let v = try verify(client, id)
            #expect(v.valid == true && v.entries == entries && v.brokenAt == nil, "\(id): \(v)")
        }
        return (ids, entries)
    }

    static func auditKey(_ env: TestEngine.Env, _ id: String) -> String { env.key("{0}:audit:\(id)") }

    static func entry(_ env: TestEngine.Env, _ id: String, _ i: Int) throws -> String {
        try #require(try env.redis.call(["LINDEX", auditKey(env, id), String(i)]).string)
    }

    /// An entry's text with one JSON value replaced (by its exact text `old`).
    static func edited(_ text: String, _ old: String, _ new: String) throws -> String {
        let out = text.replacingOccurrences(of: old, with: new)
        #expect(out != text, "\(old) not in \(text)")
        return out
    }

    /// A copy of `e` with a new field value, correctly chained after `previous` and checksummed with plain
    /// SHA-256: what anyone with Redis access and no audit key can write.
    static func forged(_ e: AuditEntry, previous: String, reason: String?) -> AuditEntry {
        let body = AuditEntry.body(
            at: e.at, actor: e.actor, action: e.action, runId: e.runId, reason: reason, requestId: e.requestId,
            commandId: e.commandId, tick: e.tick, details: e.details, previousChecksum: previous)
        return AuditEntry(
            at: e.at, actor: e.actor, action: e.action, runId: e.runId, reason: reason, requestId: e.requestId,
            commandId: e.commandId, tick: e.tick, details: e.details, previousChecksum: previous,
            checksum: AuditSigner().checksum(body: body, previous: previous))
    }

    static func parsed(_ text: String) throws -> AuditEntry {
        try #require(JSONValue.parse(text).flatMap(AuditEntry.init(json:)))
    }

    @Test func editedEntriesAreDetected() async throws {
        try await TestEngine.with { client, env in
            let (ids, n) = try Self.runs(client, env, 8)
            let pause = 1  // execute, pause, resume, …
            let edits: [(String, (String) throws -> String)] = [
                // A changed field.
                ("reason", { try Self.edited($0, #""reason":"r1""#, #""reason":"r2""#) }),
                // A field of another type that reads the same (null actor → a number).
                ("actor type", { try Self.edited($0, #""actor":null"#, #""actor":5"#) }),
                // A field removed (a null one).
                ("actor removed", { try Self.edited($0, #""actor":null,"#, "") }),
                // A field added.
                ("extra field", { try Self.edited($0, #""action":"#, #""forged":true,"action":"#) }),
                // The same JSON printed differently.
                ("whitespace", { try Self.edited($0, #""action":"#, #" "action" : "#) }),
                // Another spelling of the same time.
                ("time", { text in
                    let at = try Self.parsed(text).at
                    return try Self.edited(text, "\"\(Timestamp.iso(at))\"", "\"\(Timestamp.iso(at).replacingOccurrences(of: ".", with: ".0"))\"")
                }),
                // Not JSON at all.
                ("garbage", { _ in "not an entry" }),
            ]
            for ((name, edit), id) in zip(edits, ids) {
                let key = Self.auditKey(env, id)
                try env.redis.call(["LSET", key, String(pause), try edit(try Self.entry(env, id, pause))])
                let v = try Self.verify(client, id)
                #expect(v.valid == false && v.brokenAt == pause && v.entries == n, "\(name): \(v)")
            }
            // The last entry edited (nothing after it links to it: the head catches it).
            let last = ids[7]
            try env.redis.call(["LSET", Self.auditKey(env, last), String(n - 1), try Self.edited(try Self.entry(env, last, n - 1), #""tick":"#, #""tick":1"#)])
            let v = try Self.verify(client, last)
            #expect(v.valid == false && v.brokenAt == n - 1, "\(v)")
        }
    }

    @Test func removedInsertedAndTruncatedEntriesAreDetected() async throws {
        try await TestEngine.with { client, env in
            let (ids, n) = try Self.runs(client, env, 10)
            func key(_ i: Int) -> String { Self.auditKey(env, ids[i]) }
            func expectBroken(_ i: Int, at: Int, entries: Int, _ what: String) throws {
                let v = try Self.verify(client, ids[i])
                #expect(v.valid == false && v.brokenAt == at && v.entries == entries, "\(what): \(v)")
            }
            // LREM a middle entry: the one after it no longer links.
            try env.redis.call(["LREM", key(0), "1", try Self.entry(env, ids[0], 2)])
            try expectBroken(0, at: 2, entries: n - 1, "LREM middle")
            // LREM the first.
            try env.redis.call(["LREM", key(1), "1", try Self.entry(env, ids[1], 0)])
            try expectBroken(1, at: 0, entries: n - 1, "LREM first")
            // LINSERT a copy of entry 1 after itself.
            let copy = try Self.entry(env, ids[2], 1)
            try env.redis.call(["LINSERT", key(2), "AFTER", copy, copy])
            try expectBroken(2, at: 2, entries: n + 1, "LINSERT duplicate")
            // LINSERT a forged entry, chained after entry 1 with a valid SHA-256: the entry after it breaks.
            let e1 = try Self.parsed(try Self.entry(env, ids[3], 1))
            let forged = Self.forged(e1, previous: e1.checksum, reason: "forged")
            try env.redis.call(["LINSERT", key(3), "AFTER", try Self.entry(env, ids[3], 1), forged.storedText])
            try expectBroken(3, at: 3, entries: n + 1, "LINSERT forged")
            // LTRIM the newest two entries: the chain is intact but short of the head and count.
            try env.redis.call(["LTRIM", key(4), "0", String(n - 3)])
            try expectBroken(4, at: n - 2, entries: n - 2, "LTRIM tail")
            // RPOP the newest entry.
            try env.redis.call(["RPOP", key(5)])
            try expectBroken(5, at: n - 1, entries: n - 1, "RPOP")
            // LTRIM the oldest two.
            try env.redis.call(["LTRIM", key(6), "2", "-1"])
            try expectBroken(6, at: 0, entries: n - 2, "LTRIM head")
            // RPUSH a forged entry chained after the last: more entries than the count.
            let last = try Self.parsed(try Self.entry(env, ids[7], n - 1))
            try env.redis.call(["RPUSH", key(7), Self.forged(last, previous: last.checksum, reason: "more").storedText])
            try expectBroken(7, at: n, entries: n + 1, "RPUSH forged")
            // DEL the whole list of an open run.
            try env.redis.call(["DEL", key(8)])
            try expectBroken(8, at: 0, entries: 0, "DEL")
            // The list replaced by another type.
            try env.redis.call(["DEL", key(9)])
            try env.redis.call(["SET", key(9), "x"])
            try expectBroken(9, at: 0, entries: 0, "not a list")
        }
    }

    @Test func editedChainHeadAndCountAreDetected() async throws {
        try await TestEngine.with { client, env in
            let (ids, n) = try Self.runs(client, env, 6)
            func run(_ i: Int) -> String { env.key("{0}:run:\(ids[i])") }
            func expectBroken(_ i: Int, at: Int, _ what: String) throws {
                let v = try Self.verify(client, ids[i])
                #expect(v.valid == false && v.brokenAt == at && v.entries == n, "\(what): \(v)")
            }
            try env.redis.call(["HSET", run(0), "h", String(repeating: "a", count: 64)])
            try expectBroken(0, at: n, "head edited")
            try env.redis.call(["HSET", run(1), "a", String(n + 1)])
            try expectBroken(1, at: n, "count raised")
            try env.redis.call(["HSET", run(2), "a", String(n - 1)])
            try expectBroken(2, at: n - 1, "count lowered")
            try env.redis.call(["HDEL", run(3), "h", "a"])
            try expectBroken(3, at: 0, "head and count removed")
            // Another run's list and chain head copied over this run's: its entries name the other run.
            try env.redis.call(["COPY", Self.auditKey(env, ids[5]), Self.auditKey(env, ids[4]), "REPLACE"])
            let head5 = try #require(try env.redis.call(["HGET", run(5), "h"]).string)
            try env.redis.call(["HSET", run(4), "h", head5])
            try expectBroken(4, at: 0, "another run's chain")
            // Everything removed: list, head and count.
            try env.redis.call(["DEL", Self.auditKey(env, ids[5])])
            try env.redis.call(["HDEL", run(5), "h", "a"])
            let v = try Self.verify(client, ids[5])
            #expect(v.valid == false && v.brokenAt == 0 && v.entries == 0, "\(v)")
        }
    }

    /// With an audit key outside Redis, even a rewrite of the whole chain from an edited entry on, with the
    /// head moved along (all SHA-256, as anyone with Redis access could compute), is detected at the edit.
    @Test func aRewrittenChainFailsUnderAnAuditKey() async throws {
        try await TestEngine.with(configure: { $0.auditKey = Array("kept-outside-redis".utf8) }) { client, env in
            let (ids, n) = try Self.runs(client, env, 1)
            let key = Self.auditKey(env, ids[0])
            var previous = try Self.parsed(try Self.entry(env, ids[0], 0)).checksum
            for i in 1..<n {
                let e = try Self.parsed(try Self.entry(env, ids[0], i))
                let f = Self.forged(e, previous: previous, reason: i == 1 ? "rewritten" : e.reason)
                try env.redis.call(["LSET", key, String(i), f.storedText])
                previous = f.checksum
            }
            try env.redis.call(["HSET", env.key("{0}:run:\(ids[0])"), "h", previous])
            let v = try Self.verify(client, ids[0])
            #expect(v.valid == false && v.brokenAt == 1, "\(v)")
        }
    }

    /// Entries stored whole in canonical form (keys sorted, checksum among them), as engines before the
    /// checksum-first form wrote them, are the same entries: valid.
    @Test func entriesInTheEarlierStoredFormAreValid() async throws {
        try await TestEngine.with { client, env in
            let (ids, n) = try Self.runs(client, env, 1)
            let key = Self.auditKey(env, ids[0])
            for i in 0..<n {
                let e = try Self.parsed(try Self.entry(env, ids[0], i))
                #expect(e.json.canonical != e.storedText)
                try env.redis.call(["LSET", key, String(i), e.json.canonical])
            }
            let v = try Self.verify(client, ids[0])
            #expect(v.valid == true && v.brokenAt == nil && v.entries == n, "\(v)")
            // Still strict: an edit in that form is found too.
            let e2 = try Self.entry(env, ids[0], 2)
            try env.redis.call(["LSET", key, "2", try Self.edited(e2, #""action":"#, #""forged":1,"action":"#)])
            let broken = try Self.verify(client, ids[0])
            #expect(broken.valid == false && broken.brokenAt == 2, "\(broken)")
        }
    }

    /// Untampered runs stay valid through many ticks, pause/resume while waiting, signals (to waiting and
    /// paused runs), exitOn, cancel, action results, on several partitions.
    @Test func untamperedRunsAreValid() async throws {
        try await TestEngine.with(partitions: 3) { client, env in
            try client.register(Self.plan)
            var ids: [String: String] = [:]
            for i in 0..<12 {
                ids["u\(i)"] = try client.run(
                    "tamper", "u\(i)", ["variables": #"{"name":"ünï \"q\" \\ 😀","big":2147483647,"list":[1,{"a":null}]}"#])
            }
            for round in 0..<12 {
                try client.advanceClock()
                switch round {
                case 1: _ = try client.call("pauseRun", ["runId": ids["u1"]!, "reason": "hold"])
                case 3:
                    _ = try client.sendSignal(contactId: "u1", "replied", data: ["while": "paused"])
                    _ = try client.call("resumeRun", ["runId": ids["u1"]!])
                    _ = try client.sendSignal(contactId: "u2", "replied", data: ["x": 1])
                    _ = try client.sendSignal(contactId: "u3", "unsubscribed")
                case 4: _ = try client.call("cancelRun", ["runId": ids["u4"]!, "reason": "no"])
                case 5:
                    _ = try client.call("pauseRun", ["runId": ids["u5"]!])
                    _ = try client.call("resumeRun", ["runId": ids["u5"]!])
                    _ = try client.sendSignal(runId: ids["u6"]!, "replied")
                default: break
                }
            }
            for (c, id) in ids.sorted(by: { $0.key < $1.key }) {
                let p = try #require(RunID.partition(of: id))
                let n = try env.redis.call(["LLEN", env.key("{\(p)}:audit:\(id)")]).int ?? 0
                let v = try Self.verify(client, id)
                #expect(v.valid == true && v.brokenAt == nil && v.entries == n && n >= 3, "\(c): \(v)")
                #expect(try client.runView(id).status != "active", "\(c) should have moved on")
            }
        }
    }

    @Test func retainedAndExpiredAuditsOfTerminalRuns() async throws {
        try await TestEngine.with(configure: { $0.auditRetentionSeconds = 1 }) { client, env in
            try client.register(Self.plan)
            let open = try client.run("tamper", "open")
            let done = try client.run("tamper", "done")
            #expect(try client.call("cancelRun", ["runId": done, "reason": "test"]).ok)
            // Terminal and retained: valid while its entries are there.
            #expect(try Self.verify(client, done).valid == true)
            // Gone after the retention: not broken, reported as expired.
            #expect(try eventually { try env.redis.call(["EXISTS", Self.auditKey(env, done)]).int == 0 })
            let v = try Self.verify(client, done)
            #expect(v.valid == true && v.entries == 0 && v.expired == true && v.brokenAt == nil, "\(v)")
            // An open run's list never expires; deleted, it is broken.
            try env.redis.call(["DEL", Self.auditKey(env, open)])
            let o = try Self.verify(client, open)
            #expect(o.valid == false && o.brokenAt == 0 && o.expired == nil, "\(o)")
        }
        try await TestEngine.with(configure: { $0.auditRetentionSeconds = 100 }) { client, env in
            try client.register(Self.plan)
            let done = try client.run("tamper", "done")
            #expect(try client.call("pauseRun", ["runId": done]).ok)
            #expect(try client.call("cancelRun", ["runId": done, "reason": "test"]).ok)
            let ttl = try env.redis.call(["TTL", Self.auditKey(env, done)]).int ?? -2
            #expect(ttl > 0 && ttl <= 100)
            let kept = try Self.verify(client, done)
            #expect(kept.valid == true && kept.entries == 3, "\(kept)")
            try env.redis.call(["DEL", Self.auditKey(env, done)])
            let v = try Self.verify(client, done)
            #expect(v.valid == false && v.brokenAt == 0 && v.expired == nil, "\(v)")
        }
    }
}
