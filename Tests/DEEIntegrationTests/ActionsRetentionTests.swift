import DEEClient
import DEEService
import DEEStore
import Foundation
import Logging
import Redis
import Testing

/// Action requests are never dropped unread: the actions stream is trimmed to about `streamMaxLen` only while no
/// executor consumer group reads it; with groups, only below what every group acknowledged (`XTRIM MINID`).
@Suite(.serialized) struct ActionsRetentionTests {
    static let maxLen = 50

    static func configure(_ config: inout EngineConfiguration) {
        config.streamMaxLen = maxLen
        config.actionsTrimEverySeconds = 0.1
    }

    /// Without an executor group, the stream is trimmed to about streamMaxLen, as before.
    @Test func withoutAGroupActionsAreTrimmedToAboutMaxLen() async throws {
        try await TestEngine.with(configure: Self.configure) { client, env in
            try produceActions(client, plan: "nogroup", count: 300)
            let node = try nodeEntries(env.redis)
            var length = -1
            let trimmed = try eventually {
                length = try env.xlen("{0}:actions")
                return length <= Self.maxLen + node
            }
            #expect(trimmed, "XLEN \(length), streamMaxLen \(Self.maxLen), stream-node-max-entries \(node)")
            // Approximate trimming never goes below MAXLEN.
            #expect(try env.xlen("{0}:actions") >= Self.maxLen)
            #expect(try env.xlen("{0}:events") > 0)
        }
    }

    /// With a group, nothing it has not acknowledged is trimmed, whatever streamMaxLen says; once it acknowledges,
    /// the stream is trimmed.
    @Test func withAGroupNothingUnacknowledgedIsTrimmed() async throws {
        try await TestEngine.with(configure: Self.configure) { client, env in
            let stream = env.key("{0}:actions")
            try env.redis.call(["XGROUP", "CREATE", stream, "executors", "0", "MKSTREAM"])
            let runs = try produceActions(client, plan: "grouped", count: 300)
            // The actions are appended without MAXLEN, and a trim (the service's, or this one right now) keeps them.
            let store = ActionsStore(keys: Keys(prefix: env.prefix).partition(0))
            let trim = try store.trim(holder: nil, maxLen: Self.maxLen, env.redis)
            #expect(trim.mode == .minid)
            #expect(trim.removed == 0)
            #expect(trim.length == 300)
            #expect(trim.groups.map(\.name) == ["executors"])
            #expect(try env.xlen("{0}:actions") == 300)

            // The group reads every action request.
            let read = try env.redis.call([
                "XREADGROUP", "GROUP", "executors", "e1", "COUNT", "1000", "STREAMS", stream, ">",
            ])
            let entries = read.array?.first?.array?.last?.streamEntries ?? []
            #expect(entries.count == 300)
            #expect(Set(entries.compactMap { $0.fields["runId"] }) == runs)
            #expect(entries.allSatisfy { $0.fields["idempotencyKey"]?.count == 32 })

            // Acknowledge the first 200: they may go, the other 100 stay.
            let ids = entries.map(\.id)
            try env.redis.call(["XACK", stream, "executors"] + ids.prefix(200))
            let node = try nodeEntries(env.redis)
            var length = -1
            let trimmed = try eventually {
                length = try env.xlen("{0}:actions")
                return length <= 100 + node
            }
            #expect(trimmed, "XLEN \(length) after acknowledging 200 of 300")
            #expect(try env.xlen("{0}:actions") >= 100)
            let held = Set(try env.stream("{0}:actions").map(\.id))
            #expect(ids.suffix(100).allSatisfy(held.contains), "an unacknowledged action request was trimmed")
            #expect(try env.redis.call(["XPENDING", stream, "executors"]).array?.first?.int == 100)

            // Acknowledge the rest: the stream is trimmed.
            try env.redis.call(["XACK", stream, "executors"] + ids.suffix(100))
            let drained = try eventually {
                length = try env.xlen("{0}:actions")
                return length <= Self.maxLen
            }
            #expect(drained, "XLEN \(length) after acknowledging everything")

            // Requests produced now are not delivered yet: they stay too.
            try produceActions(client, plan: "later", count: 120)
            let again = try store.trim(holder: nil, maxLen: Self.maxLen, env.redis)
            #expect(again.mode == .minid)
            #expect(try env.redis.call(["XLEN", stream]).int ?? 0 >= 120)
            let rest = try env.redis.call([
                "XREADGROUP", "GROUP", "executors", "e1", "COUNT", "1000", "STREAMS", stream, ">",
            ])
            #expect(rest.array?.first?.array?.last?.streamEntries.count == 120)
        }
    }

    /// `stats` reports each executor group's pending entries and lag, and the action requests held.
    @Test func statsReportsExecutorGroups() async throws {
        // streamMaxLen above what the test produces: no trim races the counts it compares.
        try await TestEngine.with(partitions: 2, configure: { $0.streamMaxLen = 1000; $0.actionsTrimEverySeconds = 0.1 }) {
            client, env in
            let empty = try client.stats()
            #expect(empty.ok, "\(empty.fields)")
            #expect((empty.object["executors"] as? [Any])?.isEmpty == true)
            #expect(empty.object["actionsBacklog"] as? Int == 0)
            #expect(empty.object["partitions"] as? Int == 2)

            let stream = env.key("{1}:actions")
            try env.redis.call(["XGROUP", "CREATE", stream, "executors", "0", "MKSTREAM"])
            try produceActions(client, plan: "stats", count: 80)
            let onOne = try env.xlen("{1}:actions")
            try #require(onOne > 3)
            _ = try env.redis.call(["XREADGROUP", "GROUP", "executors", "e1", "COUNT", "3", "STREAMS", stream, ">"])

            let s = try client.stats()
            #expect(s.ok, "\(s.fields)")
            let executors = (s.object["executors"] as? [[String: Any]]) ?? []
            try #require(executors.count == 1, "\(s.fields)")
            #expect(executors[0]["partition"] as? Int == 1)
            #expect(executors[0]["group"] as? String == "executors")
            #expect(executors[0]["pending"] as? Int == 3)
            #expect(executors[0]["lag"] as? Int == onOne - 3)
            let total = try env.xlen("{0}:actions") + env.xlen("{1}:actions")
            #expect(s.object["actionsBacklog"] as? Int == total)
            // The earlier fields are unchanged.
            #expect(s.object["tick"] as? Int == 1)
            #expect((s.object["runsByStatus"] as? [String: Int])?["active"] == 80)
            #expect(s.object["plans"] as? Int == 1)
        }
    }

    /// A group that falls behind is named in the log with its partition, at most once per interval, and again
    /// when it caught up.
    @Test func aGroupBehindIsLoggedRateLimited() async throws {
        try await TestEngine.with(configure: { $0.streamMaxLen = 10; $0.actionsTrimEverySeconds = 0.1 }) { client, env in
            let stream = env.key("{0}:actions")
            try env.redis.call(["XGROUP", "CREATE", stream, "slow", "0", "MKSTREAM"])
            try produceActions(client, plan: "behind", count: 40)

            let log = CapturedLog()
            var config = TestEngine.configuration(prefix: env.prefix, partitions: 1)
            config.streamMaxLen = 10
            let retention = ActionsRetention(
                config: config, redis: try RedisConfiguration(url: env.url),
                logger: Logger(label: "retention-test") { _ in log })
            var warnings = RetentionWarnings()
            let t0 = ContinuousClock.now
            let trims = try retention.round(env.redis, &warnings, ownedOnly: false, now: t0)
            #expect(trims[0]?.mode == .minid)
            #expect(trims[0]?.length == 40)
            var lines = log.lines
            #expect(lines.count == 1, "\(lines)")
            #expect(lines.first?.level == .warning)
            #expect(lines.first?.message.contains("group slow on partition 0") == true, "\(lines)")
            #expect(lines.first?.metadata["lag"] == "40")

            // Still behind: not repeated within the interval, repeated after it.
            try retention.round(env.redis, &warnings, ownedOnly: false, now: t0 + .seconds(1))
            #expect(log.lines.count == 1)
            try retention.round(env.redis, &warnings, ownedOnly: false, now: t0 + ActionsRetention.warningInterval + .seconds(1))
            #expect(log.lines.count == 2)

            // Read and acknowledge everything: it caught up.
            let read = try env.redis.call(["XREADGROUP", "GROUP", "slow", "e1", "COUNT", "100", "STREAMS", stream, ">"])
            let ids = (read.array?.first?.array?.last?.streamEntries ?? []).map(\.id)
            #expect(ids.count == 40)
            try env.redis.call(["XACK", stream, "slow"] + ids)
            try retention.round(env.redis, &warnings, ownedOnly: false, now: t0 + .seconds(200))
            lines = log.lines
            #expect(lines.count == 3, "\(lines)")
            #expect(lines.last?.level == .info)
            #expect(lines.last?.message.contains("caught up") == true)
        }
    }
}

extension ActionsRetentionTests {
    /// The floor after a last-delivered id at the largest sequence is the next millisecond's first id; a caller
    /// that does not hold the partition's lease trims nothing.
    @Test func floorAtTheLargestSequenceAndOwnership() async throws {
        try await TestEngine.with { _, env in
            // Partition 7 of this deployment: no engine owns it.
            let keys = Keys(prefix: env.prefix).partition(7)
            let store = ActionsStore(keys: keys)
            #expect(try store.trim(holder: nil, maxLen: 1, env.redis).mode == .empty)
            for id in ["5-1", "5-2", "5-18446744073709551615"] {
                try env.redis.call(["XADD", keys.actions, id, "a", id])
            }
            try env.redis.call(["XGROUP", "CREATE", keys.actions, "executors", "0"])
            let read = try env.redis.call([
                "XREADGROUP", "GROUP", "executors", "e1", "COUNT", "10", "STREAMS", keys.actions, ">",
            ])
            let ids = (read.array?.first?.array?.last?.streamEntries ?? []).map(\.id)
            #expect(ids.count == 3)
            // Pending: the oldest pending entry is the floor, nothing goes.
            let held = try store.trim(holder: nil, maxLen: 1, env.redis)
            #expect(held.mode == .minid && held.floor == "5-1" && held.removed == 0 && held.length == 3, "\(held)")
            #expect(held.groups == [
                ExecutorGroup(name: "executors", pending: 3, lag: 0, consumers: 1, lastDeliveredId: "5-18446744073709551615")
            ])
            try env.redis.call(["XACK", keys.actions, "executors"] + ids)
            try env.redis.call(["SET", keys.lease, "another-process"])
            let other = try store.trim(holder: "this-process", maxLen: 1, env.redis)
            #expect(other.mode == .notOwner && other.removed == 0)
            #expect(try env.redis.call(["XLEN", keys.actions]).int == 3)
            let all = try store.trim(holder: "another-process", maxLen: 1, env.redis)
            #expect(all.mode == .minid && all.floor == "6-0" && all.removed == 3 && all.length == 0, "\(all)")
        }
    }
}

/// Registers a one-action plan, starts it for `count` contacts and ticks once: `count` new action requests.
/// Returns the run ids.
@discardableResult
private func produceActions(_ client: DEEClient, plan: String, count: Int) throws -> Set<String> {
    try client.register(simplePlan(plan))
    var runs: Set<String> = []
    var start = 0
    while start < count {
        let end = min(count, start + 100)
        let contacts = "[" + (start..<end).map { contact("\(plan)-\($0)") }.joined(separator: ",") + "]"
        let r = try client.call("bulkExecute", ["planId": plan, "contacts": contacts])
        #expect(r.ok, "\(r.fields)")
        #expect(r.object["created"] as? Int == end - start, "\(r.fields)")
        start = end
    }
    var offset = 0
    while true {
        let page = try client.call("listRuns", ["planId": plan, "limit": "100", "offset": String(offset)])
        runs.formUnion(page.runIds)
        if page.runIds.count < 100 { break }
        offset += 100
    }
    #expect(runs.count == count)
    // Runs of earlier calls (on their end step) are stepped too, without an action.
    let t = try client.advanceClock()
    #expect(t.stepped >= count)
    return runs
}

/// `stream-node-max-entries`: approximate trimming removes whole nodes of at most this many entries.
private func nodeEntries(_ redis: RedisConnection) throws -> Int {
    let reply = try redis.call(["CONFIG", "GET", "stream-node-max-entries"])
    return reply.array?.last?.int ?? 100
}
