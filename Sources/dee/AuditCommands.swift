import ArgumentParser
import DEECore

/// `dee audit RUN`: the run's audit entries, newest first.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Show a run's audit trail, newest first.",
        discussion: """
            Example:
              $ dee audit 1795465714287-000000-00000-0
              AT                        TICK  ACTION   ACTOR  REASON  CHECKSUM
              2026-11-23T10:00:05.000Z  1     step     -      -       5c1f0e2a9b3d
              2026-11-23T10:00:00.000Z  0     execute  -      -       0b7e44c1d2aa
            """)

    @Argument(help: "The run id.")
    var runId: String

    @Option(help: "At most this many entries (1-1000).")
    var limit = 100

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1-1000") }
    }

    func run() async throws {
        try await options.run { session throws(CLIError) in
            let entries = try await session.call("getAudit", ["runId": runId, "limit": String(limit)])
            options.emit(entries) { result in
                var table = TextTable(headers: ["AT", "TICK", "ACTION", "ACTOR", "REASON", "CHECKSUM"])
                for e in result.array ?? [] {
                    let at = e["at"].int.map { Timestamp.iso(Int64($0)) } ?? e["at"].cell
                    table.append([
                        at, e["tick"].cell, e["action"].cell, e["actor"].cell, e["reason"].cell,
                        String(e["checksum"].cell.prefix(12)),
                    ])
                }
                return table.render()
            }
        }
    }
}

/// `dee verify RUN`: check the run's audit hash chain.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a run's audit hash chain (an edited, removed, inserted or truncated entry is found).",
        discussion: """
            Prints whether the chain is intact; the exit code is 0 either way (test
            `valid` in --json).

            Example:
              $ dee verify 1795465714287-000000-00000-0
              audit chain intact: 4 entries
            """)

    @Argument(help: "The run id.")
    var runId: String

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await options.run { session throws(CLIError) in
            let result = try await session.call("verifyAudit", ["runId": runId])
            options.emit(result) { r in
                if r["valid"].bool == true { return "audit chain intact: \(r["entries"].cell) entries\n" }
                let at = r["brokenAt"].isNull ? "" : " at entry \(r["brokenAt"].cell) (oldest first, from 0)"
                return "audit chain BROKEN\(at): \(r["entries"].cell) entries\n"
            }
        }
    }
}

/// `dee replay RUN`: re-execute the run from its recorded inputs and compare.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-execute a run from its recorded inputs against its plan version, beside what was recorded.",
        discussion: """
            Example:
              $ dee replay 1795465714287-000000-00000-0
              identical: yes (5 steps)
              #  ACTION   TICK  IDENTICAL  NOTE
              0  execute  0     yes        -
              ...
            """)

    @Argument(help: "The run id.")
    var runId: String

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await options.run { session throws(CLIError) in
            let result = try await session.call("replay", ["runId": runId])
            options.emit(result) { r in
                let steps = r["steps"].array ?? []
                var table = TextTable(headers: ["#", "ACTION", "TICK", "IDENTICAL", "NOTE"], maxWidth: 80)
                for s in steps {
                    table.append([
                        s["index"].cell, s["action"].cell, s["tick"].cell, s["identical"].bool == true ? "yes" : "NO",
                        s["note"].cell,
                    ])
                }
                let verdict = r["identical"].bool == true ? "yes" : "NO"
                return "identical: \(verdict) (\(steps.count) steps)\n" + table.render()
            }
        }
    }
}

/// `dee stats`.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "The clock, runs by status, plans, partitions and executor backlog.",
        discussion: """
            Example:
              $ dee stats
              tick        6
              plans       1
              partitions  1
              ...
            """)

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await options.run { session throws(CLIError) in
            options.emit(try await session.call("stats"), StatsView.render)
        }
    }
}

enum StatsView {
    static func render(_ stats: JSONValue) -> String {
        var b = KeyValueBlock()
        b.append("tick", stats["tick"].cell)
        b.append("plans", stats["plans"].cell)
        b.append("partitions", stats["partitions"].cell)
        if !stats["actionsBacklog"].isNull { b.append("actionsBacklog", stats["actionsBacklog"].cell) }
        let retention = stats["retention"]
        if !retention.isNull {
            let runs = retention["runs"].string ?? "keep for ever"
            b.append("runRetention", "\(runs) (removed \(retention["removedTotal"].int ?? 0))")
        }
        var runs = TextTable(headers: ["STATUS", "RUNS"])
        let counts = stats["runsByStatus"]
        for status in RunStatus.allCases { runs.append([status.rawValue, counts[status.rawValue].int.map(String.init) ?? "0"]) }
        var text = b.render() + "\n" + runs.render()
        if let executors = stats["executors"].array, !executors.isEmpty {
            var table = TextTable(headers: ["PARTITION", "EXECUTOR GROUP", "PENDING", "LAG"])
            for e in executors {
                table.append([e["partition"].cell, e["group"].cell, e["pending"].cell, e["lag"].cell])
            }
            text += "\n" + table.render()
        }
        return text
    }
}
