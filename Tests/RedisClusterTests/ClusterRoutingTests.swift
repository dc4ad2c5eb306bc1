import Redis
import Testing

@Suite("Cluster hash slots")
struct ClusterHashSlotTests {
    /// The cluster specification's CRC16 check value: CRC16-XMODEM of "123456789" is 0x31C3.
    @Test func crc16OfTheSpecificationsTestVector() {
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(HashSlot.crc16([UInt8]()) == 0)
        #expect(HashSlot.crc16([0xFF, 0xFF, 0x00, 0x00]) == 0x84C0)
    }

    /// Slots that `CLUSTER KEYSLOT` gives (checked against a real server in the integration suite too).
    @Test(arguments: [("foo", 12182), ("bar", 5061), ("123456789", 12739), ("", 0), ("{user1000}.following", 3443)])
    func knownSlots(_ key: String, _ slot: Int) {
        #expect(HashSlot(key: key).rawValue == UInt16(slot))
    }

    /// The hash tag rule: the first `{`, and the first `}` after it with at least one byte between.
    @Test(arguments: [
        ("{user1000}.following", "user1000"), ("{user1000}.followers", "user1000"), ("foo{}{bar}", "foo{}{bar}"),
        ("foo{{bar}}zap", "{bar"), ("foo{bar}{zap}", "bar"), ("{}foo{bar}", "{}foo{bar}"), ("foo", "foo"),
        ("foo}", "foo}"), ("}{x}", "x"), ("{foo", "{foo"), ("bar{foo}", "foo"), ("{}", "{}"), ("dee:{7}:run:1", "7"),
    ])
    func hashTag(_ key: String, _ hashed: String) {
        #expect(String(decoding: HashSlot.hashTag(Array(key.utf8)), as: UTF8.self) == hashed)
        #expect(HashSlot(key: key) == HashSlot(key: hashed))
    }

    @Test func keysOfOnePartitionShareASlot() {
        let slot = HashSlot(key: "dee:{12}:run:abc")
        for suffix in ["inbox", "clock", "runs:by-status:active", "results"] {
            #expect(HashSlot(key: "dee:{12}:\(suffix)") == slot)
        }
        #expect(HashSlot(rawValue: 16384) == nil)
        #expect(HashSlot(rawValue: 16383)?.rawValue == 16383)
    }
}

@Suite("Cluster command routing")
struct ClusterRouteTests {
    @Test(arguments: [
        (["HSET", "k", "f", "v"], "k"), (["GET", "k"], "k"), (["XADD", "s", "*", "f", "v"], "s"),
        (["EVAL", "return 1", "2", "a", "b"], "a"), (["EVALSHA", "abc", "1", "k", "x"], "k"),
        (["XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "5", "STREAMS", "s", ">"], "s"),
        (["XREAD", "COUNT", "1", "STREAMS", "s", "0"], "s"), (["XINFO", "GROUPS", "s"], "s"),
        (["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"], "s"), (["MEMORY", "USAGE", "k"], "k"),
        (["del", "k", "j"], "k"),
    ])
    func keyedCommands(_ command: [String], _ key: String) {
        #expect(RedisClusterRoute.key(of: command) == key)
        #expect(RedisClusterRoute.of(command) == .slot(HashSlot(key: key)))
    }

    @Test(arguments: [
        ["PING"], ["INFO", "cluster"], ["TIME"], ["WAIT", "1", "100"], ["EVAL", "return 1", "0"],
        ["CLUSTER", "SHARDS"],
        ["SCRIPT", "EXISTS", "abc"], ["SCAN", "0"], ["CLIENT", "ID"], [],
    ])
    func commandsWithoutAKeyGoToAnyNode(_ command: [String]) {
        #expect(RedisClusterRoute.of(command) == .anyNode)
    }

    @Test(arguments: [["SCRIPT", "LOAD", "return 1"], ["script", "flush"], ["FLUSHALL"], ["FLUSHDB", "ASYNC"]])
    func commandsMeantForEveryMaster(_ command: [String]) {
        #expect(RedisClusterRoute.of(command) == .everyMaster)
    }

    @Test func redirections() {
        let moved = RedisClusterRedirection("MOVED 3999 127.0.0.1:6381")
        #expect(moved?.kind == .moved)
        #expect(moved?.slot.rawValue == 3999)
        #expect(moved?.node == RedisNodeAddress(host: "127.0.0.1", port: 6381))
        let ask = RedisClusterRedirection("ASK 12 10.0.0.5:7000")
        #expect(ask?.kind == .ask)
        #expect(ask?.node == RedisNodeAddress(host: "10.0.0.5", port: 7000))
        let sender = RedisNodeAddress(host: "10.1.1.1", port: 7001)
        #expect(
            RedisClusterRedirection("MOVED 1 :7002", sender: sender)?.node
                == RedisNodeAddress(host: "10.1.1.1", port: 7002))
        #expect(RedisClusterRedirection("MOVED 1 ::1:7002")?.node == RedisNodeAddress(host: "::1", port: 7002))
        for bad in [
            "MOVED", "MOVED 16384 h:1", "MOVED 1 h", "MOVED 1 h:0", "ERR MOVED 1 h:1", "ASK x h:1", "TRYAGAIN x y",
        ] {
            #expect(RedisClusterRedirection(bad) == nil, "\(bad)")
        }
    }
}

@Suite("Cluster slot map")
struct ClusterSlotMapTests {
    static let a = RedisNodeAddress(host: "127.0.0.1", port: 7001)
    static let b = RedisNodeAddress(host: "127.0.0.1", port: 7002)
    static let c = RedisNodeAddress(host: "127.0.0.1", port: 7003)

    static func node(_ port: Int, role: String, health: String = "online", endpoint: String = "127.0.0.1") -> RESPValue
    {
        .array([
            .string("id"), .string("n\(port)"), .string("port"), .integer(port), .string("ip"), .string("127.0.0.1"),
            .string("endpoint"), .string(endpoint), .string("role"), .string(role), .string("replication-offset"),
            .integer(1), .string("health"), .string(health),
        ])
    }

    static func shard(_ slots: [Int], _ nodes: [RESPValue]) -> RESPValue {
        .array([.string("slots"), .array(slots.map { .integer($0) }), .string("nodes"), .array(nodes)])
    }

    /// As Redis 7.0 answers after a master failed and its replica took over: the failed master is still listed as a
    /// master, in a shard without slots.
    @Test func clusterShardsAfterAFailover() throws {
        let reply = RESPValue.array([
            Self.shard([], [Self.node(7003, role: "master", health: "fail")]),
            Self.shard([0, 5460], [Self.node(7001, role: "master"), Self.node(7004, role: "replica")]),
            Self.shard(
                [5461, 10922, 16000, 16000], [Self.node(7002, role: "master"), Self.node(7005, role: "replica")]),
            Self.shard([10923, 15999, 16001, 16383], [Self.node(7006, role: "master", endpoint: "?")]),
        ])
        let map = try RedisClusterSlotMap(shardsReply: reply, queried: Self.a)
        let f = RedisNodeAddress(host: "127.0.0.1", port: 7006)
        #expect(map.masters == [Self.a, Self.b, f])
        #expect(map.coveredSlots == 16384)
        #expect(map.node(for: HashSlot(key: "foo")) == f)
        #expect(map.node(for: try #require(HashSlot(rawValue: 16000))) == Self.b)
        #expect(map.slots(of: Self.b) == [5461...10922, 16000...16000])
        #expect(map.knownNodes.contains(Self.c))
        #expect(map.knownNodes.count == 6)
    }

    @Test func clusterSlotsWithAnEmptyHost() throws {
        let reply = RESPValue.array([
            .array([.integer(0), .integer(8191), .array([.string(""), .integer(7001), .string("id1")])]),
            .array([
                .integer(8192), .integer(16383), .array([.string("127.0.0.1"), .integer(7002), .string("id2")]),
                .array([.string("127.0.0.1"), .integer(7005), .string("id5")]),
            ]),
        ])
        let map = try RedisClusterSlotMap(slotsReply: reply, queried: RedisNodeAddress(host: "127.0.0.1", port: 9))
        #expect(map.masters == [Self.a, Self.b])
        #expect(map.node(for: try #require(HashSlot(rawValue: 8191))) == Self.a)
        #expect(map.node(for: try #require(HashSlot(rawValue: 8192))) == Self.b)
        #expect(map.knownNodes.contains(RedisNodeAddress(host: "127.0.0.1", port: 7005)))
    }

    @Test func movedSlotIsReassigned() throws {
        var map = RedisClusterSlotMap(ranges: [(0...8191, Self.a), (8192...16383, Self.b)])
        let slot = try #require(HashSlot(rawValue: 100))
        map.assign(slot, to: Self.c)
        #expect(map.node(for: slot) == Self.c)
        #expect(map.masters == [Self.a, Self.b, Self.c])
        #expect(map.slots(of: Self.a) == [0...99, 101...8191])
        for s in 0...16383 { map.assign(try #require(HashSlot(rawValue: s)), to: Self.b) }
        #expect(map.masters == [Self.b])
    }

    @Test func partialMapLeavesSlotsWithoutANode() throws {
        let map = RedisClusterSlotMap(ranges: [(0...99, Self.a), (20000...30000, Self.b)])
        #expect(map.masters == [Self.a])
        #expect(map.coveredSlots == 100)
        #expect(map.node(for: try #require(HashSlot(rawValue: 100))) == nil)
        #expect(throws: RedisError.self) { try RedisClusterSlotMap(shardsReply: .string("x"), queried: Self.a) }
    }
}

@Suite("Cluster configuration")
struct ClusterConfigurationTests {
    @Test func clusterFlagInTheURL() throws {
        #expect(try RedisConfiguration(url: "redis://h:7000?cluster=1").cluster)
        #expect(try RedisConfiguration(url: "redis://h:7000/0?cluster=true").cluster)
        #expect(try RedisConfiguration(url: "redis://u:p?w@h:7000?cluster=yes").password == "p?w")
        #expect(try RedisConfiguration(url: "redis://h:7000?cluster").cluster)
        #expect(try !RedisConfiguration(url: "redis://h:7000?cluster=0").cluster)
        #expect(try !RedisConfiguration(url: "redis://h:7000").cluster)
        let c = try RedisConfiguration(url: "redis://:s3cret@h:7000?cluster=1")
        #expect(c.port == 7000)
        #expect(c.displayURL == "redis://:***@h:7000/0?cluster=1")
        #expect(RedisConfiguration(cluster: true).cluster)
    }

    @Test(arguments: ["redis://h:7000/1?cluster=1", "redis://h/3?cluster=true"])
    func clusterWithADatabaseIsAConfigurationError(_ url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
        do {
            _ = try RedisConfiguration(url: url)
        } catch {
            #expect(error.kind == .configuration)
            #expect(error.message.contains("database 0 only"))
        }
        #expect(throws: RedisError.self) { try RedisClusterConnection(configuration: RedisConfiguration(database: 2)) }
    }

    @Test(arguments: ["redis://h:7000?clustr=1", "redis://h:7000?cluster=2", "redis://h?db=1"])
    func badParameters(_ url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
    }
}
