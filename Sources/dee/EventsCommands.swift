import ArgumentParser
import DEECore
import DEEStore
import Redis

/// `dee events tail`: follows `<prefix>:{p}:events` of every partition, read straight from Redis.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Follow the run events of every partition.",
        discussion: """
            Examples:
              dee events tail
              dee events tail --plan welcome --type run.completed,run.failed
              dee events tail --from 0 --no-follow --json | jq .runId
            """,
        subcommands: [Tail.self])
}

extension EventsCommand {
    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print run events as they come, like tail -f (JSON lines with --json).",
            discussion: """
                Starts with new events, or after --from (a stream entry id; 0 for all
                the streams hold). Stops after --count matching events; with
                --no-follow once the streams are read; else at Ctrl-C. Each line:
                time, type, run, plan, contact, status, step, tick.

                Example:
                  dee events tail --plan welcome --type run.completed
                  dee events tail --from 0 --no-follow --json
                """)

        @Option(help: "Only events of this plan id.")
        var plan: String?

        @Option(name: .customLong("run"), help: "Only events of this run id.")
        var runId: String?

        @Option(name: .customLong("type"), help: "Only events of these types: a,b or repeated (run.created, run.step, …).")
        var typeArguments: [String] = []

        @Option(help: "Start after this stream entry id (0: from the beginning; default: only new events).")
        var from: String?

        @Option(help: "Stop after this many matching events.")
        var count: Int?

        @Flag(help: "Stop once what the streams hold now is printed, instead of waiting for more.")
        var noFollow = false

        @OptionGroup var connection: ConnectionOptions

        @Flag(help: "One JSON object per event (JSON lines): the entry's fields, its id and partition.")
        var json = false

        var filter: EventFilter {
            EventFilter(
                planId: plan, runId: runId,
                types: Set(typeArguments.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces }))
        }

        func validate() throws {
            if let count, count < 1 { throw ValidationError("--count must be at least 1") }
            if let from, from != "$", StreamID(from) == nil {
                throw ValidationError("--from takes a stream entry id like 1795465714287-0, or 0 (got \(from))")
            }
        }

        func run() async throws {
            do throws(CLIError) {
                try await tail()
            } catch {
                throw error.report(json: json)
            }
        }

        func tail() async throws(CLIError) {
            let config: RedisConfiguration
            do {
                config = try connection.redisConfiguration()
            } catch {
                throw CLIError.usage("\(error)")
            }
            let redis = RedisClient(configuration: config, label: "events")
            defer { redis.close() }
            let keys = Keys(prefix: connection.prefix)
            let partitions = max(1, try await call(redis, ["HGET", keys.meta, "partitions"]).string.flatMap { Int($0) } ?? 1)
            let streams = (0..<partitions).map { keys.partition($0).events }
            var cursors: [String] = []
            for stream in streams {
                if let from, from != "$" {
                    cursors.append(from)
                } else {
                    // "$" in every read would miss what arrives between two reads: start at the stream's last id.
                    let last = try await call(redis, ["XREVRANGE", stream, "+", "-", "COUNT", "1"]).streamEntries.first
                    cursors.append(last?.id ?? "0-0")
                }
            }
            var printed = 0
            let filter = filter
            while true {
                let items: [RESPValue]
                if config.cluster {
                    // The partitions' streams live in different slots, so on different nodes: one XREAD per
                    // stream, in one pipeline (split per node), and a pause when none had anything new.
                    items = try await pipeline(
                        redis, zip(streams, cursors).map { ["XREAD", "COUNT", "500", "STREAMS", $0, $1] }
                    ).compactMap { $0.array?.first }
                    if items.isEmpty && !noFollow { try? await Task.sleep(for: .milliseconds(250)) }
                } else {
                    var command = ["XREAD", "COUNT", "500"]
                    if !noFollow { command += ["BLOCK", "1000"] }
                    items = try await call(redis, command + ["STREAMS"] + streams + cursors).array ?? []
                }
                var batch: [StreamEvent] = []
                for item in items {
                    guard let pair = item.array, pair.count == 2, let key = pair[0].string,
                        let p = streams.firstIndex(of: key)
                    else { continue }
                    for entry in RESPValue.streamEntryList(pair[1]) {
                        cursors[p] = entry.id
                        batch.append(StreamEvent(id: entry.id, partition: p, fields: entry.fields))
                    }
                }
                if batch.isEmpty {
                    if noFollow { return }
                    continue
                }
                for event in batch.sorted(by: StreamEvent.before) where filter.matches(event) {
                    Output.standardOutput((json ? event.json.canonical : event.line) + "\n")
                    printed += 1
                    if let count, printed >= count { return }
                }
            }
        }

        func pipeline(_ redis: RedisClient, _ commands: [[String]]) async throws(CLIError) -> [RESPValue] {
            let replies: [RESPValue]
            do {
                replies = try await redis.pipeline(commands)
            } catch {
                throw CLIError(.unreachable, "\(error)")
            }
            for case .error(let message) in replies { throw CLIError(.command, code: "redis", message) }
            return replies
        }

        func call(_ redis: RedisClient, _ arguments: [String]) async throws(CLIError) -> RESPValue {
            do {
                return try await redis.call(arguments)
            } catch let error as RedisError where error.kind == .server {
                throw CLIError(.command, code: "redis", error.message)
            } catch {
                throw CLIError(.unreachable, "\(error)")
            }
        }
    }
}

/// A stream entry id, `<ms>-<seq>` (or `<ms>`, or `0`), ordered as Redis orders them.
struct StreamID: Sendable, Comparable {
    var ms: UInt64
    var seq: UInt64

    init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let ms = UInt64(parts[0]) else { return nil }
        guard parts.count == 1 || UInt64(parts[1]) != nil else { return nil }
        self.ms = ms
        self.seq = parts.count == 2 ? UInt64(parts[1]) ?? 0 : 0
    }

    static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
}

/// One entry of a partition's events stream (SPEC 7).
struct StreamEvent: Sendable, Equatable {
    var id: String
    var partition: Int
    var fields: [(String, String)]

    static func == (a: StreamEvent, b: StreamEvent) -> Bool { a.json == b.json }

    subscript(_ name: String) -> String? { fields.first { $0.0 == name }?.1 }

    /// Older first; the same id in two partitions by partition.
    static func before(_ a: StreamEvent, _ b: StreamEvent) -> Bool {
        switch (StreamID(a.id), StreamID(b.id)) {
        case let (x?, y?) where x != y: return x < y
        default: return a.partition < b.partition
        }
    }

    /// The fields (`tick` as a number), with `id` and `partition`.
    var json: JSONValue {
        var o: [String: JSONValue] = ["id": .string(id), "partition": .int(partition)]
        for (k, v) in fields {
            o[k] = k == "tick" ? Int(v).map(JSONValue.int) ?? .string(v) : .string(v)
        }
        return .object(o)
    }

    /// `at  type  runId  plan  contact  status  step  tick N`, padded so that consecutive lines line up.
    var line: String {
        func pad(_ s: String?, _ width: Int) -> String {
            let text = s.flatMap { $0.isEmpty ? nil : $0 } ?? "-"
            return text + String(repeating: " ", count: max(0, width - text.count))
        }
        return [
            pad(self["at"], 24), pad(self["type"], 13), pad(self["runId"], 28), pad(self["planId"], 8),
            pad(self["contactId"], 11), pad(self["status"], 9), pad(self["step"], 6), "tick " + (self["tick"] ?? "-"),
        ].joined(separator: "  ")
    }
}

/// `--plan`, `--run` and `--type` of `events tail`.
struct EventFilter: Sendable, Equatable {
    var planId: String?
    var runId: String?
    var types: Set<String>

    func matches(_ event: StreamEvent) -> Bool {
        if let planId, event["planId"] != planId { return false }
        if let runId, event["runId"] != runId { return false }
        if !types.isEmpty, !types.contains(event["type"] ?? "") { return false }
        return true
    }
}
