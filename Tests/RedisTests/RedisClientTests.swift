import DEETestSupport
import Redis
import Testing

@Suite("RedisClient")
struct RedisClientTests {
    @Test func asyncCalls() async throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let client = RedisClient(configuration: try TestConnections.configuration(), label: "t")
        defer { client.close() }
        #expect(try await client.call(["SET", "\(p):k", "v"]) == .string("OK"))
        #expect(try await client.send(["GET", "\(p):k"]) == .string("v"))
        if case .error = try await client.send(["NOSUCH"]) {} else { Issue.record("expected an error reply") }
        await #expect(throws: RedisError.self) { try await client.call(["NOSUCH"]) }
        #expect(try await client.pipeline([["INCR", "\(p):n"], ["INCR", "\(p):n"]]) == [.integer(1), .integer(2)])
        #expect(
            try await client.evalScript("return redis.call('GET', KEYS[1])", keys: ["\(p):k"], arguments: [])
                == .string("v"))
        #expect(try await client.withConnection { try $0.call(["PING"]) } == .string("PONG"))
        #expect(client.configuration == client.connection.configuration)
    }

    @Test func concurrentTasksShareOneClient() async throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let client = RedisClient(configuration: try TestConnections.configuration(), label: "shared")
        defer { client.close() }
        let results = try await withThrowingTaskGroup(of: (Int, RESPValue, RESPValue).self) { group in
            for i in 0..<200 {
                group.addTask {
                    let set = try await client.call(["SET", "\(p):k\(i)", "v\(i)"])
                    _ = try await client.call(["INCR", "\(p):total"])
                    let get = try await client.call(["GET", "\(p):k\(i)"])
                    return (i, set, get)
                }
            }
            var all: [(Int, RESPValue, RESPValue)] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 200)
        for (i, set, get) in results {
            #expect(set == .string("OK"))
            #expect(get == .string("v\(i)"), "each task gets its own reply")
        }
        #expect(try await client.call(["GET", "\(p):total"]) == .string("200"))
    }

    @Test func concurrentPipelinesDoNotInterleave() async throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let client = RedisClient(configuration: try TestConnections.configuration(), label: "pipes")
        defer { client.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<20 {
                group.addTask {
                    let replies = try await client.pipeline((0..<100).map { _ in ["INCR", "\(p):c\(t)"] })
                    #expect(replies == (1...100).map { .integer($0) }, "task \(t)")
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func severalClientsConcurrently() async throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let configuration = try TestConnections.configuration()
        let clients = (0..<4).map { RedisClient(configuration: configuration, label: "c\($0)") }
        defer { clients.forEach { $0.close() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, client) in clients.enumerated() {
                for _ in 0..<25 {
                    group.addTask {
                        try await client.call(["INCR", "\(p):all"])
                        try await client.call(["INCR", "\(p):client\(n)"])
                    }
                }
            }
            try await group.waitForAll()
        }
        let check = RedisClient(configuration: configuration)
        defer { check.close() }
        #expect(try await check.call(["GET", "\(p):all"]) == .string("100"))
        for n in 0..<4 {
            #expect(try await check.call(["GET", "\(p):client\(n)"]) == .string("25"))
        }
    }

    @Test func asyncClientRecoversAfterKill() async throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let client = RedisClient(configuration: try TestConnections.configuration())
        defer { client.close() }
        let id = try #require(try await client.call(["CLIENT", "ID"]).int)
        let killer = try TestConnections.connection()
        defer { killer.close() }
        try killer.call(["CLIENT", "KILL", "ID", String(id)])
        _ = try? await client.call(["PING"])
        #expect(try await client.call(["PING"]) == .string("PONG"))
    }
}
