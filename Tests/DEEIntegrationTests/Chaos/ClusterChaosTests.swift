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
    static let ownCluster = Result { () throws(TestRedisError) in try TestCluster() }

    static func harness(seed: UInt64, replicas: Int = 0) throws -> (ChaosHarness, TestCluster) {
        let executable = try #require(
            CrashTests.deeExecutable(), "the dee executable was not found; build it with `swift build --product dee`")
        let cluster = try ownCluster.get()
        var harness = ChaosHarness(executable: executable, url: cluster.url, partitions: 12, seed: seed)
        harness.replicas = replicas
        return (harness, cluster)
    }

    @Test(.timeLimit(.minutes(6))) func twoEnginesOnAClusterNoFault() async throws {
        try await TestEngine.offPool {
            var (harness, _) = try Self.harness(seed: 31)
            // The fault-free run on one Redis: every reply, run, audit entry, event and action request the same.
            harness.oracleURL = try TestRedis.url()
            ChaosTests.expectClean(
                try harness.run("cluster: two engines, no fault (compared with one Redis)", engines: 2) { _, _ in })
        }
    }

    /// kill -9 at random moments: inside a routed batch, an owner's round, a tick or a bulk command.
    @Test(.timeLimit(.minutes(6))) func twoEnginesOnAClusterKilledAtRandomMoments() async throws {
        try await TestEngine.offPool {
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
        try await TestEngine.offPool {
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

    /// The README's procedure for moving a partition to another master: engines stopped, the slot of `{p}` moved
    /// (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, `MIGRATE` of its keys, `SETSLOT … NODE` on every master), engines
    /// started again. Every run is found where the engine looks, and commands go on.
    @Test(.timeLimit(.minutes(4))) func aPartitionMovedToAnotherMasterWhileTheEnginesAreStopped() async throws {
        try await TestEngine.offPool {
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
}
