import DEEClient
import DEECore
import DEEService
import DEEStore
import DEETestSupport
import Foundation
import Redis
import Testing

/// `--wait-replicas` (SPEC 9, Replication) with a real replica: nothing is replied or acknowledged before a replica
/// has it, so a failover to that replica loses nothing anyone was told about; with the replica gone the engine
/// applies but neither replies nor acknowledges, and catches up when it is back.
@Suite(.serialized) struct ReplicationTests {
    static func linkUp(_ replica: DedicatedRedis) throws -> Bool {
        let redis = RedisConnection(configuration: try RedisConfiguration(url: replica.url))
        defer { redis.close() }
        return eventually(timeout: 20) {
            ((try? redis.call(["INFO", "replication"]).string) ?? "")?.contains("master_link_status:up") == true
        }
    }

    @Test(.timeLimit(.minutes(3))) func nothingIsRepliedOrAcknowledgedBeforeAReplicaHasIt() async throws {
        let primary = try DedicatedRedis(arguments: ["--appendonly", "no"])
        let replica = try DedicatedRedis(arguments: ["--appendonly", "no", "--replicaof", "127.0.0.1", String(primary.port)])
        #expect(try Self.linkUp(replica))
        let prefix = TestRedis.uniquePrefix()
        let engine = try TestEngine.engine(prefix, consumer: "repl", url: primary.url) {
            $0.replicaWait = ReplicaWait(replicas: 1, timeoutMilliseconds: 300)
        }
        let task = Task { try await engine.run() }
        defer { task.cancel() }
        try await offPool {
            let client = DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: primary.url)), prefix: prefix)
            let onReplica = RedisConnection(configuration: try RedisConfiguration(url: replica.url))
            try client.register(simplePlan("r"))
            // Every replied run is on the replica the moment its reply is read.
            for i in 0..<20 {
                let id = try client.run("r", "c\(i)")
                #expect(try onReplica.call(["EXISTS", "\(prefix):{0}:run:\(id)"]).int == 1, "\(id) not on the replica")
            }
            // The replica gone: the command is applied on the primary, but neither replied nor acknowledged.
            replica.killHard()
            let sent = try client.send("execute", ["planId": "r", "contact": #"{"id":"late"}"#])
            #expect(throws: (any Error).self) { _ = try client.reply(to: sent, timeout: 2) }
            let primaryRedis = RedisConnection(configuration: try RedisConfiguration(url: primary.url))
            let pending = try primaryRedis.call(["XPENDING", "\(prefix):commands", "dee-engine"]).array?.first?.int
            #expect(pending == 1, "the ingress entry is not acknowledged: \(String(describing: pending))")
            // Back: it resyncs, and the reply comes, once; one run.
            try replica.start()
            #expect(try Self.linkUp(replica))
            let reply = try client.reply(to: sent, timeout: 30)
            #expect(reply.ok, "\(reply.fields)")
            #expect(try client.call("listRuns", ["contactId": "late"]).total == 1)
            #expect(eventually(timeout: 10) {
                (try? primaryRedis.call(["XPENDING", "\(prefix):commands", "dee-engine"]).array?.first?.int) == 0
            })
        }
        task.cancel()
        _ = try? await task.value
    }
}
