import ArgumentParser
import DEECore
import DEEStore
import Dispatch
import Foundation
import Redis

/// Drives a running engine (started by scripts/bench) and Redis directly, and prints one Markdown table.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dee-bench", abstract: "Benchmark a running DEE engine against raw Redis on the same machine.")

    @Option(help: "Redis URL of the engine under test.") var redisURL = "redis://127.0.0.1:6379"
    @Option(help: "Key prefix the engine serves.") var prefix = "bench"
    @Option(help: "execute commands sent through the stream.") var executes = 50_000
    @Option(help: "Producer threads for execute.") var producers = 4
    @Option(help: "Commands in flight per producer.") var window = 200
    @Option(help: "Contacts in the bulkExecute workload.") var bulk = 100_000
    @Option(help: "Active runs the tick workload steps.") var tickRuns = 1_000_000
    @Option(help: "Queries per listRuns shape (after 10 untimed ones).") var queries = 1_000
    @Option(help: "Write the table to this Markdown file too.") var output: String?
    @Option(help: "Partitions of the engine under test (scripts/bench starts it with the same).") var partitions = 1
    @Option(help: "Workloads to run, comma-separated (execute,mixed,raw,bulk,tick,rawbulk,list,memory; or only mixed, or only executeRid: that row alone); default all.")
    var only: String?

    /// The bench's plan: action, wait 1,000 ticks, action, end.
    static let planJSON = #"{"id":"bench","steps":[{"id":"hello","type":"action","action":"send","params":{"to":"{{contact.email}}"}},{"id":"pause","type":"wait","ticks":1000},{"id":"nudge","type":"action","action":"send","params":{"to":"{{contact.email}}"}},{"id":"done","type":"end"}]}"#

    /// ``planJSON`` parsed, for the raw baselines that compute the engine's writes themselves.
    static func plan() throws -> Plan { try Plan.parse(JSONValue.parse(planJSON) ?? .null) }

    func run() throws {
        let config = try RedisConfiguration(url: redisURL, timeoutSeconds: 600)
        let redis = config.makeConnection()
        var rows: [(String, String)] = []
        func row(_ workload: String, _ figure: String) {
            rows.append((workload, figure))
            FileHandle.standardOutput.write(Data("| \(workload) | \(figure) |\n".utf8))
        }
        /// The rows so far as a Markdown table, to `--output`.
        func writeTable() throws {
            guard let output else { return }
            var text = "| workload | figure |\n|---|---|\n"
            for (w, f) in rows { text += "| \(w) | \(f) |\n" }
            try text.write(toFile: output, atomically: true, encoding: .utf8)
        }
        let client = Client(redis: redis, prefix: prefix, stream: "\(prefix):replies:bench")
        // The bench's run: a linear 4-step plan, a contact with id and email, no variables.
        let plan = Self.planJSON
        _ = try client.call(["type", "registerPlan", "plan", plan])
        FileHandle.standardOutput.write(Data("| workload | figure |\n|---|---|\n".utf8))

        // 1. execute through the stream, several producers: with a requestId on every command (what careful
        // producers send, SPEC 5) and without, in the same run, alternating halves.
        let workloads = Set((only ?? "execute,mixed,raw,bulk,tick,rawbulk,list,memory").split(separator: ",").map(String.init))
        if workloads == ["executeRid"] {
            // Only the headline row (scripts/bench --cluster runs it once per cluster shape).
            let withIds = summary(try executeWorkload(config, requestIds: true, tag: "i", count: executes))
            row(
                "`execute` with `requestId`, \(producers) producers × \(window) in flight, \(withIds.count) commands",
                "\(Int(withIds.rate)) commands/s; p50 \(ms(withIds.p50)), p99 \(ms(withIds.p99)) command-to-reply")
            try writeTable()
            return
        }
        if workloads == ["mixed"] {
            let mixed = try mixedWorkload(config)
            row("mixed", "\(Int(mixed.rate)) commands/s; p50 \(ms(mixed.p50)), p99 \(ms(mixed.p99))")
            return
        }
        // Runs made so far (the tick workload tops them up to tickRuns).
        var made = 0
        var executeRate: Double?
        // The raw baseline, when measured between the execute rows' halves (both selected).
        var rawRate: Double?
        if workloads.contains("execute") {
            let (withIds, noIds, warmedUp, rawHalves) = try executeWorkloads(config, raw: workloads.contains("raw"))
            rawRate = rawHalves
            row(
                "`execute` with `requestId`, \(producers) producers × \(window) in flight, \(withIds.count) commands (in two halves, alternating with the row below)",
                "\(Int(withIds.rate)) commands/s; p50 \(ms(withIds.p50)), p99 \(ms(withIds.p99)) command-to-reply")
            row(
                "`execute` without `requestId`, same shape",
                "\(Int(noIds.rate)) commands/s; p50 \(ms(noIds.p50)), p99 \(ms(noIds.p99)); with/without = \(String(format: "%.2f", withIds.rate / noIds.rate))")
            executeRate = withIds.rate
            made += withIds.count + noIds.count + warmedUp
        }
        if workloads.contains("mixed") {
            // The executes above made runs whose first two steps (the action, then the start of the wait) are due at
            // the next two ticks: step them now, untimed, so the mixed workload's ticks step only the runs it makes
            // itself. (With one tick here, the mixed workload's first tick stepped all of them, ~4 s in which every
            // producer waited: its p99 read 3.7-3.9 s.)
            _ = try client.call(["type", "tick", "count", "2"], timeout: 600)
            let mixed = try mixedWorkload(config)
            let ratio = executeRate.map { "; mixed/execute with `requestId` = \(String(format: "%.2f", mixed.rate / $0))" } ?? ""
            row(
                "mixed: per 200 commands 100 `execute` with and 40 without `requestId`, 16 `signal`, 10 `actionResult`, 6 `pauseRun` + 6 `resumeRun`, 12 reads, 1 `tick`; every changing command but the 40 plain executes carries a `requestId`",
                "\(Int(mixed.rate)) commands/s; p50 \(ms(mixed.p50)), p99 \(ms(mixed.p99))\(ratio)")
            made += mixed.created
        }

        // 2. The same writes straight to Redis: the apply script, no engine.
        if workloads.contains("raw") {
            let raw = try rawRate ?? rawBaseline(config, count: executes / producers * producers).rate
            let ratio = executeRate.map { "; engine/raw = \(String(format: "%.2f", $0 / raw))" } ?? ""
            let when = rawRate == nil ? "" : " (in two halves, each after a half of both `execute` rows)"
            row(
                "raw baseline: the engine's grouped apply scripts for the same executes with `requestId` (run, indexes, enrollment, audit, events, actions, stored result), \(producers) connections, no engine\(when)",
                "\(Int(raw)) writes/s\(ratio)")
        }

        // 3. bulkExecute.
        var bulkRate: Double?
        var tickRate: Double?
        func ratio(_ engine: Double?, _ raw: Double) -> String {
            engine.map { "; engine/raw = \(String(format: "%.2f", $0 / raw))" } ?? ""
        }
        if workloads.contains("bulk") {
            let contacts = (0..<bulk).map { #"{"id":"b\#($0)","email":"x@y.z"}"# }.joined(separator: ",")
            let t0 = Date()
            let r = try client.call(["type", "bulkExecute", "planId", "bench", "contacts", "[\(contacts)]", "batchSize", "1000"], timeout: 600)
            let rate = Double(bulk) / Date().timeIntervalSince(t0)
            bulkRate = rate
            row("`bulkExecute` of \(bulk) contacts (batchSize 1000)", "\(Int(rate)) contacts/s (\(r["ok"] == "true" ? "ok" : r["message"] ?? "failed"))")
            made += bulk
        }
        // The same creations straight to Redis: one partition's ceiling on this machine.
        if workloads.contains("rawbulk") {
            let raw = try rawBulkOrTick(config, count: bulk, tick: false)
            row(
                "raw baseline for `bulkExecute`: the owner's enrollment checks and creation scripts for \(bulk) contacts (100 a script), one connection, 4 batches in flight, no engine",
                "\(Int(raw)) contacts/s\(ratio(bulkRate, raw))")
        }

        // 4. A tick over tickRuns active runs.
        if workloads.contains("tick") {
            var have = made
            var k = 0
            while have < tickRuns {
                let n = min(100_000, tickRuns - have)
                let more = (0..<n).map { #"{"id":"t\#(k)-\#($0)","email":"x@y.z"}"# }.joined(separator: ",")
                _ = try client.call(["type", "bulkExecute", "planId", "bench", "contacts", "[\(more)]", "batchSize", "1000"], timeout: 600)
                have += n
                k += 1
            }
            let t1 = Date()
            let tick = try client.call(["type", "tick"], timeout: 1200)
            let tickSeconds = Date().timeIntervalSince(t1)
            let stepped = (tick["result"].flatMap(JSONValue.parse)?.object?["stepped"]?.int) ?? 0
            let rate = Double(stepped) / tickSeconds
            tickRate = rate
            row("a tick stepping \(stepped) active runs", "\(Int(rate)) run-steps/s (\(String(format: "%.1f", tickSeconds)) s)")
        }

        // The tick straight to Redis: one partition's ceiling on this machine.
        if workloads.contains("rawbulk") {
            let raw = try rawBulkOrTick(config, count: bulk, tick: true)
            row(
                "raw baseline for the tick: the owner's due reads, `HGETALL`s and step scripts for \(bulk) runs it made first (untimed), one connection, 4 batches in flight, no engine",
                "\(Int(raw)) run-steps/s\(ratio(tickRate, raw))")
        }

        // 5. listRuns on all those runs.
        if workloads.contains("list") {
            let timeWindow = startWindow(redis)
            let shapes: [(String, [String])] = [
                ("by status", ["status", "active"]),
                ("by plan", ["planId", "bench"]),
                ("by contact", ["contactId", "b777"]),
                ("by time window", ["startedAfter", String(timeWindow.0), "startedBefore", String(timeWindow.1)]),
                ("status + contact", ["status", "active", "contactId", "b777"]),
                ("status + plan", ["status", "active", "planId", "bench"]),
                ("deep offset (100000)", ["status", "active", "offset", "100000"]),
            ]
            for (name, args) in shapes {
                let n = name.contains("+ plan") ? max(5, queries / 20) : queries
                var lat: [Double] = []
                var total = 0
                // Untimed first, like the other rows' warm-ups: the first pages after the tick and its baseline
                // meet cold caches. And 1,000 timed, not 200: with 200 the p99 is the second-slowest query, and one
                // stall of the machine of a few milliseconds (seen on this 2-core VM with nothing else running)
                // that delays two queries in a row decides it.
                for _ in 0..<min(10, n) { _ = try client.call(["type", "listRuns", "limit", "50"] + args, timeout: 120) }
                for _ in 0..<n {
                    let q0 = Date()
                    let reply = try client.call(["type", "listRuns", "limit", "50"] + args, timeout: 120)
                    lat.append(Date().timeIntervalSince(q0))
                    total = reply["result"].flatMap(JSONValue.parse)?.object?["total"]?.int ?? -1
                }
                row("`listRuns` \(name), page of 50, \(n) queries", "p50 \(ms(percentile(lat, 0.5))), p99 \(ms(percentile(lat, 0.99))); total \(total)")
            }
        }

        // 6. Memory per run.
        if workloads.contains("memory") { row("Redis memory", try memory(redis)) }

        try writeTable()
    }

    /// `executes` execute commands with requestId and `executes` without, after a short warm-up of each, in alternating halves (with, without,
    /// with, without): whichever shape ran first alone paid Redis's warm-up (its dictionaries growing, pages faulted
    /// in) and the ratio leaned with the order. Each shape's rate is its commands over its own time. With `raw`, the
    /// raw baseline too, in two halves, each after a pair of halves: this VM's speed drifts within minutes, so each
    /// figure of a ratio is taken across the same stretch of the run.
    func executeWorkloads(_ config: RedisConfiguration, raw: Bool)
        throws -> (
            with: (rate: Double, count: Int, p50: Double, p99: Double),
            without: (rate: Double, count: Int, p50: Double, p99: Double), warmUp: Int, raw: Double?
        )
    {
        // Untimed, first: the engine's and Redis's first seconds (connections, plan cache, the keyspace growing from
        // empty) belong to neither shape.
        let warmUp = min(2_000, max(producers, executes / 10))
        var warmed = try executeWorkload(config, requestIds: true, tag: "wi", count: warmUp).latencies.count
        warmed += try executeWorkload(config, requestIds: false, tag: "we", count: warmUp).latencies.count
        var runs: [Bool: (seconds: Double, latencies: [Double])] = [true: (0, []), false: (0, [])]
        var rawWrites = 0
        var rawSeconds = 0.0
        for (requestIds, tag) in [(true, "i"), (false, "e"), (true, "j"), (false, "f")] {
            let half = try executeWorkload(config, requestIds: requestIds, tag: tag, count: executes / 2)
            runs[requestIds, default: (0, [])].seconds += half.seconds
            runs[requestIds, default: (0, [])].latencies += half.latencies
            if raw, !requestIds {
                let r = try rawBaseline(config, count: executes / 2 / producers * producers)
                rawWrites += r.count
                rawSeconds += r.seconds
            }
        }
        let rawRate = raw && rawSeconds > 0 ? Double(rawWrites) / rawSeconds : nil
        return (summary(runs[true] ?? (0, [])), summary(runs[false] ?? (0, [])), warmed, rawRate)
    }

    /// `count` execute commands from `producers` pipelining producers, `window` in flight each.
    func executeWorkload(_ config: RedisConfiguration, requestIds: Bool, tag: String, count: Int) throws
        -> (seconds: Double, latencies: [Double])
    {
        let perProducer = count / producers
        let start = Date()
        let stamp = Int(start.timeIntervalSince1970 * 1000)
        let latencies = Locked<[Double]>([])
        let failures = Locked<[String]>([])
        concurrently(producers) { p in
            do {
                let c = Client(
                    redis: config.makeConnection(), prefix: prefix, stream: "\(prefix):replies:\(tag)\(p)")
                // `window` in flight all the time: each reply makes room for the next command (a producer that
                // waited for a whole window's replies before sending the next measured its slowest reply).
                let mine = try c.keepInFlight(perProducer, window: window) { i in
                    let contact = #"{"id":"\#(tag)\#(p)-\#(i)","email":"x@y.z"}"#
                    return requestIds
                        ? ["type", "execute", "requestId", "\(tag)-\(stamp)-\(p)-\(i)", "planId", "bench", "contact", contact]
                        : ["type", "execute", "planId", "bench", "contact", contact]
                }
                latencies.withLock { $0 += mine }
            } catch {
                failures.withLock { $0.append("producer \(p): \(error)") }
            }
        }
        let elapsed = Date().timeIntervalSince(start)
        if let first = failures.withLock({ $0.first }) { throw ProducerFailed(message: first) }
        return (elapsed, latencies.withLock { $0 })
    }

    /// What a deployment's stream looks like: executes with and without requestId, signals by contact, action
    /// results, pauses and resumes of runs this producer started, reads, and a tick now and then.
    func mixedWorkload(_ config: RedisConfiguration) throws -> (rate: Double, count: Int, created: Int, p50: Double, p99: Double) {
        let perProducer = executes / producers
        let start = Date()
        let stamp = Int(start.timeIntervalSince1970 * 1000)
        let latencies = Locked<[Double]>([])
        let created = Locked(0)
        let failures = Locked<[String]>([])
        concurrently(producers) { p in
            do {
                let c = Client(
                    redis: config.makeConnection(), prefix: prefix, stream: "\(prefix):replies:m\(p)")
                var sent = 0
                var mine: [Double] = []
                // Runs this producer started in earlier windows, with their contacts.
                var runs: [(id: String, contact: String)] = []
                var made = 0
                while sent < perProducer {
                    let n = min(window, perProducer - sent)
                    var commands: [[String]] = []
                    var contactOf: [Int: String] = [:]
                    for i in 0..<n {
                        let k = sent + i
                        let rid = "m-\(stamp)-\(p)-\(k)"
                        let slot = k % 200
                        let target = runs.isEmpty ? nil : runs[(k * 7919) % runs.count]
                        if slot < 140 || target == nil {
                            let contact = "m\(p)-\(k)"
                            contactOf[i] = contact
                            let body = #"{"id":"\#(contact)","email":"x@y.z"}"#
                            commands.append(
                                slot < 100 || slot >= 140
                                    ? ["type", "execute", "requestId", rid, "planId", "bench", "contact", body]
                                    : ["type", "execute", "planId", "bench", "contact", body])
                        } else if let t = target {
                            switch slot {
                            case 140..<156:
                                commands.append(["type", "signal", "requestId", rid, "contactId", t.contact, "name", "ping"])
                            case 156..<166:
                                let key = ActionRequest.key(runId: t.id, step: "hello", tick: 1, attempt: 1)
                                commands.append([
                                    "type", "actionResult", "requestId", rid, "runId", t.id, "idempotencyKey", key, "ok", "true",
                                ])
                            case 166..<172: commands.append(["type", "pauseRun", "requestId", rid, "runId", t.id])
                            case 172..<178: commands.append(["type", "resumeRun", "requestId", rid, "runId", t.id])
                            case 178..<184: commands.append(["type", "getRun", "runId", t.id])
                            case 184..<190: commands.append(["type", "listRuns", "contactId", t.contact])
                            case 190 where p == 0: commands.append(["type", "tick", "requestId", rid])
                            default: commands.append(["type", "getRun", "runId", t.id])
                            }
                        }
                    }
                    let ids = try c.sendMany(commands)
                    let order = try c.redisOrder(ids)
                    let replies = try c.awaitReplies(ids, keepResults: true)
                    mine += replies.latencies
                    for (i, id) in order.enumerated() {
                        guard let contact = contactOf[i], let result = replies.results[id],
                            let runId = JSONValue.parse(result)?.object?["id"]?.string
                        else { continue }
                        runs.append((runId, contact))
                        made += 1
                    }
                    sent += n
                }
                latencies.withLock { $0 += mine }
                created.withLock { $0 += made }
            } catch {
                failures.withLock { $0.append("producer \(p): \(error)") }
            }
        }
        let elapsed = Date().timeIntervalSince(start)
        if let first = failures.withLock({ $0.first }) { throw ProducerFailed(message: first) }
        let done = latencies.withLock { $0 }
        return (Double(done.count) / elapsed, done.count, created.withLock { $0 }, percentile(done, 0.5), percentile(done, 0.99))
    }

    /// Precomputes `count` execute-like change sets and writes them with the apply script from `producers`
    /// connections, pipelined like the engine's producers: the ceiling the engine's writes can reach.
    func rawBaseline(_ config: RedisConfiguration, count: Int) throws -> (rate: Double, count: Int, seconds: Double) {
        let rawPrefix = "\(prefix)raw"
        let setup = config.makeConnection()
        // Nothing of the baseline is left behind, whatever happens.
        defer { try? setup.unlinkKeys(matching: "\(rawPrefix):*") }
        // One partition per connection, as the engine's owners write: each keeps its entries in order.
        for p in 0..<producers { try setup.call(["SET", Keys(prefix: rawPrefix).partition(p).epoch, "1"]) }
        let plan = try Self.plan()
        let perConn = count / producers
        // The engine writes consecutive executes of a partition 64 to a script (ChangeSet(group:)); so does this.
        let group = 64
        let commands: [[[String]]] = (0..<producers).map { p in
            let store = PartitionStore(partition: p, keys: Keys(prefix: rawPrefix), streamMaxLen: 1_000_000)
            let sets = (0..<perConn).map { i in
                let entry = EntryID(ms: 1_700_000_000_000 + UInt64(p * perConn + i), seq: 0)
                let context = ChangeContext(commandId: entry, requestId: entry.description, actor: nil, clock: 0)
                let change = Transitions.start(
                    runId: RunID.make(entry: entry, index: 0, partition: p), plan: plan, version: 1,
                    contact: ["id": .string("r\(p)-\(i)"), "email": "x@y.z"], contactId: "r\(p)-\(i)", variables: [:], startTick: nil,
                    context: context, signer: AuditSigner())
                var set = ChangeSet(entry: entry)
                set.changes = [change]
                // The stored result of a command with a requestId, as the owner writes it: fingerprint, then the
                // reply's outcome with the run.
                let record = String(repeating: "f", count: 64) + "\n{\"ok\":true,\"result\":" + change.run.wire.canonical + "}"
                set.dedupe = (PartitionKeys.requestSuffix("raw-\(p)-\(i)"), record, 86_400)
                return set
            }
            return stride(from: 0, to: sets.count, by: group).map { g in
                store.applyCommands([ChangeSet(group: Array(sets[g..<min(g + group, sets.count)]))], epoch: "1")[0]
            }
        }
        let start = Date()
        concurrently(producers) { p in
            let c = config.makeConnection()
            var i = 0
            // As many scripts in flight as the producers' window holds commands.
            let scripts = max(1, window / group)
            while i < commands[p].count {
                let n = min(scripts, commands[p].count - i)
                _ = try? c.pipeline(Array(commands[p][i..<(i + n)]))
                i += n
            }
        }
        let seconds = Date().timeIntervalSince(start)
        return (Double(perConn * producers) / seconds, perConn * producers, seconds)
    }

    /// The owner's writes of a bulkExecute of `count` contacts, or of the tick that steps those runs, precomputed
    /// and issued straight to Redis from one connection (a partition's owner has one), `inFlight` batches in flight:
    /// per batch of 100 the enrollment checks (`HEXISTS` + `HGET` per contact) and the creation script, then per
    /// batch the runs' `HGETALL`s and the step script, a due read per window of 800. What Redis alone does for
    /// these rows, without the engine's computing, routing or replying: the ceiling of one partition.
    ///
    /// `tick` false: the creations only, timed. `tick` true: the creations untimed, then the tick timed. Each is run
    /// right after the engine's row it is the ceiling of, on Redis as that row left it (a baseline run after the tick
    /// workload met a million more runs in Redis than the engine's bulkExecute did, and came out below it).
    func rawBulkOrTick(_ config: RedisConfiguration, count: Int, tick: Bool, inFlight: Int = 4) throws -> Double {
        let rawPrefix = "\(prefix)raw"
        let c = config.makeConnection()
        // Nothing of the baseline is left behind, whatever happens.
        defer { try? c.unlinkKeys(matching: "\(rawPrefix):*") }
        let store = PartitionStore(partition: 0, keys: Keys(prefix: rawPrefix), streamMaxLen: 1_000_000)
        let keys = Keys(prefix: rawPrefix).partition(0)
        try c.call(["SET", keys.epoch, "1"])
        let plan = try Self.plan()
        let signer = AuditSigner()
        let bulkEntry = EntryID(ms: UInt64(Date().timeIntervalSince1970 * 1000), seq: 0)
        let bulkContext = ChangeContext(commandId: bulkEntry, requestId: bulkEntry.description, actor: nil, clock: 0)
        let tickEntry = EntryID(ms: bulkEntry.ms + 1, seq: 0)
        let tickContext = ChangeContext(commandId: tickEntry, requestId: tickEntry.description, actor: nil, clock: 1)
        let check = EnrollmentCheck(legacy: false)
        let size = 100
        var bulkBatches: [[[String]]] = []
        var tickBatches: [[[String]]] = []
        for (n, start) in stride(from: 0, to: count, by: size).enumerated() {
            var created = ChangeSet(entry: nil)
            var stepped = ChangeSet(entry: nil)
            var checks: [[String]] = []
            var ids: [String] = []
            for i in start..<min(start + size, count) {
                let contact: [String: JSONValue] = ["id": .string("rb\(i)"), "email": "x@y.z"]
                checks += check.commands(keys, planId: plan.id, contactId: "rb\(i)")
                let change = Transitions.start(
                    runId: RunID.make(entry: bulkEntry, index: i, partition: 0), plan: plan, version: 1,
                    contact: contact, contactId: "rb\(i)", variables: [:], startTick: nil, context: bulkContext,
                    signer: signer)
                created.changes.append(change)
                ids.append(change.run.id)
                if tick, let step = Stepper.tick(run: change.run, plan: plan, context: tickContext, signer: signer) {
                    stepped.changes.append(step)
                }
            }
            let tally = #"{"created":\#(min(start + size, count)),"errorDetails":[],"errors":0,"skipped":0,"skippedContacts":[]}"#
            created.batch = (PartitionKeys.progressSuffix(bulkEntry.description), n + 1, tally)
            stepped.batch = (PartitionKeys.progressSuffix(tickEntry.description), n + 1, #"{"start":0,"stepped":\#(start + size),"t":1}"#)
            stepped.clock = 0
            bulkBatches.append(checks + store.applyCommands([created], epoch: "1"))
            if tick {
                // The owner reads the due ids once per window of 8 batches, then the runs of each batch.
                let due = n % 8 == 0 ? [store.dueCommand(through: 1, limit: 800)] : []
                tickBatches.append(due + store.loadCommands(ids) + store.applyCommands([stepped], epoch: "1"))
            }
        }
        // A sliding window: batch k + inFlight is sent as soon as batch k has answered, so Redis always has work.
        func issue(_ batches: [[[String]]]) throws -> Double {
            let t0 = Date()
            for b in batches.prefix(inFlight) { try c.sendOnly(b) }
            for (k, b) in batches.enumerated() {
                let replies = try c.receive(b.count)
                if let e = replies.first(where: { if case .error = $0 { return true } else { return false } }) {
                    throw RedisError(.server, "raw baseline: \(e)")
                }
                if k + inFlight < batches.count { try c.sendOnly(batches[k + inFlight]) }
            }
            return Double(count) / Date().timeIntervalSince(t0)
        }
        let bulkRate = try issue(bulkBatches)
        return tick ? try issue(tickBatches) : bulkRate
    }

    func startWindow(_ redis: any RedisCommands) -> (Int64, Int64) {
        // The newest and the oldest active run (listRuns order ends with the oldest millisecond), by their ids' ms.
        let store = PartitionStore(partition: partitions - 1, keys: Keys(prefix: prefix), streamMaxLen: 0)
        let active = RunFilter(statuses: [.active])
        let newest = try? store.query(active, offset: 0, count: 1, redis)
        let oldest = try? store.query(active, offset: max(0, (newest?.total ?? 1) - 1), count: 1, redis)
        let a = oldest?.ids.first.flatMap { Run.startedAt(impliedBy: $0) } ?? 0
        let b = newest?.ids.first.flatMap { Run.startedAt(impliedBy: $0) } ?? 0
        return (a + (b - a) / 3, a + 2 * (b - a) / 3)
    }

    /// Every key matching `pattern`, by SCAN (not KEYS: the bench must not block Redis either): on the node of `key`'s
    /// slot, or (nil) wherever a keyless command goes.
    func scanKeys(_ redis: any RedisCommands, _ pattern: String, nodeOf key: String?) throws -> [String] {
        var keys: [String] = []
        var cursor = "0"
        repeat {
            let reply = try key.map { try redis.scan(cursor: cursor, matching: pattern, count: 10_000, nodeOf: $0) }
                ?? redis.call(["SCAN", cursor, "MATCH", pattern, "COUNT", "10000"])
            cursor = reply.array?.first?.string ?? "0"
            keys += (reply.array?.count ?? 0) > 1 ? (reply.array?[1].array ?? []).compactMap(\.string) : []
        } while cursor != "0"
        return keys
    }

    /// Bytes per run of the run-state keys other than run hashes (indexes, buckets and their counts, contact records,
    /// the due schedule, enrollment), each by `MEMORY USAGE … SAMPLES 0` (which counts its dictionary entry), plus
    /// `runHash` per run, plus each key's slot in the main dictionary's table (`MEMORY STATS`). Keys found by SCAN
    /// on each partition's node.
    func stateByKeys(_ redis: any RedisCommands, runs: Int, runHash: Int) throws -> Int {
        var bytes = 0, keys = 0
        for p in 0..<partitions {
            let k = Keys(prefix: prefix).partition(p)
            var found: [String] = []
            for pattern in ["ix[sp]:*", "idx:*", "cx:*", "dueb:*"] {
                found += try scanKeys(redis, "\(k.base):\(pattern)", nodeOf: k.epoch)
            }
            found += [k.due, k.dueDirectory, k.enroll, k.bucketMap, "\(k.base):nruns", "\(k.base):nlegacy"]
            for start in stride(from: 0, to: found.count, by: 1000) {
                let chunk = found[start..<min(found.count, start + 1000)]
                let sizes = try redis.pipeline(chunk.map { ["MEMORY", "USAGE", $0, "SAMPLES", "0"] })
                for size in sizes {
                    guard let n = size.int else { continue }
                    bytes += n
                    keys += 1
                }
            }
        }
        // MEMORY STATS: overhead.hashtable.main counts the main dictionaries' entries and table slots; MEMORY USAGE
        // counted the entries (24 B each on 64-bit), so the rest per key is the slot share.
        let stats = try redis.call(["MEMORY", "STATS"]).array ?? []
        func field(_ items: [RESPValue], _ name: String) -> RESPValue? {
            stride(from: 0, to: items.count - 1, by: 2).first { items[$0].string == name }.map { items[$0 + 1] }
        }
        let total = field(stats, "keys.count")?.int ?? 0
        let main = field(stats, "db.0")?.array.flatMap { field($0, "overhead.hashtable.main")?.int } ?? 0
        let slot = total > 0 ? max(0, main / total - 24) : 0
        return (bytes + runs * runHash + (keys + runs) * slot) / max(runs, 1)
    }

    /// Bytes per run of run hashes, indexes and enrollment, from Redis's own accounting; streams and audit apart.
    func memory(_ redis: any RedisCommands) throws -> String {
        let used = Int(
            (try redis.call(["INFO", "memory"]).string ?? "").split(separator: "\r\n")
                .first { $0.hasPrefix("used_memory:") }?.dropFirst("used_memory:".count) ?? "0") ?? 0
        func usage(_ key: String) -> Int { (try? redis.call(["MEMORY", "USAGE", key, "SAMPLES", "0"]).int) ?? 0 }
        var runs = 0, events = 0, actions = 0, transient = 0, audit = 0, requests = 0
        var sampleRun = 0, sampleCount = 0
        var requestSample: [String] = []
        for p in 0..<partitions {
            let k = Keys(prefix: prefix).partition(p)
            let n = try redis.pipeline(RunStatus.allCases.flatMap { k.runCountCommands($0) }).reduce(0) { $0 + ($1.int ?? 0) }
            runs += n
            events += usage(k.events)
            actions += usage(k.actions)
            transient += usage(k.inbox) + usage(k.results)
            // Audit lists and run hashes: a sample of 1000 runs per partition, 100 at each tenth of the active runs
            // (the newest alone have fewer audit entries than the rest).
            let store = PartitionStore(partition: p, keys: Keys(prefix: prefix), streamMaxLen: 0)
            let active = RunFilter(statuses: [.active])
            let count = try store.query(active, offset: 0, count: 1, redis).total
            var sample: [String] = []
            for i in 0..<10 {
                sample += try store.query(active, offset: count * i / 10, count: 100, skipTotal: true, redis).ids
            }
            let auditSample = sample.reduce(0) { $0 + usage(k.audit($1)) }
            if !sample.isEmpty { audit += auditSample * n / sample.count }
            sampleRun += sample.reduce(0) { $0 + usage(k.run($1)) }
            sampleCount += sample.count
            let stored = try scanKeys(redis, "\(prefix):{\(p)}:req:*", nodeOf: k.epoch)
            requests += stored.count
            requestSample += stored.prefix(max(0, 1000 - requestSample.count))
        }
        // The requestId claims (`<prefix>:rid:{…}`, one per command with a requestId, 24 h) and the producers'
        // reply streams are not run state either.
        let claimKeys = try scanKeys(redis, "\(prefix):rid:*", nodeOf: nil)
        let claims = claimKeys.count
        let claimSample = Array(claimKeys.prefix(1000))
        var replyStreams = usage("\(prefix):replies:bench")
        for tag in ["i", "e", "m"] {
            for p in 0..<producers { replyStreams += usage("\(prefix):replies:\(tag)\(p)") }
        }
        // Stored results and claims: their mean MEMORY USAGE over a sample of up to 1000 each.
        func mean(_ keys: [String]) -> Int { keys.isEmpty ? 0 : keys.reduce(0) { $0 + usage($1) } / keys.count }
        let reqBytes = requests * mean(requestSample) + claims * mean(claimSample)
        let state = used - events - actions - transient - audit - reqBytes - replyStreams
        let perRun = state / max(runs, 1)
        let hash = sampleRun / max(sampleCount, 1)
        let exact = try stateByKeys(redis, runs: runs, runHash: hash)
        return "\(exact) bytes per run (\(runs) runs) of state, indexes and enrollment by MEMORY USAGE of their keys (run hashes: a sample of \(sampleCount), \(hash) B each), with each key's slot in the main dictionary; \(perRun) B by `used_memory` less everything else (that figure also carries allocator slack and the other keys' dictionary slots); apart: audit \(audit / max(runs, 1)) B/run, events \(events / max(runs, 1)) B/run, actions \(actions / max(runs, 1)) B/run, dedupe records and requestId claims \(reqBytes / max(runs, 1)) B/run, reply streams \(replyStreams / max(runs, 1)) B/run"
    }
}

/// Runs `body(0)` … `body(n - 1)` on n threads of their own, all at once, and waits for them.
/// `DispatchQueue.concurrentPerform` runs only as many at a time as the machine has cores: on 2 cores its 4
/// producers ran two, then the other two, so the bench kept half the commands in flight it said it did.
func concurrently(_ n: Int, _ body: @escaping (Int) -> Void) {
    let work = Unchecked(body)
    let group = DispatchGroup()
    for i in 0..<n {
        group.enter()
        let thread = Thread {
            work.value(i)
            group.leave()
        }
        thread.start()
    }
    group.wait()
}

/// A producer thread of a workload failed (a reply missing, Redis gone): the bench fails rather than print a rate.
struct ProducerFailed: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A closure handed to the threads of ``concurrently(_:_:)``.
final class Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A workload's rate (its commands over its time) and command-to-reply percentiles.
func summary(_ run: (seconds: Double, latencies: [Double])) -> (rate: Double, count: Int, p50: Double, p99: Double) {
    let l = run.latencies
    return (Double(l.count) / max(run.seconds, 1e-9), l.count, percentile(l, 0.5), percentile(l, 0.99))
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func ms(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }

final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// A pipelining producer: XADDs a window of commands, then reads their replies from its own stream.
final class Client {
    let redis: any RedisCommands
    let prefix: String
    let stream: String
    var last = "0-0"

    init(redis: any RedisCommands, prefix: String, stream: String) {
        self.redis = redis
        self.prefix = prefix
        self.stream = stream
    }

    private var lastSent: [String] = []

    func sendMany(_ commands: [[String]]) throws -> [String: Date] {
        let now = Date()
        let replies = try redis.pipeline(commands.map { ["XADD", "\(prefix):commands", "*", "replyTo", stream] + $0 })
        var ids: [String: Date] = [:]
        lastSent = replies.map { $0.string ?? "" }
        for r in replies { if let id = r.string { ids[id] = now } }
        return ids
    }

    /// The entry ids of the last `sendMany`, in the order its commands were given.
    func redisOrder(_ ids: [String: Date]) throws -> [String] { lastSent }

    /// Sends `total` commands (`make(i)` the i-th one's fields), keeping `window` of them in flight: after each read
    /// of the reply stream, as many new commands as replies came. Returns the command-to-reply latencies.
    func keepInFlight(_ total: Int, window: Int, timeout: Double = 120, _ make: (Int) -> [String]) throws -> [Double] {
        var waiting: [String: Date] = [:]
        var sent = 0
        var out: [Double] = []
        out.reserveCapacity(total)
        func topUp() throws {
            let n = min(window - waiting.count, total - sent)
            guard n > 0 else { return }
            waiting.merge(try sendMany((sent..<(sent + n)).map(make))) { first, _ in first }
            sent += n
        }
        try topUp()
        let deadline = Date().addingTimeInterval(timeout)
        while !waiting.isEmpty, Date() < deadline {
            let reply = try redis.call(["XREAD", "COUNT", "1000", "BLOCK", "1000", "STREAMS", stream, last])
            guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { continue }
            let now = Date()
            for (id, fields) in first[1].streamEntries {
                last = id
                if let c = fields["commandId"], let at = waiting.removeValue(forKey: c) { out.append(now.timeIntervalSince(at)) }
            }
            try topUp()
        }
        if !waiting.isEmpty { throw RedisError(.connection, "\(waiting.count) replies missing") }
        return out
    }

    /// Waits for replies to every id; returns their latencies.
    func awaitReplies(_ ids: [String: Date], timeout: Double = 120) throws -> [Double] {
        try awaitReplies(ids, timeout: timeout, keepResults: false).latencies
    }

    /// Waits for replies to every id; returns their latencies and, if asked, each reply's result by command id.
    func awaitReplies(_ ids: [String: Date], timeout: Double = 120, keepResults: Bool) throws
        -> (latencies: [Double], results: [String: String])
    {
        var waiting = ids
        var out: [Double] = []
        var results: [String: String] = [:]
        let deadline = Date().addingTimeInterval(timeout)
        while !waiting.isEmpty, Date() < deadline {
            let reply = try redis.call(["XREAD", "COUNT", "1000", "BLOCK", "1000", "STREAMS", stream, last])
            guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { continue }
            let now = Date()
            for entry in first[1].array ?? [] {
                guard let pair = entry.array, pair.count == 2, let id = pair[0].string else { continue }
                last = id
                let flat = pair[1].array ?? []
                var i = 0
                var command: String?
                var result: String?
                while i + 1 < flat.count {
                    if flat[i].string == "commandId", let c = flat[i + 1].string, let sent = waiting.removeValue(forKey: c) {
                        out.append(now.timeIntervalSince(sent))
                        command = c
                    }
                    if keepResults, flat[i].string == "result" { result = flat[i + 1].string }
                    i += 2
                }
                if let command, let result { results[command] = result }
            }
        }
        if !waiting.isEmpty { throw RedisError(.connection, "\(waiting.count) replies missing") }
        return (out, results)
    }

    func call(_ fields: [String], timeout: Double = 60) throws -> [String: String] {
        let ids = try sendMany([fields])
        let id = ids.keys.first!
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let reply = try redis.call(["XREAD", "COUNT", "100", "BLOCK", "1000", "STREAMS", stream, last])
            guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { continue }
            for (eid, f) in first[1].streamEntries {
                last = eid
                if f["commandId"] == id { return f }
            }
        }
        throw RedisError(.connection, "no reply to \(fields.prefix(2)) within \(timeout) s")
    }
}
