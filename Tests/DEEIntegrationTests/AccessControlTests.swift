import DEEClient
import DEECore
import DEEService
import DEEStore
import DEETestSupport
import Foundation
import Logging
import Redis
import Synchronization
import Testing

/// docs/ACCESS.md, for real: the documented `ACL SETUSER` lines on a Redis of the test's own, an engine connected as
/// `dee-engine` (password with special characters, percent-encoded in the URL), producers behind front doors.
@Suite("Access control", .offPool)
struct AccessControlTests {
    /// Log lines (message and metadata) of an engine, to check that no secret is ever printed.
    final class LogCapture: Sendable {
        let lines = Mutex<[String]>([])
        var text: String { lines.withLock { $0.joined(separator: "\n") } }

        func logger() -> Logger {
            var logger = Logger(label: "dee-acl-test") { _ in Handler(capture: self) }
            logger.logLevel = .debug
            return logger
        }

        struct Handler: LogHandler {
            let capture: LogCapture
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .debug
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                let all = metadata.merging(event.metadata ?? [:]) { $1 }
                capture.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
            }
        }
    }

    static let enginePassword = "p@ss:w/rd%"
    static let encodedEnginePassword = "p%40ss%3Aw%2Frd%25"

    static func url(_ redis: DedicatedRedis, user: String, encodedPassword: String) -> String {
        "redis://\(user):\(encodedPassword)@127.0.0.1:\(redis.port)"
    }

    static func connect(_ url: String) throws -> RedisConnection {
        RedisConnection(configuration: try RedisConfiguration(url: url))
    }

    /// The reply with `requestId` on `stream`, waiting for it.
    static func reply(_ redis: RedisConnection, _ stream: String, _ requestId: String, timeout: Double = 20) throws
        -> [String: String]?
    {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let entries = try redis.call(["XRANGE", stream, "-", "+"]).streamEntries
            if let hit = entries.first(where: { $0.fields["requestId"] == requestId }) { return hit.fields }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    static func isNoPerm(_ body: () throws -> Void) -> Bool {
        do {
            try body()
            return false
        } catch {
            return "\(error)".contains("NOPERM")
        }
    }

    static func resultJSON(_ fields: [String: String]?) -> Any? {
        guard let text = fields?["result"], let data = text.data(using: .utf8) else { return nil }
        return try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    @Test func theDocumentShowsExactlyTheLinesTheTestsRun() throws {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/ACCESS.md")
        let text = try String(contentsOf: doc, encoding: .utf8)
        for line in AccessControl.documentedLines {
            #expect(text.contains(line), "docs/ACCESS.md lacks: \(line)")
        }
    }

    @Test func usersFrontDoorsAndSecrets() async throws {
        let redis = try DedicatedRedis(arguments: [])
        let admin = try Self.connect(redis.url)
        let prefix = "acl"
        let producers = ["alice", "bob"]
        try admin.call(AccessControl.engine(prefix: prefix, password: Self.enginePassword))
        try admin.call(AccessControl.operator(prefix: prefix, password: "op-secret"))
        for p in producers { try admin.call(AccessControl.producer(p, prefix: prefix, password: "\(p)-secret")) }
        try admin.call(["ACL", "LOG", "RESET"])

        var config = TestEngine.configuration(prefix: prefix, partitions: 2)
        config.producers = producers
        config.auditRetentionSeconds = 3600
        let capture = LogCapture()
        let engineURL = Self.url(redis, user: AccessControl.engineUser, encodedPassword: Self.encodedEnginePassword)
        let engine = Engine(config: config, redis: try RedisConfiguration(url: engineURL), logger: capture.logger())
        let task = Task { try await engine.run() }
        defer { task.cancel() }

        try await offPool {
            let alice = try Self.connect(Self.url(redis, user: "dee-producer-alice", encodedPassword: "alice-secret"))
            let bob = try Self.connect(Self.url(redis, user: "dee-producer-bob", encodedPassword: "bob-secret"))
            let aliceReplies = "\(prefix):replies:alice:main"
            let bobReplies = "\(prefix):replies:bob:main"

            // Alice's own door takes her XADD; bob's door and the main ingress refuse it.
            let plan = try alice.call([
                "XADD", "\(prefix):commands:alice", "*", "type", "registerPlan", "plan", examplePlan, "requestId", "a1",
                "replyTo", aliceReplies, "actor", "bob",
            ])
            #expect(plan.string != nil)
            #expect(Self.isNoPerm { try alice.call(["XADD", "\(prefix):commands:bob", "*", "type", "stats"]) })
            #expect(Self.isNoPerm { try alice.call(["XADD", "\(prefix):commands", "*", "type", "stats"]) })
            #expect(Self.isNoPerm { try alice.call(["XADD", "\(prefix):{0}:inbox", "*", "type", "stats"]) })
            #expect(try Self.reply(alice, aliceReplies, "a1")?["ok"] == "true")

            // Her execute is applied with actor alice in the audit, though she wrote actor bob.
            try alice.call([
                "XADD", "\(prefix):commands:alice", "*", "type", "execute", "planId", "welcome", "contact",
                contact("c-alice"), "requestId", "a2", "replyTo", aliceReplies, "actor", "bob",
            ])
            let executed = try #require(try Self.reply(alice, aliceReplies, "a2"))
            #expect(executed["ok"] == "true", "\(executed)")
            let runId = try #require((Self.resultJSON(executed) as? [String: Any])?["id"] as? String)
            try alice.call([
                "XADD", "\(prefix):commands:alice", "*", "type", "getAudit", "runId", runId, "requestId", "a3",
                "replyTo", aliceReplies,
            ])
            let audit = (Self.resultJSON(try Self.reply(alice, aliceReplies, "a3")) as? [[String: Any]]) ?? []
            #expect(!audit.isEmpty)
            #expect(audit.allSatisfy { $0["actor"] as? String == "alice" }, "\(audit)")

            // Bob names alice's reply space: his command is applied, the replyTo dropped, alice gets nothing.
            try bob.call([
                "XADD", "\(prefix):commands:bob", "*", "type", "execute", "planId", "welcome", "contact",
                contact("c-bob"), "requestId", "b1", "replyTo", aliceReplies,
            ])
            try bob.call([
                "XADD", "\(prefix):commands:bob", "*", "type", "listRuns", "contactId", "c-bob", "requestId", "b2",
                "replyTo", bobReplies,
            ])
            let bobsRuns = try #require(try Self.reply(bob, bobReplies, "b2"))
            #expect((Self.resultJSON(bobsRuns) as? [String: Any])?["total"] as? Int == 1, "\(bobsRuns)")
            #expect(try Self.reply(alice, aliceReplies, "b1", timeout: 0.5) == nil)

            // Alice cannot read bob's replies, nor the ingress stream, nor bob's door.
            #expect(Self.isNoPerm { try alice.call(["XRANGE", bobReplies, "-", "+"]) })
            #expect(Self.isNoPerm { try alice.call(["XREAD", "STREAMS", bobReplies, "0"]) })
            #expect(Self.isNoPerm { try alice.call(["XRANGE", "\(prefix):commands", "-", "+"]) })
            #expect(Self.isNoPerm { try alice.call(["XRANGE", "\(prefix):commands:bob", "-", "+"]) })

            // The operator reads state and sends commands (DEEClient: XADD to the ingress, XREAD of its replies).
            let op = try Self.connect(Self.url(redis, user: "dee-operator", encodedPassword: "op-secret"))
            let ops = DEEClient(redis: op, prefix: prefix)
            let listed = try ops.call("listRuns", ["limit": "10"])
            #expect(listed.ok, "\(listed.fields)")
            #expect(listed.total == 2)
            // Every kind of command, so that every path of the engine runs under its ACL user.
            for (type, fields) in [
                ("tick", ["count": "6"]), ("getRun", ["runId": runId]), ("verifyAudit", ["runId": runId]),
                ("replay", ["runId": runId]), ("listPlans", [:]), ("getPlan", ["planId": "welcome"]),
                ("bulkExecute", ["planId": "welcome", "contacts": "[\(contact("c-b1")),\(contact("c-b2"))]"]),
                ("signal", ["contactId": "c-b1", "name": "unsubscribed"]),
                ("pauseRun", ["runId": runId]), ("resumeRun", ["runId": runId]),
                ("suppress", ["contactId": "c-b2"]), ("unsuppress", ["contactId": "c-b2"]),
                ("bulkCancel", ["filters": #"{"planId":"welcome"}"#, "reason": "done"]), ("tick", ["count": "2"]),
                ("listRuns", ["status": "cancelled"]), ("getAudit", ["runId": runId]),
            ] {
                let r = try ops.call(type, fields)
                #expect(r.ok || ["invalid_transition", "not_found"].contains(r.error ?? ""), "\(type): \(r.fields)")
            }
            #expect(try ops.call("stats").ok)
            #expect(try op.call(["HGETALL", "\(prefix):{0}:run:\(runId)"]).pairs["c"] == "c-alice")
            #expect(!(try op.call(["LRANGE", "\(prefix):{0}:audit:\(runId)", "0", "-1"]).array ?? []).isEmpty)
            #expect(Self.isNoPerm { try op.call(["XADD", "\(prefix):commands:alice", "*", "type", "stats"]) })
            #expect(Self.isNoPerm { try op.call(["XADD", "\(prefix):{0}:inbox", "*", "type", "stats"]) })
            #expect(Self.isNoPerm { try op.call(["HSET", "\(prefix):{0}:run:\(runId)", "s", "completed"]) })

            // A trusted service's plain XADD to the ingress keeps its own actor.
            let service = DEEClient(redis: admin, prefix: prefix)
            let svcRun = try service.call("execute", ["planId": "welcome", "contact": contact("c-svc"), "actor": "svc"])
            #expect(svcRun.ok, "\(svcRun.fields)")
            let svcId = try #require(svcRun.object["id"] as? String)
            let svcAudit = try service.call("getAudit", ["runId": svcId]).array.compactMap { $0 as? [String: Any] }
            #expect(svcAudit.first?["actor"] as? String == "svc")

            // Every door entry was copied (all three answered); the door is trimmed below its watermark.
            let mark = try admin.call(["HGET", "\(prefix):doors{\(prefix):commands}", "alice"]).string
            let door = try admin.call(["XRANGE", "\(prefix):commands:alice", "-", "+"]).streamEntries
            #expect(door.count == 1 && door.first?.id == mark)

            // The engine was refused nothing (after its periodic ingress sweep ran too: every 5 s).
            Thread.sleep(forTimeInterval: 6)
            let denied = (try admin.call(["ACL", "LOG"]).array ?? []).map(\.pairs).filter {
                $0["username"] == AccessControl.engineUser
            }
            #expect(denied.isEmpty, "dee-engine was refused: \(denied)")

            // A wrong password: the error names neither it nor the real one.
            let wrong = "p@ss:w/rd%X"
            let wrongURL = Self.url(redis, user: AccessControl.engineUser, encodedPassword: "p%40ss%3Aw%2Frd%25X")
            var message = ""
            do {
                try Self.connect(wrongURL).call(["PING"])
            } catch {
                message = "\(error) \(String(reflecting: error))"
            }
            #expect(message.contains("WRONGPASS"), "\(message)")
            for secret in [wrong, Self.enginePassword, Self.encodedEnginePassword, "p%40ss"] {
                #expect(!message.contains(secret), "\(message)")
            }
        }

        // An engine started with the wrong password logs its retries, never the password.
        let wrongCapture = LogCapture()
        let wrongEngine = Engine(
            config: config,
            redis: try RedisConfiguration(
                url: Self.url(redis, user: AccessControl.engineUser, encodedPassword: "wr%40ng%25pw")),
            logger: wrongCapture.logger())
        let wrongTask = Task { try await wrongEngine.run() }
        try await offPool {
            _ = eventually(timeout: 10) { wrongCapture.text.contains("WRONGPASS") }
        }
        wrongTask.cancel()
        _ = try? await wrongTask.value
        task.cancel()
        _ = try? await task.value
        #expect(wrongCapture.text.contains("WRONGPASS"), "\(wrongCapture.text)")
        for (logs, secrets) in [
            (capture.text, [Self.enginePassword, Self.encodedEnginePassword]), (wrongCapture.text, ["wr@ng%pw", "wr%40ng%25pw"]),
        ] {
            for secret in secrets { #expect(!logs.contains(secret), "a log line holds the password: \(logs)") }
        }
        #expect(capture.text.contains("dee-engine:***@"), "\(capture.text)")
    }

    /// The copy script on its own: exactly once, actor rewritten, out-of-space replyTo dropped, ids compared
    /// exactly (sequences past a double's precision).
    @Test func copyScriptIsExactlyOnce() async throws {
        let redis = try TestRedis.url()
        let prefix = TestRedis.uniquePrefix()
        let conn = try Self.connect(redis)
        defer { try? conn.unlinkKeys(matching: "\(prefix):*") }
        let store = FrontDoorStore(keys: Keys(prefix: prefix), names: ["alice"])
        let door = "\(prefix):commands:alice"
        try conn.call(["XADD", door, "5-18446744073709551614", "type", "stats", "actor", "bob"])
        try conn.call(["XADD", door, "5-18446744073709551615", "type", "stats", "replyTo", "\(prefix):replies:bob:x"])
        let batch = try store.read(count: 10, conn)
        let entries = try batch[0].entries.get().map { (id: $0.id, fields: Optional($0.fields)) }
        #expect(entries.count == 2)
        let call = store.copyCall(name: "alice", entries)
        let first = try store.copy([call, call], conn)
        #expect(try first[0].get() == DoorCopy(copied: 2, droppedReplyTo: 1, watermark: "5-18446744073709551615"))
        #expect(try first[1].get().copied == 0)
        // Only the first entry again (a crash between copy and the next read): nothing.
        #expect(try store.copy([store.copyCall(name: "alice", [entries[0]])], conn)[0].get().copied == 0)
        let ingress = try conn.call(["XRANGE", "\(prefix):commands", "-", "+"]).streamEntries
        #expect(ingress.count == 2)
        #expect(ingress.allSatisfy { $0.fields["actor"] == "alice" })
        #expect(ingress[1].fields["replyTo"] == nil)
        #expect(try store.read(count: 10, conn)[0].entries.get().isEmpty)
        try store.trim([("alice", "5-18446744073709551615")], conn)
        #expect(try conn.call(["XLEN", door]).int == 1)
    }
}
