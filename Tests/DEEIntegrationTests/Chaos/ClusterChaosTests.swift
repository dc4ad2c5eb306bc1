import DEEClient
import DEECore
import DEETestSupport
import Foundation
import Redis
import Testing

/// The chaos scenarios on a Redis Cluster (issue 11): `dee serve --redis-url redis://…?cluster=1` processes on a
/// six-node cluster of this suite's own (three masters, a replica each; ``TestCluster``), 12 partitions (four per
/// master, SPEC 8), the same seeded workload and the same comparison with a fault-free run as ``ChaosTests``.
/// A master failover is tried with `--wait-replicas 1` and producers that `WAIT` for their `XADD`s, as
/// docs/RELIABILITY.md "Replicas" tells a deployment to run.
@Suite(.serialized) struct ClusterChaosTests {
    /// This suite's cluster (not the Redis module's shared one, whose tests fail masters over on their own).
    static let ownCluster = Result { () throws(TestRedisError) in try TestCluster.started() }

    static func harness(seed: UInt64, replicas: Int = 0) throws -> (ChaosHarness, TestCluster) {
        let executable = try #require(
            CrashTests.deeExecutable(), "the dee executable was not found; build it with `swift build --product dee`")
        let cluster = try ownCluster.get()
        var harness = ChaosHarness(executable: executable, url: cluster.url, partitions: 12, seed: seed)
        harness.replicas = replicas
        return (harness, cluster)
    }

    @Test(.timeLimit(.minutes(6))) func twoEnginesOnAClusterNoFault() async throws {
        try await offPool {
            var (harness, _) = try Self.harness(seed: 31)
            // The fault-free run on one Redis: every reply, run, audit entry, event and action request the same.
            harness.oracleURL = try TestRedis.url()
            ChaosTests.expectClean(
                try harness.run("cluster: two engines, no fault (compared with one Redis)", engines: 2) { _, _ in })
        }
    }

    /// kill -9 at random moments: inside a routed batch, an owner's round, a tick or a bulk command.
    @Test(.timeLimit(.minutes(6))) func twoEnginesOnAClusterKilledAtRandomMoments() async throws {
        try await offPool {
            let (harness, _) = try Self.harness(seed: 32)
            let row = try harness.run("cluster: two engines, kill -9 at random moments", engines: 2) { faults, _ in
                faults.randomMoment(400)
                faults.killRandomEngine()
            }
            ChaosTests.expectClean(row)
        }
    }

    /// kill -9 of the master that holds the ingress stream, while the engines work on a wave: its replica takes
    /// over (about 4 s with the cluster's 2 s node timeout), the engines find the new map and go on; the killed node
    /// rejoins as a replica. Nothing a replica did not have was acknowledged or replied, so nothing is lost.
    @Test(.timeLimit(.minutes(8))) func ingressMasterFailsOverUnderLoad() async throws {
        try await offPool {
            let (harness, cluster) = try Self.harness(seed: 33, replicas: 1)
            let row = try harness.run("cluster: kill -9 of the ingress master under load (WAIT 1)", engines: 2) {
                faults, wave in
                guard wave == 2 else { return }
                faults.randomMoment(300)
                do {
                    let client = try RedisClusterConnection(configuration: RedisConfiguration(url: cluster.url))
                    defer { client.close() }
                    guard let victim = try client.node(forKey: "\(faults.prefix):commands") else {
                        faults.notes.append("no master for the ingress slot")
                        return
                    }
                    cluster.killNode(UInt16(victim.port))
                    faults.restarts += 1
                    // Until a replica is promoted the cluster is down for that slot; then the node comes back as
                    // a replica.
                    let deadline = Date().addingTimeInterval(30)
                    while Date() < deadline {
                        try? client.refreshSlotMap()
                        if let now = try? client.node(forKey: "\(faults.prefix):commands"), now != victim { break }
                        usleep(200_000)
                    }
                    let now = (try? client.node(forKey: "\(faults.prefix):commands")).flatMap { $0 }
                    print("chaos: killed the ingress master \(victim.port); the slot is served by \(now.map { "\($0.port)" } ?? "nobody")")
                    try cluster.restart(UInt16(victim.port))
                    try cluster.waitUntilHealthy(timeout: 60)
                } catch {
                    faults.notes.append("failover: \(error)")
                }
            }
            ChaosTests.expectClean(row)
        }
    }

    /// The engine killed with `kill -9` inside a tick of 3,000 runs on a cluster: its successor finishes the tick,
    /// every run stepped once, nothing doubled (``CrashTests/tickInterruptedByKill(url:)``).
    @Test(.timeLimit(.minutes(3))) func anEngineKilledMidTickOnAClusterDoublesNothing() async throws {
        try await CrashTests.tickInterruptedByKill(url: try Self.ownCluster.get().url)
    }

    /// The README's procedure for moving a partition to another master: engines stopped, the slot of `{p}` moved
    /// (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, `MIGRATE` of its keys, `SETSLOT … NODE` on every master), engines
    /// started again. Every run is found where the engine looks, and commands go on.
    @Test(.timeLimit(.minutes(4))) func aPartitionMovedToAnotherMasterWhileTheEnginesAreStopped() async throws {
        try await offPool {
            let executable = try #require(CrashTests.deeExecutable(), "build dee first: swift build --product dee")
            let cluster = try Self.ownCluster.get()
            let prefix = TestRedis.uniquePrefix()
            let redis = try RedisClusterConnection(configuration: RedisConfiguration(url: cluster.url))
            defer {
                try? redis.unlinkKeys(matching: "\(prefix):*")
                redis.close()
            }
            let logs = FileManager.default.temporaryDirectory.appendingPathComponent("dee-cluster-move-\(prefix)")
            try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: logs) }
            let engine = try EngineProcess(
                executable: executable, url: cluster.url, prefix: prefix, consumer: "mover",
                extra: ["--partitions", "12"], log: logs.appendingPathComponent("engine.log"))
            defer { engine.killHard() }
            let client = DEEClient(
                redis: try RedisClusterConnection(configuration: RedisConfiguration(url: cluster.url)), prefix: prefix)
            try client.register(simplePlan("mv"))
            for i in 0..<40 { try client.run("mv", "c\(i)") }
            #expect(try client.call("listRuns", ["planId": "mv"]).total == 40)
            let stopped = engine.stop(grace: 20)
            #expect(stopped?.status == 0)

            // Partition 3's slot, from its master to another one.
            let slot = HashSlot(key: "{3}").rawValue
            let map = try redis.slotMap()
            let source = try #require(try redis.node(forKey: "\(prefix):{3}:inbox"))
            let target = try #require(map.masters.first { $0 != source })
            let from = RedisConnection(configuration: RedisConfiguration(host: source.host, port: source.port))
            let to = RedisConnection(configuration: RedisConfiguration(host: target.host, port: target.port))
            defer {
                from.close()
                to.close()
            }
            let sourceID = try #require(try from.call(["CLUSTER", "MYID"]).string)
            let targetID = try #require(try to.call(["CLUSTER", "MYID"]).string)
            try to.call(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID])
            try from.call(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID])
            var moved = 0
            while true {
                let keys = (try from.call(["CLUSTER", "GETKEYSINSLOT", String(slot), "100"]).array ?? []).compactMap(\.string)
                if keys.isEmpty { break }
                try from.call(["MIGRATE", target.host, String(target.port), "", "0", "5000", "KEYS"] + keys)
                moved += keys.count
            }
            #expect(moved > 0)
            for master in map.masters {
                let c = RedisConnection(configuration: RedisConfiguration(host: master.host, port: master.port))
                try c.call(["CLUSTER", "SETSLOT", String(slot), "NODE", targetID])
                c.close()
            }
            try cluster.waitUntilHealthy()
            try redis.refreshSlotMap()
            #expect(try redis.node(forKey: "\(prefix):{3}:inbox") == target)

            try engine.start()
            #expect(eventually(timeout: 30) { (try? client.call("listRuns", ["planId": "mv"]).total) == 40 }, "\(engine.output)")
            for i in 40..<60 { try client.run("mv", "c\(i)") }
            #expect(try client.call("listRuns", ["planId": "mv"]).total == 60)
            // A contact of partition 3 has its one run, and a second execute for it is refused as a duplicate.
            let mine = try #require((0..<60).map { "c\($0)" }.first { Partitioning.partition(ofContact: $0, count: 12) == 3 })
            #expect(try client.call("listRuns", ["contactId": mine]).total == 1)
            #expect(try client.call("execute", ["planId": "mv", "contact": contact(mine)]).error == "already_enrolled")
        }
    }

    /// The same commands on a cluster and on one Redis (12 partitions each) read back the same: listRuns pages
    /// (merged order across nodes), exact totals, stats, after a bulkExecute, ticks and a bulkCancel. And the CLI on
    /// a plain URL of a cluster node (cluster mode detected): stats, and events tail reading every node.
    @Test(.timeLimit(.minutes(4))) func readsAcrossNodesAnswerAsOneRedisDoes() async throws {
        try await offPool {
            let executable = try #require(CrashTests.deeExecutable(), "build dee first: swift build --product dee")
            let cluster = try Self.ownCluster.get()
            let plainNode = "redis://127.0.0.1:\(cluster.ports[1])"
            let logs = FileManager.default.temporaryDirectory.appendingPathComponent("dee-cluster-reads-\(TestRedis.uniquePrefix())")
            try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: logs) }

            /// Runs the sequence on one deployment; returns what the reads said, run ids replaced by contact ids.
            func sequence(url: String, prefix: String) throws -> [String] {
                let engine = try EngineProcess(
                    executable: executable, url: url, prefix: prefix, consumer: "reads",
                    extra: ["--partitions", "12"], log: logs.appendingPathComponent("\(prefix).log"))
                defer { engine.killHard() }
                // The engine gets the plain URL (it detects the cluster); this test's client is told.
                let redis = try RedisConfiguration(url: url == plainNode ? cluster.url : url).makeConnection()
                defer { try? redis.unlinkKeys(matching: "\(prefix):*") }
                let client = DEEClient(redis: redis, prefix: prefix)
                let plan = js([
                    "id": "r", "name": "r",
                    "steps": [
                        ["id": "a", "type": "action", "action": "send_email", "params": ["template": "t"]],
                        ["id": "w", "type": "wait", "ticks": 2],
                        ["id": "e", "type": "end", "outcome": "done"],
                    ],
                ])
                try client.register(plan)
                let contacts = (0..<240).map { contact("k\($0)") }.joined(separator: ",")
                #expect(try client.call("bulkExecute", ["planId": "r", "contacts": "[\(contacts)]", "batchSize": "50"]).ok)
                // Each execute in a millisecond of its own: listRuns orders runs of one millisecond by id ascending
                // and newer milliseconds first, so two executes that happened to share one on a single deployment
                // (a command's round trip is under 1 ms on a fast machine) would list in the other order there.
                func run(_ i: Int) throws {
                    usleep(2000)
                    try client.run("r", "e\(i)")
                    usleep(2000)
                }
                for i in 0..<20 { try run(i) }
                #expect(try client.call("tick", ["count": "2"]).ok)
                #expect(try client.call("bulkCancel", ["filters": #"{"planId":"r","status":["waiting"]}"#, "reason": "x"]).ok)
                for i in 20..<30 { try run(i) }
                #expect(try client.call("tick", ["count": "3"]).ok)
                var said: [String] = []
                let shapes: [[String: String]] = [
                    ["planId": "r"], ["status": "cancelled"], ["status": "completed"], ["status": "waiting"],
                    ["planId": "r", "status": "cancelled", "offset": "100"], ["planId": "r", "offset": "250"],
                ]
                for shape in shapes {
                    let r = try client.call("listRuns", shape.merging(["limit": "50"]) { a, _ in a })
                    let contactsOfPage = r.runs.compactMap { $0["contactId"] as? String }
                    said.append("\(shape.sorted { $0.key < $1.key }): total \(r.total ?? -1), \(contactsOfPage)")
                }
                said.append("stats: \(js(try client.stats().object))")
                if url == plainNode {
                    // The CLI on a plain URL of a cluster node: detected, reads go to every node.
                    let options = ["--redis-url", plainNode, "--prefix", prefix]
                    let statsOut = try Self.runDee(executable, ["stats"] + options)
                    #expect(statsOut.status == 0 && statsOut.output.contains("partitions      12"), "\(statsOut)")
                    let events = try Self.runDee(executable, ["events", "tail", "--from", "0", "--no-follow", "--json"] + options)
                    let created = events.output.split(separator: "\n").filter { $0.contains("run.created") }.count
                    #expect(events.status == 0 && created == 270, "\(created) run.created events\n\(events.output.suffix(500))")
                }
                return said
            }
            let onCluster = try sequence(url: plainNode, prefix: TestRedis.uniquePrefix())
            let onOneRedis = try sequence(url: try TestRedis.url(), prefix: TestRedis.uniquePrefix())
            #expect(onCluster.count == onOneRedis.count)
            for (a, b) in zip(onCluster, onOneRedis) { #expect(a == b) }
        }
    }

    /// Runs `dee arguments…` to its end (bounded: 60 s) and returns its exit status and standard output.
    static func runDee(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("dee-cli-\(TestRedis.uniquePrefix())")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let handle = try FileHandle(forWritingTo: out)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }
}
