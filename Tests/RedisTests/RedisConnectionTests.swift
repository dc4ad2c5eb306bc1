import DEETestSupport
import Foundation
import Redis
import Testing

@Suite("RedisConnection", .offPool)
struct RedisConnectionTests {
    @Test func sendAndCallReplyKinds() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }

        #expect(try c.send(["PING"]) == .string("PONG"))
        #expect(try c.call(["SET", "\(p):s", "hello"]) == .string("OK"))
        #expect(try c.call(["GET", "\(p):s"]) == .string("hello"))
        #expect(try c.call(["GET", "\(p):missing"]) == .null)
        #expect(try c.call(["INCRBY", "\(p):n", "41"]) == .integer(41))
        #expect(try c.call(["INCR", "\(p):n"]).int == 42)
        #expect(try c.call(["GET", "\(p):n"]) == .string("42"))
        #expect(try c.call(["RPUSH", "\(p):l", "a", "b", "c"]) == .integer(3))
        #expect(try c.call(["LRANGE", "\(p):l", "0", "-1"]) == .array([.string("a"), .string("b"), .string("c")]))
        #expect(try c.call(["LRANGE", "\(p):nolist", "0", "-1"]) == .array([]))
        #expect(try c.call(["SET", "\(p):empty", ""]) == .string("OK"))
        #expect(try c.call(["GET", "\(p):empty"]) == .string(""))
        #expect(try c.call(["EXISTS", "\(p):s", "\(p):missing"]) == .integer(1))
    }

    @Test func nullArrayReply() throws {
        let p = TestRedis.uniquePrefix()
        let c = try TestConnections.connection()
        defer { c.close() }
        // BLPOP that times out answers a null array.
        let reply = try c.call(["BLPOP", "\(p):nothing", "0.01"])
        #expect(reply.isNull)
        #expect(reply.array == [])
    }

    @Test func nestedArrays() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let id = try #require(try c.call(["XADD", "\(p):x", "1-1", "type", "tick", "count", "2"]).string)
        #expect(id == "1-1")
        let reply = try c.call(["XRANGE", "\(p):x", "-", "+"])
        #expect(
            reply == .array([.array([.string("1-1"), .array([.string("type"), .string("tick"), .string("count"), .string("2")])])]))
        let scripted = try c.call(["EVAL", "return {1, 'two', {3, {'four'}}}", "0"])
        #expect(scripted == .array([.integer(1), .string("two"), .array([.integer(3), .array([.string("four")])])]))
    }

    @Test func errorReplies() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }

        let unknown = try c.send(["NOSUCHCOMMAND", "x"])
        guard case .error(let message) = unknown else {
            Issue.record("expected an error reply, got \(unknown)")
            return
        }
        #expect(message.hasPrefix("ERR"))

        do {
            try c.call(["NOSUCHCOMMAND"])
            Issue.record("call should throw a server error")
        } catch {
            #expect(error.kind == .server)
            #expect(error.message.hasPrefix("ERR"))
        }

        try c.call(["SET", "\(p):s", "v"])
        do {
            try c.call(["LPUSH", "\(p):s", "x"])
            Issue.record("call should throw WRONGTYPE")
        } catch {
            #expect(error.kind == .server)
            #expect(error.message.hasPrefix("WRONGTYPE"))
        }
        // A script error reply is a value too.
        let scripted = try c.send(["EVAL", "return redis.error_reply('BOOM it failed')", "0"])
        #expect(scripted == .error("BOOM it failed"))
        // The connection is still usable after error replies.
        #expect(try c.call(["GET", "\(p):s"]) == .string("v"))
    }

    /// Lengths and argument counts at every decimal boundary survive the RESP encoder.
    @Test func lengthsAndCountsAtDecimalBoundaries() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        for n in [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 9999, 10000, 100_000] {
            let value = String(repeating: "x", count: n)
            try c.call(["SET", "\(p):v", value])
            #expect(try c.call(["STRLEN", "\(p):v"]) == .integer(n))
        }
        for count in [1, 9, 10, 11, 100, 1000] {
            let members = (0..<count).map { "m\($0)" }
            _ = try c.call(["DEL", "\(p):s"])
            #expect(try c.call(["SADD", "\(p):s"] + members) == .integer(count))
        }
    }

    @Test(arguments: [
        "plain", "", " leading and trailing ", "with\0nul\0bytes", "crlf\r\ninside\r\n", "$3\r\nfoo\r\n", "*2\r\n:1\r\n",
        "-ERR not an error", "+OK", "tab\tand\u{1}control\u{7F}", "é ü ñ", "中文字符", "emoji 😀👍🏽", "mixed\0é\r\n😀",
    ])
    func valuesRoundTrip(_ value: String) throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        try c.call(["SET", "\(p):v", value])
        #expect(try c.call(["GET", "\(p):v"]) == .string(value))
        #expect(try c.call(["STRLEN", "\(p):v"]) == .integer(value.utf8.count), "lengths are in bytes")
        try c.call(["HSET", "\(p):h", "f", value])
        #expect(try c.call(["HGETALL", "\(p):h"]) == .array([.string("f"), .string(value)]))
        // As a key, and as a field name.
        try c.call(["SET", "\(p):k:\(value)", "x"])
        #expect(try c.call(["GET", "\(p):k:\(value)"]) == .string("x"))
        try c.call(["HSET", "\(p):h2", value, "y"])
        #expect(try c.call(["HKEYS", "\(p):h2"]) == .array([.string(value)]))
        // Through a script argument.
        #expect(try c.call(["EVAL", "return ARGV[1]", "0", value]) == .string(value))
    }

    @Test func megabyteValueRoundTrips() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let value = String(repeating: "0123456789\0é😀\r\n", count: 60_000)
        try c.call(["SET", "\(p):big", value])
        let back = try c.call(["GET", "\(p):big"])
        #expect(back.string?.utf8.count == value.utf8.count)
        #expect(back == .string(value))
    }

    @Test func pipelineOf1000CommandsRepliesInOrder() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let commands = (0..<1000).map { i -> [String] in
            switch i % 3 {
            case 0: return ["INCR", "\(p):counter"]
            case 1: return ["SET", "\(p):k\(i)", "v\(i)"]
            default: return ["GET", "\(p):k\(i - 1)"]
            }
        }
        let replies = try c.pipeline(commands)
        #expect(replies.count == 1000)
        var counter = 0
        for (i, reply) in replies.enumerated() {
            switch i % 3 {
            case 0:
                counter += 1
                #expect(reply == .integer(counter), "reply \(i)")
            case 1: #expect(reply == .string("OK"), "reply \(i)")
            default: #expect(reply == .string("v\(i - 1)"), "reply \(i)")
            }
        }
        let incrs = (0..<1000).map { _ in ["INCR", "\(p):seq"] }
        #expect(try c.pipeline(incrs) == (1...1000).map { .integer($0) })
    }

    @Test func pipelineKeepsErrorsInPlace() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let replies = try c.pipeline([["SET", "\(p):a", "1"], ["NOSUCH"], ["INCR", "\(p):a"], ["LPUSH", "\(p):a", "x"], ["GET", "\(p):a"]])
        #expect(replies.count == 5)
        #expect(replies[0] == .string("OK"))
        if case .error = replies[1] {} else { Issue.record("expected an error at 1: \(replies[1])") }
        #expect(replies[2] == .integer(2))
        if case .error(let m) = replies[3] { #expect(m.hasPrefix("WRONGTYPE")) } else { Issue.record("expected WRONGTYPE") }
        #expect(replies[4] == .string("2"))
        #expect(try c.pipeline([]) == [])
    }

    @Test func largePipelineWithLargeValues() throws {
        // Several megabytes in one pipeline: hiredis writes and reads it in many chunks.
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let value = String(repeating: "x", count: 64 * 1024)
        let sets = (0..<100).map { ["SET", "\(p):big\($0)", value + String($0)] }
        #expect(try c.pipeline(sets).allSatisfy { $0 == .string("OK") })
        let gets = try c.pipeline((0..<100).map { ["GET", "\(p):big\($0)"] })
        #expect(gets == (0..<100).map { .string(value + String($0)) })
    }

    @Test func evalScriptLoadsAndSurvivesScriptFlush() throws {
        // A server of its own: other tests flush the shared server's scripts at any moment (FaultTests,
        // PipelinedScriptTests), which made the SCRIPT EXISTS checks below fail once the suites ran in parallel.
        let server = try DedicatedRedis(arguments: ["--save", "", "--appendonly", "no"])
        defer { server.killHard() }
        let p = TestRedis.uniquePrefix()
        func connect() throws -> RedisConnection {
            RedisConnection(configuration: try RedisConfiguration(url: server.url))
        }
        let c = try connect()
        defer { c.close() }
        // A script unique to this test, so that other tests' scripts do not interfere.
        let script = "-- \(p)\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
        #expect(try c.evalScript(script, keys: ["\(p):n"], arguments: ["5"]) == .integer(5))
        #expect(try c.evalScript(script, keys: ["\(p):n"], arguments: ["2"]) == .integer(7))

        let sha = try #require(try c.call(["SCRIPT", "LOAD", script]).string)
        #expect(try c.call(["SCRIPT", "EXISTS", sha]) == .array([.integer(1)]))

        // Flushed from another connection (as a restart or failover would): NOSCRIPT, reloaded transparently.
        let other = try connect()
        defer { other.close() }
        try other.call(["SCRIPT", "FLUSH"])
        #expect(try c.call(["SCRIPT", "EXISTS", sha]) == .array([.integer(0)]))
        #expect(try c.evalScript(script, keys: ["\(p):n"], arguments: ["3"]) == .integer(10))
        #expect(try c.call(["SCRIPT", "EXISTS", sha]) == .array([.integer(1)]))

        // And again, flushed from the same connection.
        try c.call(["SCRIPT", "FLUSH"])
        #expect(try c.evalScript(script, keys: ["\(p):n"], arguments: ["1"]) == .integer(11))
    }

    @Test func evalScriptReturnsScriptErrorsAsValues() throws {
        let c = try TestConnections.connection()
        defer { c.close() }
        let reply = try c.evalScript("return redis.error_reply('NOTFOUND no such run')", keys: [], arguments: [])
        #expect(reply == .error("NOTFOUND no such run"))
        let runtime = try c.evalScript("return redis.call('NOSUCHCOMMAND')", keys: [], arguments: [])
        if case .error = runtime {} else { Issue.record("expected an error reply, got \(runtime)") }
        // A script that does not compile fails at SCRIPT LOAD: thrown as a server error.
        do {
            _ = try c.evalScript("return (", keys: [], arguments: [])
            Issue.record("expected a compile error")
        } catch {
            #expect(error.kind == .server)
            #expect(error.message.contains("compiling"))
        }
        #expect(try c.evalScript("return #KEYS + #ARGV", keys: ["a", "b"], arguments: ["c"]) == .integer(3))
    }

    @Test func reconnectsAfterTheServerClosesTheConnection() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        try c.call(["SET", "\(p):k", "before"])
        let id = try TestConnections.clientID(c)

        let killer = try TestConnections.connection()
        defer { killer.close() }
        #expect(try killer.call(["CLIENT", "KILL", "ID", String(id)]) == .integer(1))

        // The next call may notice the closed socket (a connection error) or already reconnect; a later one works.
        do {
            let reply = try c.call(["GET", "\(p):k"])
            #expect(reply == .string("before"))
        } catch {
            #expect(error.kind == .connection)
        }
        #expect(try c.call(["GET", "\(p):k"]) == .string("before"))
        let newID = try TestConnections.clientID(c)
        #expect(newID != id, "a new connection")
        #expect(try c.call(["PING"]) == .string("PONG"))
    }

    @Test func reconnectsAfterKillWhilePipelining() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let id = try TestConnections.clientID(c)
        let killer = try TestConnections.connection()
        defer { killer.close() }
        try killer.call(["CLIENT", "KILL", "ID", String(id)])
        _ = try? c.pipeline([["INCR", "\(p):n"], ["INCR", "\(p):n"]])
        let replies = try c.pipeline([["SET", "\(p):n", "0"], ["INCR", "\(p):n"]])
        #expect(replies == [.string("OK"), .integer(1)])
    }

    @Test func evalScriptReloadsAfterReconnect() throws {
        let p = TestRedis.uniquePrefix()
        defer { TestConnections.cleanUp(p) }
        let c = try TestConnections.connection()
        defer { c.close() }
        let script = "-- \(p) reconnect\nreturn redis.call('INCR', KEYS[1])"
        #expect(try c.evalScript(script, keys: ["\(p):n"], arguments: []) == .integer(1))
        let killer = try TestConnections.connection()
        defer { killer.close() }
        try killer.call(["CLIENT", "KILL", "ID", String(try TestConnections.clientID(c))])
        try killer.call(["SCRIPT", "FLUSH"])
        _ = try? c.evalScript(script, keys: ["\(p):n"], arguments: [])
        let n = try c.evalScript(script, keys: ["\(p):n"], arguments: [])
        #expect(n.int == 2 || n.int == 3)
    }

    @Test func closeThenUseReconnects() throws {
        let c = try TestConnections.connection()
        let first = try TestConnections.clientID(c)
        c.close()
        c.close()  // twice is harmless
        let second = try TestConnections.clientID(c)
        #expect(first != second)
        c.close()
    }

    @Test func socketTimeoutIsAConnectionErrorAndTheConnectionRecovers() throws {
        let p = TestRedis.uniquePrefix()
        let c = try TestConnections.connection(timeoutSeconds: 0.3)
        defer { c.close() }
        let started = Date()
        do {
            _ = try c.call(["BLPOP", "\(p):never", "3"])
            Issue.record("BLPOP longer than the socket timeout should fail")
        } catch {
            #expect(error.kind == .connection)
        }
        #expect(Date().timeIntervalSince(started) < 2.5)
        #expect(try c.call(["PING"]) == .string("PONG"))
    }

    @Test func connectionRefused() throws {
        // Nothing listens on port 1 of the loopback.
        let c = RedisConnection(configuration: RedisConfiguration(host: "127.0.0.1", port: 1, timeoutSeconds: 1))
        for _ in 0..<2 {
            do {
                _ = try c.call(["PING"])
                Issue.record("connecting to 127.0.0.1:1 should fail")
            } catch {
                #expect(error.kind == .connection)
                #expect(error.message.contains("127.0.0.1:1"))
            }
        }
    }

    @Test func selectDatabaseFromTheURLIsolatesKeys() throws {
        let p = TestRedis.uniquePrefix()
        defer {
            TestConnections.cleanUp(p, database: 2)
            TestConnections.cleanUp(p)
        }
        let base = try TestConnections.configuration()
        var url = "redis://"
        if let password = base.password { url += "\(base.username ?? ""):\(password)@" }
        url += "\(base.host):\(base.port)/2"
        let db2 = RedisConnection(configuration: try RedisConfiguration(url: url))
        defer { db2.close() }
        let db0 = try TestConnections.connection(database: 0)
        defer { db0.close() }

        try db2.call(["SET", "\(p):k", "in-two"])
        #expect(try db0.call(["GET", "\(p):k"]) == .null)
        #expect(try db2.call(["GET", "\(p):k"]) == .string("in-two"))
        try db0.call(["SET", "\(p):k", "in-zero"])
        #expect(try db2.call(["GET", "\(p):k"]) == .string("in-two"))
        let info = try #require(try db2.call(["CLIENT", "INFO"]).string)
        #expect(info.contains(" db=2 "))

        // After a reconnect the database is selected again.
        try db0.call(["CLIENT", "KILL", "ID", String(try TestConnections.clientID(db2))])
        _ = try? db2.call(["PING"])
        #expect(try db2.call(["GET", "\(p):k"]) == .string("in-two"))
    }

    @Test func authWithUserAndPassword() throws {
        let p = TestRedis.uniquePrefix()
        let admin = try TestConnections.connection()
        defer { admin.close() }
        let user = "u\(p)"
        guard (try? admin.call(["ACL", "SETUSER", user, "on", ">pw:\(p)", "~\(p):*", "+@all"])) != nil else {
            // A shared REDIS_URL may not allow ACL changes.
            return
        }
        defer { _ = try? admin.call(["ACL", "DELUSER", user]) }
        let base = try TestConnections.configuration()
        let good = RedisConnection(
            configuration: try RedisConfiguration(url: "redis://\(user):pw:\(p)@\(base.host):\(base.port)"))
        defer { good.close() }
        #expect(try good.call(["ACL", "WHOAMI"]) == .string(user))
        try good.call(["SET", "\(p):k", "v"])
        #expect(try good.call(["GET", "\(p):k"]) == .string("v"))
        // Outside its key pattern: a server error, not a connection problem.
        do {
            try good.call(["GET", "other:k"])
            Issue.record("expected NOPERM")
        } catch {
            #expect(error.kind == .server)
        }
        try admin.call(["DEL", "\(p):k"])

        let bad = RedisConnection(
            configuration: try RedisConfiguration(url: "redis://\(user):wrong@\(base.host):\(base.port)"))
        defer { bad.close() }
        do {
            try bad.call(["PING"])
            Issue.record("a wrong password should fail")
        } catch {
            #expect(error.kind == .connection)
            #expect(error.message.contains("setup failed"))
        }
    }
}
