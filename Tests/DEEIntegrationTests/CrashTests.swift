import DEEClient
import DEECore
import DEETestSupport
import Foundation
import Redis
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SPEC 4 and 9: a tick interrupted by kill -9 is finished by the next owner before any later command, and no run
/// steps twice. The engine runs as the real `dee` executable so that it can be killed.
@Suite(.serialized) struct CrashTests {
    /// The `dee` executable built beside the test bundle (or in the repository's .build), if any.
    static func deeExecutable() -> String? {
        let fm = FileManager.default
        var starts: [URL] = []
        if let first = CommandLine.arguments.first { starts.append(URL(fileURLWithPath: first)) }
        starts.append(Bundle.main.bundleURL)
        if let exe = Bundle.main.executablePath { starts.append(URL(fileURLWithPath: exe)) }
        for start in starts {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<6 {
                let candidate = dir.appendingPathComponent("dee").path
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue, fm.isExecutableFile(atPath: candidate) {
                    return candidate
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        // <repo>/Tests/DEEIntegrationTests/CrashTests.swift → <repo>/.build*/debug/dee
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for build in [".build-ttest", ".build"] {
            let candidate = repo.appendingPathComponent(build).appendingPathComponent("debug").appendingPathComponent("dee").path
            if fm.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func fields(_ flat: [RESPValue]) -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < flat.count {
            out[flat[i].string ?? ""] = flat[i + 1].string ?? ""
            i += 2
        }
        return out
    }

    static func entries(_ redis: any RedisCommands, _ key: String) throws -> [[String: String]] {
        var out: [[String: String]] = []
        var from = "-"
        while true {
            let reply = try redis.call(["XRANGE", key, from, "+", "COUNT", "5000"])
            let items = reply.array ?? []
            var last: String?
            for item in items {
                guard let pair = item.array, pair.count == 2, let id = pair[0].string else { continue }
                last = id
                out.append(fields(pair[1].array ?? []))
            }
            guard let last, items.count == 5000 else { break }
            from = "(" + last
        }
        return out
    }

    @Test(.timeLimit(.minutes(3))) func tickInterruptedByKillFinishesAfterRestart() async throws {
        try await Self.tickInterruptedByKill(url: try TestRedis.url())
    }

    /// A tick over 3,000 runs, the engine killed with `kill -9` inside it, a successor that finishes it: every run
    /// stepped once, a command sent after the tick applied after it. `url`: one Redis, or a cluster's
    /// (``ClusterChaosTests``).
    static func tickInterruptedByKill(url: String) async throws {
        let executable = try #require(
            Self.deeExecutable(), "the dee executable was not found beside the tests; build it with `swift build --product dee`")
        let prefix = TestRedis.uniquePrefix()
        try await offPool {
            let redis = try RedisConfiguration(url: url).makeConnection()
            defer { _ = try? redis.unlinkKeys(matching: "\(prefix):*") }
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("dee-crash-\(prefix).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let client = DEEClient(redis: try RedisConfiguration(url: url).makeConnection(), prefix: prefix)
            let events = "\(prefix):{0}:events"
            let actions = "\(prefix):{0}:actions"

            let first = try EngineProcess(executable: executable, url: url, prefix: prefix, consumer: "crash-\(prefix)", log: log)
            var firstKilled = false
            defer { if !firstKilled { first.killHard() } }

            let reg = try client.call(
                "registerPlan",
                ["plan": planText("crash", [actionStep("a1", params: ["to": "{{contact.email}}"]), waitStep("w", 5), endStep("done", "ok")])],
                timeout: 60)
            try #require(reg.ok, "\(reg.fields)\n\(first.output)")
            let n = 3000
            let contacts = (0..<n).map { ["id": "k\($0)", "email": "k\($0)@example.com"] }
            let bulk = try client.call("bulkExecute", ["planId": "crash", "contacts": js(contacts)], timeout: 120)
            try #require(bulk.ok, "\(bulk.fields)")
            try #require(bulk.object["created"] as? Int == n, "\(bulk.fields)")
            try #require(try redis.call(["XLEN", events]).int == n)

            // Tick 1, killed once some runs have stepped.
            let tickId = try client.send("tick", ["count": "1"])
            var atKill = 0
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                atKill = try redis.call(["XLEN", events]).int ?? 0
                if atKill > n { break }
            }
            first.killHard()
            firstKilled = true
            try #require(atKill > n, "no run stepped within 30 s\n\(first.output)")
            // The kill should land inside the tick (it has \(n / 200) batches); if not, the test proves less.
            #expect(atKill < 2 * n, "the tick had finished before the kill (\(atKill) events)")

            // A later command on the run the tick steps last: it must apply after the tick finishes.
            let created = try Self.entries(redis, events).filter { $0["type"] == "run.created" }.compactMap { $0["runId"] }
            try #require(created.count == n)
            let lastRun = try #require(created.max())
            let pauseId = try client.send("pauseRun", ["runId": lastRun])

            let second = try EngineProcess(executable: executable, url: url, prefix: prefix, consumer: "crash-\(prefix)", log: log)
            defer { second.stop() }
            let tick = try client.reply(to: tickId, timeout: 60)
            #expect(tick.ok, "\(tick.fields)\n\(second.output)")
            #expect(tick.object["tick"] as? Int == 1, "\(tick.fields)")
            #expect(tick.object["stepped"] as? Int == n, "\(tick.fields)")
            let pause = try client.reply(to: pauseId, timeout: 30)
            #expect(pause.ok, "\(pause.fields)")
            let paused = RunView(pause.object)
            #expect(paused.status == "paused", "\(paused.summary)")
            #expect(paused.stepsCompleted == 1, "the pause was applied before the interrupted tick finished: \(paused.summary)")
            #expect(paused.currentStep == "w", "\(paused.summary)")

            // Every run stepped exactly once in tick 1.
            let all = try Self.entries(redis, events)
            let steps = all.filter { $0["type"] == "run.step" }
            #expect(steps.count == n)
            #expect(steps.allSatisfy { $0["tick"] == "1" })
            var perRun: [String: Int] = [:]
            for e in steps { perRun[e["runId"] ?? "", default: 0] += 1 }
            #expect(perRun.count == n)
            #expect(perRun.values.allSatisfy { $0 == 1 }, "runs stepped twice: \(perRun.filter { $0.value != 1 }.prefix(5))")
            #expect(Set(perRun.keys) == Set(created))

            let requests = try Self.entries(redis, actions)
            #expect(requests.count == n)
            var perRunActions: [String: Int] = [:]
            for r in requests where r["tick"] == "1" { perRunActions[r["runId"] ?? "", default: 0] += 1 }
            #expect(perRunActions.count == n)
            #expect(perRunActions.values.allSatisfy { $0 == 1 })
            #expect(Set(requests.compactMap { $0["idempotencyKey"] }).count == n)

            let stepped = try redis.pipeline(created.map { ["HMGET", "\(prefix):{0}:run:\($0)", "n", "st", "t"] })
            let states = stepped.map { ($0.array ?? []).map { $0.string ?? "" } }
            #expect(states.allSatisfy { $0 == ["1", "w", "1"] }, "\(states.filter { $0 != ["1", "w", "1"] }.prefix(5))")
            let audits = try redis.pipeline(created.map { ["LLEN", "\(prefix):{0}:audit:\($0)"] })
            let expectedAudit = created.map { $0 == lastRun ? 3 : 2 }  // execute, tick (and the pause)
            #expect(audits.map { $0.int ?? -1 } == expectedAudit)

            let stats = try client.call("stats", timeout: 30)
            #expect(stats.object["tick"] as? Int == 1, "\(stats.fields)")
            let byStatus = (stats.object["runsByStatus"] as? [String: Any]) ?? [:]
            #expect(byStatus["waiting"] as? Int == nil || byStatus["waiting"] as? Int == 0)
            #expect(byStatus["active"] as? Int == n - 1, "\(stats.fields)")
            #expect(byStatus["paused"] as? Int == 1, "\(stats.fields)")

            // The engine goes on: tick 2 moves every active run into its wait, once.
            let t2 = try client.call("tick", ["count": "1"], timeout: 60)
            #expect(t2.object["tick"] as? Int == 2 && t2.object["stepped"] as? Int == n - 1, "\(t2.fields)")
        }
    }

    /// A bulkExecute killed between its (pipelined) batches is finished by the next owner: every contact gets
    /// exactly one run, and the reply counts them as an uninterrupted command would.
    @Test(.timeLimit(.minutes(3))) func bulkExecuteInterruptedByKillCreatesEveryRunOnce() async throws {
        let executable = try #require(
            Self.deeExecutable(), "the dee executable was not found beside the tests; build it with `swift build --product dee`")
        let url = try TestRedis.url()
        let prefix = TestRedis.uniquePrefix()
        try await offPool {
            let redis = RedisConnection(configuration: try RedisConfiguration(url: url))
            defer { _ = try? redis.unlinkKeys(matching: "\(prefix):*") }
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("dee-crash-bulk-\(prefix).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let client = DEEClient(redis: try RedisConfiguration(url: url).makeConnection(), prefix: prefix)
            let events = "\(prefix):{0}:events"

            let first = try EngineProcess(executable: executable, url: url, prefix: prefix, consumer: "crash-\(prefix)", log: log)
            var firstKilled = false
            defer { if !firstKilled { first.killHard() } }
            let reg = try client.call("registerPlan", ["plan": simplePlan("bulkcrash")], timeout: 60)
            try #require(reg.ok, "\(reg.fields)\n\(first.output)")

            let n = 6000
            let contacts = (0..<n).map { ["id": "b\($0)", "email": "b\($0)@example.com"] }
            let bulkId = try client.send("bulkExecute", ["planId": "bulkcrash", "contacts": js(contacts), "batchSize": "100"])
            var atKill = 0
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                atKill = try redis.call(["XLEN", events]).int ?? 0
                if atKill >= 500 { break }
            }
            first.killHard()
            firstKilled = true
            try #require(atKill >= 500, "no batch written within 30 s\n\(first.output)")
            #expect(atKill < n, "the command had finished before the kill (\(atKill) runs)")

            let second = try EngineProcess(executable: executable, url: url, prefix: prefix, consumer: "crash-\(prefix)", log: log)
            defer { second.stop() }
            let reply = try client.reply(to: bulkId, timeout: 90)
            #expect(reply.ok, "\(reply.fields)\n\(second.output)")
            #expect(reply.object["created"] as? Int == n, "\(reply.fields)")
            #expect(reply.object["skipped"] as? Int == 0, "\(reply.fields)")

            let created = try Self.entries(redis, events).filter { $0["type"] == "run.created" }
            #expect(created.count == n)
            #expect(Set(created.compactMap { $0["contactId"] }).count == n, "a contact got two runs")
            #expect(try enrollmentCount(redis, base: "\(prefix):{0}") == n)
            #expect(try Indexes.members(redis, base: "\(prefix):{0}", status: "active").count == n)
        }
    }
}
