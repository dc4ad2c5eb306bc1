import DEETestSupport
import Foundation
import Redis
import Testing

/// The cluster client against the shared six-node test cluster. Serialized: some tests move slots or fail masters
/// over, and each leaves the cluster healthy for the next.
@Suite("Redis Cluster client", .serialized, .offPool)
struct ClusterClientTests {
    @Test func detectsClusterMode() throws {
        let cluster = try ClusterSupport.cluster()
        #expect(try RedisClusterConnection.isClusterEnabled(RedisConfiguration(url: cluster.url)))
        #expect(try !RedisClusterConnection.isClusterEnabled(RedisConfiguration(url: TestRedis.url())))
        // A cluster client seeded with a server that is not a cluster says so.
        let single = try RedisClusterConnection(configuration: RedisConfiguration(url: TestRedis.url()))
        defer { single.close() }
        #expect {
            try single.call(["GET", "x"])
        } throws: { error in
            (error as? RedisError)?.kind == .configuration
                && (error as? RedisError)?.message.contains("not in cluster mode") == true
        }
    }

    @Test func discoversThreeMastersThatCoverEverySlot() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        defer { client.close() }
        let map = try client.slotMap()
        #expect(map.masters.count == 3)
        #expect(map.coveredSlots == HashSlot.count)
        #expect(map.knownNodes.count == 6)
        #expect(try client.call(["PING"]) == .string("PONG"))
    }

    /// Our CRC16 and hash tags agree with the server's `CLUSTER KEYSLOT`, for ordinary keys, hash tags, and
    /// non-ASCII keys.
    @Test func hashSlotsAgreeWithClusterKeyslot() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        defer { client.close() }
        var keys = [
            "foo", "bar", "", "{", "}", "{}", "{}x", "x{}", "a{b}c", "a{{b}}", "{a}{b}", "été", "日本{語}",
            "dee:{41}:run:x",
        ]
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab{}:-_xyzé0123456789")
        for _ in 0..<300 {
            keys.append(String((0..<Int.random(in: 1...12, using: &generator)).map { _ in alphabet.randomElement()! }))
        }
        let replies = try client.pipeline(keys.map { ["CLUSTER", "KEYSLOT", $0] })
        for (key, reply) in zip(keys, replies) {
            #expect(reply.int == Int(HashSlot(key: key).rawValue), "\(key)")
        }
    }

    @Test func keysSpreadOverEveryMasterAreWrittenAndReadBack() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p):*")
            client.close()
        }
        let keys = (0..<90).map { "\(p):\($0)" }
        let map = try client.slotMap()
        #expect(Set(keys.compactMap { map.node(for: HashSlot(key: $0)) }) == Set(map.masters))
        for (i, key) in keys.enumerated() { try client.call(["SET", key, "v\(i)"]) }
        for (i, key) in keys.enumerated() { #expect(try client.call(["GET", key]) == .string("v\(i)")) }
        // Each key is where the map says, not on another node.
        for master in map.masters {
            let admin = ClusterSupport.admin(master)
            defer { admin.close() }
            let mine = keys.filter { map.node(for: HashSlot(key: $0)) == master }
            #expect(!mine.isEmpty)
            for key in mine { #expect(try admin.call(["EXISTS", key]) == .integer(1)) }
        }
        try client.unlinkKeys(matching: "\(p):*")
        #expect(try client.pipeline(keys.map { ["EXISTS", $0] }).allSatisfy { $0 == .integer(0) })
    }

    /// One pipeline over keys of all three masters: every reply in the caller's order, commands of one key in order.
    @Test func pipelineAcrossNodesAnswersInOrder() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p):*")
            client.close()
        }
        let lists = (0..<12).map { "\(p):list:\($0)" }
        #expect(Set(try lists.compactMap { try client.node(forKey: $0) }).count == 3)
        var commands: [[String]] = []
        var expected: [RESPValue] = []
        var lengths = [Int](repeating: 0, count: lists.count)
        for i in 0..<240 {
            let list = i % lists.count
            commands.append(["RPUSH", lists[list], String(i)])
            lengths[list] += 1
            expected.append(.integer(lengths[list]))
            if i % 50 == 0 {
                commands.append(["PING"])
                expected.append(.string("PONG"))
            }
        }
        for (i, list) in lists.enumerated() {
            commands.append(["LRANGE", list, "0", "-1"])
            expected.append(.array(stride(from: i, to: 240, by: lists.count).map { .string(String($0)) }))
        }
        commands.append(["GET", "\(p):missing"])
        expected.append(.null)
        commands.append(["HGET", lists[0], "f"])
        let replies = try client.pipeline(commands)
        #expect(replies.count == commands.count)
        #expect(Array(replies.dropLast()) == expected)
        #expect(replies.last?.isError == true)
    }

    /// A script whose keys share the `{p}` hash tag runs on the master of that slot, also after that master forgot
    /// its scripts (SCRIPT FLUSH), singly (EVALSHA with the NOSCRIPT fallback) and pipelined across partitions.
    @Test func scriptsRunOnTheirSlotsNodeAfterScriptFlushToo() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p):*")
            client.close()
        }
        let script = """
            redis.call('RPUSH', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1])
            return redis.call('LLEN', KEYS[1])
            """
        let keys = ["\(p):{7}:list", "\(p):{7}:last"]
        let node = try #require(try client.node(forKey: keys[0]))
        #expect(try client.evalScript(script, keys: keys, arguments: ["a"]) == .integer(1))
        let admin = ClusterSupport.admin(node)
        defer { admin.close() }
        #expect(try admin.call(["GET", keys[1]]) == .string("a"))
        try admin.call(["SCRIPT", "FLUSH"])
        #expect(try client.evalScript(script, keys: keys, arguments: ["b"]) == .integer(2))
        #expect(try admin.call(["LRANGE", keys[0], "0", "-1"]) == .array([.string("a"), .string("b")]))

        // SCRIPT FLUSH through the client reaches every master; pipelined scripts over six partitions still run.
        try client.call(["SCRIPT", "FLUSH"])
        let partitions = (0..<6).map { ["\(p):{part\($0)}:list", "\(p):{part\($0)}:last"] }
        #expect(Set(try partitions.compactMap { try client.node(forKey: $0[0]) }).count > 1)
        var calls: [(keys: [String], arguments: [String])] = []
        for round in 0..<5 { for keys in partitions { calls.append((keys, [String(round)])) } }
        let replies = try client.evalScriptPipelined(script, calls: calls, then: partitions.map { ["GET", $0[1]] })
        #expect(replies.count == calls.count + partitions.count)
        for (i, reply) in replies.prefix(calls.count).enumerated() { #expect(reply == .integer(i / 6 + 1)) }
        #expect(replies.suffix(partitions.count).allSatisfy { $0 == .string("4") })
        for keys in partitions {
            #expect(try client.call(["LRANGE", keys[0], "0", "-1"]) == .array((0..<5).map { .string(String($0)) }))
        }
        // SCRIPT LOAD goes to every master, so EVALSHA works on any of them.
        let sha = try #require(try client.call(["SCRIPT", "LOAD", script]).string)
        for master in try client.slotMap().masters {
            let connection = ClusterSupport.admin(master)
            defer { connection.close() }
            #expect(try connection.call(["SCRIPT", "EXISTS", sha]) == .array([.integer(1)]))
        }
    }

    @Test func crossSlotCommandsGiveTheServersError() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        defer { client.close() }
        let p = TestRedis.uniquePrefix()
        #expect(HashSlot(key: "\(p):{a}") != HashSlot(key: "\(p):{b}"))
        #expect {
            try client.call(["MSET", "\(p):{a}", "1", "\(p):{b}", "2"])
        } throws: { error in
            (error as? RedisError)?.kind == .server && (error as? RedisError)?.serverCode == "CROSSSLOT"
        }
        let reply = try client.evalScript("return 1", keys: ["\(p):{a}", "\(p):{b}"], arguments: [])
        #expect(reply.isError)
        if case .error(let message) = reply { #expect(RedisError(.server, message).serverCode == "CROSSSLOT") }
        #expect(try client.call(["EXISTS", "\(p):{a}"]) == .integer(0))
    }

    /// sendOnly + receive (the partition owner's overlap) on one slot; several slots are refused before anything is
    /// sent; other calls are refused while replies are outstanding.
    @Test func sendOnlyAndReceiveOnOneSlot() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p):*")
            client.close()
        }
        #expect {
            try client.sendOnly([["RPUSH", "\(p):{a}:l", "1"], ["RPUSH", "\(p):{b}:l", "1"]])
        } throws: { error in
            (error as? RedisError)?.kind == .configuration
        }
        try client.sendOnly([["RPUSH", "\(p):{a}:l", "1"], ["RPUSH", "\(p):{a}:l", "2"]])
        try client.sendOnly([["LRANGE", "\(p):{a}:l", "0", "-1"], ["PING"]])
        #expect(throws: RedisError.self) { try client.call(["GET", "\(p):{a}:l"]) }
        #expect(throws: RedisError.self) { try client.sendOnly([["GET", "\(p):{b}:x"]]) }
        #expect(try client.receive(2) == [.integer(1), .integer(2)])
        #expect(try client.receive(2) == [.array([.string("1"), .string("2")]), .string("PONG")])
        #expect(throws: RedisError.self) { try client.receive(1) }
        #expect(try client.call(["EXISTS", "\(p):{b}:l"]) == .integer(0))
    }

    /// A slot moved to another master (SETSLOT MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE) behind the client's
    /// back: its next command meets MOVED, follows it, and the map is updated. A pipeline and a sendOnly with the
    /// stale map follow too.
    @Test func followsMovedAfterASlotMigration() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let owner = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p)*")
            client.close()
            owner.close()
        }
        let key = "\(p):{m}:k"
        let list = "\(p):{m}:l"
        let slot = HashSlot(key: key)
        let map = try client.slotMap()
        _ = try owner.slotMap()
        let source = try #require(map.node(for: slot))
        let target = try #require(map.masters.first { $0 != source })
        try client.call(["SET", key, "before"])
        try client.call(["RPUSH", list, "1"])

        try ClusterSupport.beginMigration(slot, from: source, to: target)
        try ClusterSupport.migrateKeys(slot, from: source, to: target)
        try ClusterSupport.finishMigration(slot, to: target, masters: map.masters)
        try cluster.waitUntilHealthy()

        #expect(try client.slotMap().node(for: slot) == source, "the client has not heard of the move yet")
        #expect(try client.call(["GET", key]) == .string("before"))
        #expect(try client.slotMap().node(for: slot) == target)
        let other = "\(p):{other}"
        #expect(
            try client.pipeline([["SET", other, "o"], ["RPUSH", list, "2"], ["GET", other], ["LLEN", list]])
                == [.string("OK"), .integer(2), .string("o"), .integer(2)])
        // The owner's map is stale too: its sendOnly goes to the old master, whose MOVED replies `receive` resolves.
        #expect(try owner.slotMap().node(for: slot) == source)
        try owner.sendOnly([["RPUSH", list, "3"], ["LRANGE", list, "0", "-1"]])
        #expect(try owner.receive(2) == [.integer(3), .array(["1", "2", "3"].map { .string($0) })])
        #expect(try owner.slotMap().node(for: slot) == target)
        let admin = ClusterSupport.admin(target)
        defer { admin.close() }
        #expect(try admin.call(["GET", key]) == .string("before"))
    }

    /// During a migration (slot MIGRATING on the source, IMPORTING on the target), a key already moved answers ASK:
    /// the client asks the target (ASKING + the command) and keeps its map; keys not moved yet are still read from
    /// the source; a new key is created on the target.
    @Test func followsAskDuringAMigration() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p)*")
            client.close()
        }
        let moved = "\(p):{ask}:moved"
        let stays = "\(p):{ask}:stays"
        let created = "\(p):{ask}:created"
        let slot = HashSlot(key: moved)
        let map = try client.slotMap()
        let source = try #require(map.node(for: slot))
        let target = try #require(map.masters.first { $0 != source })
        try client.call(["SET", moved, "m"])
        try client.call(["SET", stays, "s"])

        try ClusterSupport.beginMigration(slot, from: source, to: target)
        try ClusterSupport.migrateKeys(slot, from: source, to: target, keys: [moved])
        let sourceAdmin = ClusterSupport.admin(source)
        let targetAdmin = ClusterSupport.admin(target)
        defer {
            sourceAdmin.close()
            targetAdmin.close()
        }
        #expect(try sourceAdmin.send(["GET", moved]).isError, "the source answers ASK for the moved key")

        #expect(try client.call(["GET", moved]) == .string("m"))
        #expect(try client.call(["GET", stays]) == .string("s"))
        try client.call(["SET", created, "c"])
        #expect(
            try client.pipeline([["GET", stays], ["GET", moved], ["GET", created]])
                == [.string("s"), .string("m"), .string("c")])
        #expect(try client.slotMap().node(for: slot) == source, "ASK leaves the map alone")
        // Not on the source: there, a key of a migrating slot that it does not have is answered with ASK.
        #expect(try sourceAdmin.send(["EXISTS", created]) == .error("ASK \(slot) \(target)"))
        #expect(try targetAdmin.pipeline([["ASKING"], ["GET", created]])[1] == .string("c"))

        try ClusterSupport.migrateKeys(slot, from: source, to: target)
        try ClusterSupport.finishMigration(slot, to: target, masters: map.masters)
        try cluster.waitUntilHealthy()
        #expect(
            try client.pipeline([["GET", stays], ["GET", moved], ["GET", created]])
                == [.string("s"), .string("m"), .string("c")])
        #expect(try client.slotMap().node(for: slot) == target)
    }

    /// A manual failover (CLUSTER FAILOVER on a replica): the client, its map naming the old master, follows the
    /// MOVED the demoted master answers and reads everything written before (and acknowledged by a replica, WAIT).
    @Test func readsWhatWasWrittenAfterAManualFailover() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p)*")
            client.close()
        }
        let map = try client.slotMap()
        let master = map.masters[0]
        let replica = try ClusterSupport.replica(of: master, in: cluster)
        let keys = ClusterSupport.keys(p, on: master, in: map, count: 40)
        let writes = keys.map { ["SET", $0, "v-\($0)"] } + [["WAIT", "1", "5000"]]
        let written = try client.pipeline(writes)
        #expect(written.dropLast().allSatisfy { $0 == .string("OK") })
        #expect((written.last?.int ?? 0) >= 1, "WAIT follows the writes to their master and a replica has them")

        let replicaAdmin = ClusterSupport.admin(replica)
        defer { replicaAdmin.close() }
        // A manual failover that does not get the masters' votes times out (5 s) without retrying: ask again,
        // a bounded number of times.
        var promoted = false
        for _ in 0..<3 where !promoted {
            try replicaAdmin.call(["CLUSTER", "FAILOVER"])
            promoted =
                (try? ClusterSupport.eventually(timeout: 8, "the replica's promotion") {
                    ClusterSupport.role(replica) == "master" && ClusterSupport.role(master) == "slave" ? true : nil
                }) ?? false
        }
        #expect(promoted, "\(cluster.ports.map { "node \($0):\n\(cluster.log($0, lastCharacters: 1500))" }.joined())")
        try cluster.waitUntilHealthy()

        #expect(try client.slotMap().node(for: HashSlot(key: keys[0])) == master, "the client's map is stale")
        let read = try client.pipeline(keys.map { ["GET", $0] })
        #expect(read == keys.map { .string("v-\($0)") })
        let updated = try client.slotMap()
        #expect(updated.node(for: HashSlot(key: keys[0])) == replica)
        #expect(!updated.masters.contains(master))
    }

    /// `kill -9` of a master: until its replica is promoted (about node timeout + election) calls fail or retry;
    /// after, the client re-discovers the map and reads everything a replica acknowledged (WAIT) before the kill.
    /// The killed node is started again and rejoins as a replica, leaving the cluster healthy.
    @Test func readsWhatWasWrittenAfterAMasterIsKilled() throws {
        let cluster = try ClusterSupport.cluster()
        let client = try ClusterSupport.client(cluster)
        let p = TestRedis.uniquePrefix()
        defer {
            try? client.unlinkKeys(matching: "\(p)*")
            client.close()
        }
        let map = try client.slotMap()
        let victim = map.masters[map.masters.count - 1]
        let replica = try ClusterSupport.replica(of: victim, in: cluster)
        let keys = ClusterSupport.keys(p, on: victim, in: map, count: 40)
        let others = map.masters.filter { $0 != victim }.flatMap {
            ClusterSupport.keys(p + "o", on: $0, in: map, count: 5)
        }
        let written = try client.pipeline((keys + others).map { ["SET", $0, "v-\($0)"] } + [["WAIT", "1", "5000"]])
        #expect((written.last?.int ?? 0) >= 1)
        let started = Date()

        cluster.killNode(UInt16(victim.port))
        // Keys of the other masters stay readable (once the cluster state is ok again: a node that sees a master
        // fail answers CLUSTERDOWN until the replica takes over, which the client retries, bounded).
        let read = try ClusterSupport.eventually("reading the killed master's keys") { () -> [RESPValue]? in
            let replies = try client.pipeline((keys + others).map { ["GET", $0] })
            return replies.allSatisfy { !$0.isError } ? replies : nil
        }
        let seconds = Date().timeIntervalSince(started)
        #expect(read == (keys + others).map { .string("v-\($0)") })
        let updated = try client.slotMap()
        #expect(updated.node(for: HashSlot(key: keys[0])) == replica)
        #expect(!updated.masters.contains(victim))
        print("cluster failover after kill -9: keys readable again after \(String(format: "%.1f", seconds)) s")

        try cluster.restart(UInt16(victim.port))
        try cluster.waitUntilHealthy()
        #expect(ClusterSupport.role(victim) == "slave")
    }
}
