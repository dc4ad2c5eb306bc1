import DEEClient
import DEECore
import Foundation
import Redis
import Testing

/// The grouped path (Partition/CommandBatching.swift) against the single one: the same entries, with the same
/// explicit ids, sent once one at a time (each waits for its reply, so each is applied alone) and once in one
/// pipeline (the owner reads them in batches and groups them), must give byte-identical replies and Redis state.
/// A seeded mix of what a deployment sees: executes with and without requestId, repeated and reused requestIds,
/// pauses, resumes, cancels, signals by contact and by run, action results, reads and ticks.
@Suite(.serialized) struct GroupedCommandsTests {
    static let plan = planText("mix", exitOn: ["unsubscribed"], [
        actionStep("intro"),
        listenStep("listen", "replied", timeout: 4, onSignal: "won", onTimeout: "lost"),
        endStep("won", "replied"),
        endStep("lost", "no_reply"),
    ])

    struct Entry {
        let id: String
        let fields: [(String, String)]
    }

    /// The entries: ids `1700000000000-<n>`, so run ids (made from entry ids) are the same in both deployments.
    static func entries(seed: UInt64, count: Int) -> [Entry] {
        var random = SeededRandom(seed)
        var out: [Entry] = [Entry(id: "1700000000000-1", fields: [("type", "registerPlan"), ("plan", plan)])]
        var executes: [(id: String, contact: String, requestId: String?)] = []
        var ticks = 0
        for n in 2...(count + 1) {
            let id = "1700000000000-\(n)"
            let runOf = { (e: (id: String, contact: String, requestId: String?)) in
                RunID.make(entry: EntryID(e.id) ?? EntryID(ms: 0, seq: 0), index: 0, partition: 0)
            }
            // Mostly a recent run: commands on the same run in one group are where grouping could go wrong.
            func target() -> String {
                runOf(random.chance(70) ? random.pick(Array(executes.suffix(3))) : random.pick(executes))
            }
            var fields: [(String, String)]
            let roll = random.below(100)
            if roll < 40 || executes.isEmpty {
                // Half new contacts (runs that exist to be paused, signalled, ...), half a few shared ones (enrollment).
                let who = random.chance(50) ? "n\(n)" : "c\(random.below(6))"
                if !executes.isEmpty, random.chance(15), let again = executes.filter({ $0.requestId != nil }).last {
                    // A retry of an earlier command (same requestId, same arguments), or a reuse for another contact.
                    let reuse = random.chance(30)
                    fields = [
                        ("type", "execute"), ("requestId", again.requestId ?? ""), ("planId", "mix"),
                        ("contact", contact(reuse ? who : again.contact)),
                    ]
                } else {
                    let rid: String? = random.chance(60) ? "rid-\(n)" : nil
                    fields = [("type", "execute"), ("planId", "mix"), ("contact", contact(who))]
                    if let rid { fields.append(("requestId", rid)) }
                    executes.append((id, who, rid))
                }
            } else if roll < 48 {
                fields = [("type", "pauseRun"), ("runId", target())]
            } else if roll < 56 {
                fields = [("type", "resumeRun"), ("runId", target())]
            } else if roll < 63 {
                fields = [("type", "cancelRun"), ("runId", target()), ("reason", "asked")]
            } else if roll < 70 {
                fields = [("type", "signal"), ("contactId", "c\(random.below(6))"), ("name", random.chance(80) ? "replied" : "unsubscribed")]
            } else if roll < 74 {
                fields = [("type", "signal"), ("runId", target()), ("name", "replied")]
            } else if roll < 82 {
                let run = target()
                let key = ActionRequest.key(runId: run, step: "intro", tick: max(1, ticks + random.below(2)), attempt: 1)
                fields = [("type", "actionResult"), ("runId", run), ("idempotencyKey", key), ("ok", random.chance(80) ? "true" : "false")]
            } else if roll < 90 {
                fields = [("type", "getRun"), ("runId", target())]
            } else if roll < 95 {
                fields = [("type", "tick")]
                ticks += 1
            } else {
                fields = [("type", "listRuns"), ("contactId", "c\(random.below(6))")]
            }
            if random.chance(20), !fields.contains(where: { $0.0 == "requestId" }),
                !["getRun", "listRuns", "execute"].contains(fields[0].1)
            {
                fields.append(("requestId", "rid-\(n)"))
            }
            out.append(Entry(id: id, fields: fields))
        }
        return out
    }

    /// Everything the deployment holds, keys without the prefix: strings, hashes, lists, sets and sorted sets as
    /// they are; streams as their entries' fields (their ids are Redis's own) except the inbox, whose ids are ours.
    static func snapshot(_ env: TestEngine.Env) throws -> [String: String] {
        var out: [String: String] = [:]
        var cursor = "0"
        var keys: [String] = []
        repeat {
            let reply = try env.redis.call(["SCAN", cursor, "MATCH", "\(env.prefix):*", "COUNT", "1000"])
            cursor = reply.array?.first?.string ?? "0"
            keys += (reply.array?.dropFirst().first?.array ?? []).compactMap(\.string)
        } while cursor != "0"
        for key in keys {
            let name = String(key.dropFirst(env.prefix.count))
            // Leases, epochs and the router's bookkeeping name the process; replies name the client's stream; the
            // inbox and results are trimmed and the watermarks moved as rounds happen to fall (a grouped read moves
            // `applied`, a read alone does not), which is the engine's own business.
            if name.hasSuffix(":lease") || name.hasSuffix(":epoch") || name.hasSuffix(":rfence") || name.hasPrefix(":router")
                || name == ":members"
                || name.hasPrefix(":replies:") || name == ":commands" || name.hasSuffix(":results")
                || name.hasSuffix(":inbox") || name.hasSuffix(":applied") || name.hasSuffix(":replied")
            {
                continue
            }
            let type = try env.redis.call(["TYPE", key]).string ?? ""
            let value: RESPValue
            switch type {
            case "string": value = try env.redis.call(["GET", key])
            case "hash": value = .array(try env.redis.call(["HGETALL", key]).pairs.sorted { $0.key < $1.key }.map { .string("\($0.key)=\($0.value)") })
            case "list": value = try env.redis.call(["LRANGE", key, "0", "-1"])
            case "set": value = .array((try env.redis.call(["SMEMBERS", key]).array ?? []).sorted { "\($0)" < "\($1)" })
            case "zset": value = try env.redis.call(["ZRANGE", key, "0", "-1", "WITHSCORES"])
            case "stream":
                let entries = RESPValue.streamEntryList(try env.redis.call(["XRANGE", key, "-", "+"]))
                value = .array(entries.map { e in .string((name.hasSuffix(":inbox") ? e.id + " " : "") + e.fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")) })
            default: value = .string(type)
            }
            out[name] = "\(value)"
        }
        return out
    }

    /// Sends the entries, either waiting for each reply before the next or all in one pipeline; returns every
    /// reply by command id, and the state once all are answered.
    static func apply(_ entries: [Entry], pipelined: Bool) async throws -> (replies: [String: [String: String]], state: [String: String]) {
        let box = Locked<([String: [String: String]], [String: String])>(([:], [:]))
        try await TestEngine.with { client, env in
            let xadds = entries.map { e in
                ["XADD", env.key("commands"), e.id, "replyTo", client.replyStream] + e.fields.flatMap { [$0.0, $0.1] }
            }
            var replies: [String: [String: String]] = [:]
            if pipelined {
                let ids = try env.redis.pipeline(xadds)
                #expect(ids.allSatisfy { $0.string != nil }, "\(ids.filter { $0.string == nil })")
                for e in entries { replies[e.id] = try client.reply(to: e.id, timeout: 60).fields }
            } else {
                for (e, xadd) in zip(entries, xadds) {
                    _ = try env.redis.call(xadd)
                    replies[e.id] = try client.reply(to: e.id, timeout: 60).fields
                }
            }
            let state = try snapshot(env)
            box.withLock { $0 = (replies, state) }
        }
        return box.withLock { (replies: $0.0, state: $0.1) }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func groupedEqualsOneByOne(seed: UInt64) async throws {
        let entries = Self.entries(seed: seed, count: 400)
        let single = try await Self.apply(entries, pipelined: false)
        let grouped = try await Self.apply(entries, pipelined: true)
        for e in entries {
            #expect(single.replies[e.id] == grouped.replies[e.id], "entry \(e.id) \(e.fields.prefix(3))")
        }
        #expect(single.state.keys.sorted() == grouped.state.keys.sorted())
        for (key, value) in single.state where grouped.state[key] != value {
            Issue.record("\(key) differs:\n one by one: \(value.prefix(600))\n grouped:    \((grouped.state[key] ?? "nil").prefix(600))")
        }
        // Not vacuous: the mix reached every outcome it is meant to exercise.
        let replies = Array(single.replies.values)
        #expect(replies.contains { $0["type"] == "signal" && ($0["result"] ?? "").contains("\"delivered\":1") })
        #expect(replies.contains { $0["type"] == "pauseRun" && $0["ok"] == "true" })
        #expect(replies.contains { $0["type"] == "resumeRun" && $0["ok"] == "true" })
        #expect(replies.contains { $0["error"] == "already_enrolled" })
        #expect(replies.contains { $0["field"] == "requestId" })
        #expect(replies.contains { $0["type"] == "actionResult" && ($0["result"] ?? "").contains("\"currentStep\":\"listen\"") })
    }
}

/// A value behind a lock, for results handed out of a @Sendable test body.
final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
