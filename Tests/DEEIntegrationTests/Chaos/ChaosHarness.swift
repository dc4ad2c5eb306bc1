import DEETestSupport
import Foundation
import Redis
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fault scenarios against real processes (SPEC 9): a seeded mix of executes, bulk executes, bulk cancels, signals,
/// suppressions and ticks (every command with a `requestId` and a `replyTo`, as careful producers send them) goes
/// into the ingress stream in waves while the scenario kills engines, stops them, or restarts Redis. Afterwards the
/// same ingress log (the entries whose XADD returned an id, with those ids) is fed to one engine that meets no fault,
/// on a prefix of its own, and everything is compared: every reply, every run hash, every audit list, and every
/// partition's events and action requests, in order. Exactly-once effect means they are equal.
struct ChaosHarness {
    /// One row of the chaos table.
    struct Row: CustomStringConvertible {
        var scenario: String
        var sent = 0
        var applied = 0
        var duplicates = 0
        var lost = 0
        var answered = 0
        var restarts = 0
        var notes: [String] = []

        var clean: Bool { applied == sent && duplicates == 0 && lost == 0 && answered == sent && notes.isEmpty }

        var description: String {
            "| \(scenario) | \(sent) | \(applied) | \(duplicates) | \(lost) | \(answered) | \(restarts) |"
        }

        static let header = """
            | scenario | commands sent | applied | duplicates | lost | answered | restarts |
            |---|---|---|---|---|---|---|
            """
    }

    let executable: String
    let url: String
    let partitions: Int
    /// Commands in all, and per wave.
    let commands: Int
    let wave: Int
    let seed: UInt64
    /// Replicas every producer `XADD` waits for (`WAIT`), and that the engines wait for (`--wait-replicas`): a
    /// master failover loses only what no replica had, and nothing was acknowledged or replied before one had it.
    var replicas = 0
    /// Where the fault-free run goes (default: the same Redis). A cluster scenario sends it to a single Redis, so
    /// the comparison also says a cluster answers as one Redis does.
    var oracleURL: String?

    init(executable: String, url: String, partitions: Int = 2, seed: UInt64 = 1) {
        self.executable = executable
        self.url = url
        self.partitions = partitions
        let scale = ProcessInfo.processInfo.environment["DEE_CHAOS_COMMANDS"].flatMap { Int($0) }
        self.commands = min(max(scale ?? 1200, 100), 200_000)
        self.wave = max(100, commands / 8)
        self.seed = seed
    }

    /// What a scenario can do to the processes between and during waves.
    final class Faults: @unchecked Sendable {
        let engines: [EngineProcess]
        let redis: DedicatedRedis?
        var restarts = 0
        var rng: SeededRandom
        var notes: [String] = []

        /// The deployment's key prefix (a fault may aim at the node that holds one of its keys).
        let prefix: String

        init(engines: [EngineProcess], redis: DedicatedRedis?, prefix: String, seed: UInt64) {
            self.engines = engines
            self.redis = redis
            self.prefix = prefix
            self.rng = SeededRandom(seed ^ 0x5eed)
        }

        /// Sleeps a random 0…`maxMs` ms: a random moment inside the engines' work on the wave just sent.
        func randomMoment(_ maxMs: Int) { usleep(UInt32(rng.below(maxMs + 1)) * 1000) }

        /// kill -9 of a random running engine, started again after a random pause.
        func killRandomEngine() {
            let running = engines.filter(\.isRunning)
            guard !running.isEmpty else { return }
            let victim = running[rng.below(running.count)]
            victim.killHard()
            restarts += 1
            randomMoment(800)
            try? victim.start()
        }

        /// SIGTERM to a random engine: it must exit 0 within a bounded time; then it is started again.
        func stopRandomEngine() {
            let victim = engines[rng.below(engines.count)]
            guard victim.isRunning else { return }
            if let (status, seconds) = victim.stop(grace: 20) {
                print("chaos: SIGTERM to \(victim.consumer): exit \(status) after \(String(format: "%.2f", seconds)) s")
                if status != 0 { notes.append("SIGTERM exit status \(status)") }
                if seconds > 15 { notes.append("SIGTERM to \(victim.consumer) took \(seconds) s; its log:\n\(victim.output)") }
            } else {
                notes.append("SIGTERM: no exit within 20 s")
            }
            restarts += 1
            try? victim.start()
        }

        /// Cuts every client connection of the dedicated Redis `times` times, a random moment apart: an engine's
        /// connection may drop between an apply and its reply, or inside a pipeline.
        func cutConnections(times: Int) {
            guard let redis else { return }
            for _ in 0..<times {
                randomMoment(150)
                if let admin = try? RedisConnection(configuration: RedisConfiguration(url: redis.url)) {
                    _ = try? admin.send(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
                    admin.close()
                }
            }
            restarts += 1
        }

        /// Redis at maxmemory with noeviction for `seconds`: every write is refused with OOM, then memory is let go.
        func squeezeMemory(seconds: Double) {
            guard let redis, let admin = try? RedisConnection(configuration: RedisConfiguration(url: redis.url)) else {
                return
            }
            defer { admin.close() }
            _ = try? admin.send(["CONFIG", "SET", "maxmemory-policy", "noeviction"])
            _ = try? admin.send(["CONFIG", "SET", "maxmemory", "1mb"])
            usleep(UInt32(seconds * 1_000_000))
            _ = try? admin.send(["CONFIG", "SET", "maxmemory", "0"])
            restarts += 1
        }

        /// Redis stopped (gracefully, or with SIGKILL) and started again on the same port and data.
        func restartRedis(graceful: Bool) {
            guard let redis else { return }
            if graceful { redis.shutdownGracefully() } else { redis.killHard() }
            restarts += 1
            randomMoment(500)
            do { try redis.start() } catch { notes.append("redis did not start again: \(error)") }
        }
    }

    /// Runs one scenario: `engines` processes on a fresh prefix, `fault` called after each wave is sent.
    func run(
        _ scenario: String, engines count: Int, redis dedicated: DedicatedRedis? = nil,
        fault: (Faults, Int) -> Void
    ) throws -> Row {
        let url = dedicated?.url ?? self.url
        let prefix = TestRedis.uniquePrefix()
        let redis = try RedisConfiguration(url: url).makeConnection()
        defer { _ = try? redis.unlinkKeys(matching: "\(prefix):*") }
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("dee-chaos-\(prefix)")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: logs) }
        // The metrics server and sampler run too (a free port each), so every fault meets the whole service group.
        let extra = ["--partitions", String(partitions), "--metrics-port", "0"]
            + (replicas > 0 ? ["--wait-replicas", String(replicas), "--wait-timeout", "2s"] : [])
        let engines = try (0..<count).map {
            try EngineProcess(
                executable: executable, url: url, prefix: prefix, consumer: "chaos-\($0)", extra: extra,
                log: logs.appendingPathComponent("engine-\($0).log"))
        }
        defer { engines.forEach { $0.killHard() } }
        let faults = Faults(engines: engines, redis: dedicated, prefix: prefix, seed: seed)
        let replyStream = "\(prefix):replies:chaos"
        let replies = ReplyCollector(url: url, stream: replyStream)
        replies.start()
        defer { replies.stop() }

        var workload = Workload(seed: seed, replyTo: replyStream)
        var sent: [(id: String, fields: [(String, String)])] = []
        // The plans first, through the same log.
        for plan in Workload.plans {
            sent.append(try send([plan + [("replyTo", replyStream)]], prefix: prefix, redis)[0])
        }
        var remaining = commands
        var index = 0
        while remaining > 0 {
            let n = min(wave, remaining)
            let batch = (0..<n).map { _ in workload.next() }
            remaining -= n
            sent += try sendConcurrently(batch, prefix: prefix, url: url)
            fault(faults, index)
            index += 1
        }
        for e in engines where !e.isRunning { try e.start() }
        // Redis may have restarted under this connection: the next call reconnects.
        redis.close()
        let answered = replies.wait(for: Set(sent.map(\.id)), timeout: 180)
        // Graceful stop of every engine: exit 0, in bounded time.
        for e in engines {
            if let (status, seconds) = e.stop(grace: 20) {
                if status != 0 { faults.notes.append("final SIGTERM exit status \(status)") }
                _ = seconds
            }
        }
        let chaosState = try State.read(prefix: prefix, partitions: partitions, redis)
        let chaosReplies = replies.snapshot()
        replies.stop()

        // The same log, without faults.
        let oraclePrefix = TestRedis.uniquePrefix()
        let oracleURL = self.oracleURL ?? url
        let oracleRedis = try RedisConfiguration(url: oracleURL).makeConnection()
        defer {
            _ = try? oracleRedis.unlinkKeys(matching: "\(oraclePrefix):*")
            oracleRedis.close()
        }
        let oracleStream = "\(oraclePrefix):replies:chaos"
        let oracleReplies = ReplyCollector(url: oracleURL, stream: oracleStream)
        oracleReplies.start()
        defer { oracleReplies.stop() }
        let oracle = try EngineProcess(
            executable: executable, url: oracleURL, prefix: oraclePrefix, consumer: "oracle", extra: extra,
            log: logs.appendingPathComponent("oracle.log"))
        defer { oracle.killHard() }
        for chunk in stride(from: 0, to: sent.count, by: 200).map({ Array(sent[$0..<min($0 + 200, sent.count)]) }) {
            let commands = chunk.map { entry in
                ["XADD", "\(oraclePrefix):commands", entry.id]
                    + entry.fields.flatMap { $0.0 == "replyTo" ? [$0.0, oracleStream] : [$0.0, $0.1] }
            }
            for r in try oracleRedis.pipeline(commands) {
                if case .error(let e) = r { throw RedisError(.server, "oracle XADD: \(e)") }
            }
        }
        let oracleAnswered = oracleReplies.wait(for: Set(sent.map(\.id)), timeout: 180)
        oracle.stop(grace: 20)
        let oracleState = try State.read(prefix: oraclePrefix, partitions: partitions, oracleRedis)
        let expected = oracleReplies.snapshot()

        var row = Row(scenario: scenario)
        row.sent = sent.count
        row.answered = answered
        row.restarts = faults.restarts
        row.notes = faults.notes
        if oracleAnswered != sent.count { row.notes.append("the fault-free run answered \(oracleAnswered) of \(sent.count)") }
        for entry in sent {
            guard let got = chaosReplies[entry.id], let want = expected[entry.id] else { continue }
            if got.count == 1 && got.first == want.first { row.applied += 1 } else {
                row.notes.append("reply to \(entry.id) differs: \(got.sorted()) vs \(want.sorted())".prefix(400).description)
            }
        }
        let diff = chaosState.compare(with: oracleState)
        row.duplicates = diff.extra
        row.lost = diff.missing + (sent.count - answered)
        row.notes += diff.notes.prefix(5)
        if !row.clean {
            row.notes.append("engine logs:\n" + engines.map(\.output).joined(separator: "\n---\n").suffix(3000))
        }
        Self.record(row)
        return row
    }

    private func send(_ batch: [[(String, String)]], prefix: String, _ redis: any RedisCommands) throws
        -> [(id: String, fields: [(String, String)])]
    {
        let replies = try redis.pipeline(batch.map { ["XADD", "\(prefix):commands", "*"] + $0.flatMap { [$0.0, $0.1] } })
        // A careful producer waits until a replica has its commands (docs/RELIABILITY.md "Replicas").
        if replicas > 0 {
            var waited = 0
            while try redis.waitForReplicas(replicas, timeoutMilliseconds: 1000) < replicas {
                waited += 1
                if waited >= 30 { throw RedisError(.server, "NOREPLICAS for the producer's XADDs for 30 s") }
            }
        }
        return try zip(batch, replies).map { fields, reply in
            guard let id = reply.string else { throw RedisError(.unexpectedReply, "XADD answered \(reply)") }
            return (id, fields)
        }
    }

    /// Two producers pipelining their halves of a wave at once (their entries interleave in the log).
    private func sendConcurrently(_ batch: [[(String, String)]], prefix: String, url: String) throws
        -> [(id: String, fields: [(String, String)])]
    {
        let halves = [Array(batch.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)),
                      Array(batch.enumerated().filter { $0.offset % 2 == 1 }.map(\.element))]
        let results = Mutex<[Result<[(id: String, fields: [(String, String)])], any Error>]>([])
        let group = DispatchGroup()
        for half in halves {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let r = Result { () throws -> [(id: String, fields: [(String, String)])] in
                    let redis = try RedisConfiguration(url: url).makeConnection()
                    defer { redis.close() }
                    var out: [(id: String, fields: [(String, String)])] = []
                    for start in stride(from: 0, to: half.count, by: 50) {
                        out += try self.send(Array(half[start..<min(start + 50, half.count)]), prefix: prefix, redis)
                    }
                    return out
                }
                results.withLock { $0.append(r) }
            }
            thread.start()
        }
        group.wait()
        return try results.withLock { $0 }.flatMap { try $0.get() }.sorted { EntryOrder.less($0.id, $1.id) }
    }

    /// Appends a row to the table file named by DEE_CHAOS_TABLE (scripts/chaos), and prints it.
    static func record(_ row: Row) {
        print("chaos: \(row)")
        guard let path = ProcessInfo.processInfo.environment["DEE_CHAOS_TABLE"], !path.isEmpty else { return }
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else { return }
        handle.seekToEndOfFile()
        handle.write(Data((row.description + "\n").utf8))
        try? handle.close()
    }
}

/// Stream ids in id order.
enum EntryOrder {
    static func less(_ a: String, _ b: String) -> Bool {
        let x = a.split(separator: "-").compactMap { UInt64($0) }
        let y = b.split(separator: "-").compactMap { UInt64($0) }
        return x.lexicographicallyPrecedes(y)
    }
}

/// A seeded mix of commands, each with a requestId and a replyTo.
struct Workload {
    static let plans: [[(String, String)]] = [
        [
            ("type", "registerPlan"), ("requestId", "plan-p1"),
            ("plan", #"{"id":"p1","steps":[{"id":"a1","type":"action","action":"send_email","params":{"to":"{{contact.email}}"}},{"id":"w","type":"wait","ticks":2},{"id":"a2","type":"action","action":"send_email","params":{"template":"nudge"}},{"id":"done","type":"end","outcome":"finished"}]}"#),
        ],
        [
            ("type", "registerPlan"), ("requestId", "plan-p2"),
            ("plan", #"{"id":"p2","exitOn":["stop"],"steps":[{"id":"a1","type":"action","action":"send_sms"},{"id":"s","type":"waitForSignal","signal":"go","timeoutTicks":3,"onSignal":"won","onTimeout":"lost"},{"id":"won","type":"end","outcome":"replied"},{"id":"lost","type":"end","outcome":"no_reply"}]}"#),
        ],
    ]

    var rng: SeededRandom
    let replyTo: String
    var contacts = 0
    var n = 0

    init(seed: UInt64, replyTo: String) {
        self.rng = SeededRandom(seed)
        self.replyTo = replyTo
    }

    mutating func next() -> [(String, String)] {
        n += 1
        var f: [(String, String)] = []
        let roll = rng.below(100)
        func known() -> String { "c\(contacts == 0 ? 0 : rng.below(contacts))" }
        switch roll {
        case 0..<58:
            contacts += 1
            let plan = rng.below(2) == 0 ? "p1" : "p2"
            f = [("type", "execute"), ("planId", plan),
                 ("contact", #"{"id":"c\#(contacts - 1)","email":"c\#(contacts - 1)@example.com"}"#)]
        case 58..<70:
            f = [("type", "signal"), ("contactId", known()), ("name", rng.below(3) == 0 ? "stop" : "go")]
        case 70..<84:
            f = [("type", "tick"), ("count", String(1 + rng.below(2)))]
        case 84..<89:
            let base = n
            let list = (0..<40).map { #"{"id":"b\#(base)-\#($0)","email":"b\#(base)-\#($0)@example.com"}"# }
            f = [("type", "bulkExecute"), ("planId", "p1"), ("contacts", "[" + list.joined(separator: ",") + "]"),
                 ("batchSize", "10")]
        case 89..<94:
            f = [("type", "bulkCancel"), ("filters", #"{"planId":"p2","status":["waiting"]}"#), ("reason", "chaos")]
        default:
            f = [("type", "suppress"), ("contactId", known())]
        }
        return f + [("requestId", "w\(n)"), ("replyTo", replyTo)]
    }
}

/// Tails a reply stream from its start on a thread of its own (the engine trims reply streams), keeping every
/// reply's outcome by command id.
final class ReplyCollector: @unchecked Sendable {
    let url: String
    let stream: String
    private let replies = Mutex<[String: [String]]>([:])
    private let running = Atomic<Bool>(false)
    private var thread: Thread?

    init(url: String, stream: String) {
        self.url = url
        self.stream = stream
    }

    func start() {
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            var last = "0-0"
            var redis: (any RedisCommands)?
            while running.load(ordering: .relaxed) {
                do {
                    if redis == nil { redis = try RedisConfiguration(url: url).makeConnection() }
                    let reply = try redis!.call(["XREAD", "COUNT", "2000", "BLOCK", "100", "STREAMS", stream, last])
                    guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { continue }
                    let items = first[1].streamEntries
                    replies.withLock { r in
                        for (id, fields) in items {
                            last = id
                            let outcome = [fields["ok"], fields["result"], fields["error"], fields["message"]]
                                .map { $0 ?? "" }.joined(separator: "|")
                            r[fields["commandId"] ?? "", default: []].append(outcome)
                        }
                    }
                } catch {
                    // Redis restarting: try again shortly.
                    redis = nil
                    usleep(100_000)
                }
            }
        }
        thread = t
        t.start()
    }

    func stop() { running.store(false, ordering: .relaxed) }

    /// Distinct outcomes per command id (a reply sent twice is the same outcome twice).
    func snapshot() -> [String: Set<String>] {
        replies.withLock { $0.mapValues { Set($0) } }
    }

    /// Waits until every id has a reply (or the timeout); returns how many have one.
    func wait(for ids: Set<String>, timeout: Double) -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let have = replies.withLock { r in ids.filter { r[$0] != nil }.count }
            if have == ids.count || Date() > deadline { return have }
            usleep(100_000)
        }
    }
}

/// What a deployment holds, for comparison: run hashes, audit lists, and each partition's events and actions.
struct State {
    var runs: [String: [String: String]] = [:]
    var audit: [String: [String]] = [:]
    var streams: [String: [String]] = [:]

    static func read(prefix: String, partitions: Int, _ redis: any RedisCommands) throws -> State {
        var s = State()
        for p in 0..<partitions {
            let base = "\(prefix):{\(p)}"
            for kind in ["events", "actions"] {
                s.streams["\(p):\(kind)"] = try CrashTests.entries(redis, "\(base):\(kind)").map { fields in
                    fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                }
            }
            var cursor = "0"
            repeat {
                let reply = try redis.scan(cursor: cursor, matching: "\(base):run:*", count: 1000, nodeOf: "\(base):epoch")
                let parts = reply.array ?? []
                cursor = parts.first?.string ?? "0"
                let keys = (parts.count > 1 ? parts[1].array ?? [] : []).compactMap(\.string)
                let hashes = try redis.pipeline(keys.map { ["HGETALL", $0] })
                let audits = try redis.pipeline(keys.map { ["LRANGE", $0.replacingOccurrences(of: ":run:", with: ":audit:"), "0", "-1"] })
                for (k, (h, a)) in zip(keys, zip(hashes, audits)) {
                    let id = String(k.dropFirst("\(base):run:".count))
                    s.runs[id] = h.pairs
                    s.audit[id] = (a.array ?? []).compactMap(\.string)
                }
            } while cursor != "0"
        }
        return s
    }

    /// Entries this state has beyond `other` (duplicates) and lacks (lost), over runs, audit entries, events and
    /// actions; and a few notes saying where.
    func compare(with other: State) -> (extra: Int, missing: Int, notes: [String]) {
        var extra = 0
        var missing = 0
        var notes: [String] = []
        func multiset(_ a: [String], _ b: [String], _ what: String) {
            var counts: [String: Int] = [:]
            for x in a { counts[x, default: 0] += 1 }
            for x in b { counts[x, default: 0] -= 1 }
            let more = counts.values.filter { $0 > 0 }.reduce(0, +)
            let less = -counts.values.filter { $0 < 0 }.reduce(0, +)
            extra += more
            missing += less
            if more + less > 0 {
                notes.append("\(what): \(more) extra, \(less) missing")
            } else if a != b {
                notes.append("\(what): same entries in another order")
                missing += 1
            }
        }
        for key in Set(streams.keys).union(other.streams.keys).sorted() {
            multiset(streams[key] ?? [], other.streams[key] ?? [], key)
        }
        for id in Set(runs.keys).union(other.runs.keys).sorted() {
            switch (runs[id], other.runs[id]) {
            case (nil, _?):
                missing += 1
                notes.append("run \(id) missing")
            case (_?, nil):
                extra += 1
                notes.append("run \(id) extra")
            case (let a?, let b?) where a != b:
                missing += 1
                notes.append("run \(id) differs: \(a.filter { b[$0.key] != $0.value }.keys.sorted())")
            default:
                break
            }
            multiset(audit[id] ?? [], other.audit[id] ?? [], "audit of \(id)")
        }
        return (extra, missing, notes)
    }
}
