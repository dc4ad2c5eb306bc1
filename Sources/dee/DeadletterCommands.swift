import ArgumentParser
import DEECore

/// `dee deadletter list | retry ID`.
struct DeadletterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deadletter",
        abstract: "List the entries the engine gave up on, and re-drive them.",
        discussion: """
            Examples:
              dee deadletter list
              dee deadletter retry 1795465714300-0
            """,
        subcommands: [List.self, Retry.self])
}

extension DeadletterCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead letters, newest first.",
            discussion: """
                Example:
                  $ dee deadletter list
                  ID               COMMAND ID       SOURCE       TYPE     ERROR
                  1795465714300-0  1795465714299-0  partition 0  execute  internal: …
                """)

        @Option(help: "At most this many (1-1000).")
        var limit = 50

        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1-1000") }
        }

        func run() async throws {
            try await options.run { session throws(CLIError) in
                let letters = try await session.call("listDeadletters", ["limit": String(limit)])
                options.emit(letters) { result in
                    let items = result.array ?? []
                    guard !items.isEmpty else { return "no dead letters\n" }
                    var table = TextTable(headers: ["ID", "COMMAND ID", "SOURCE", "TYPE", "ERROR"], maxWidth: 70)
                    for d in items {
                        table.append([d["id"].cell, d["commandId"].cell, d["source"].cell, d["entry"]["type"].cell,
                            d["error"].cell])
                    }
                    return table.render()
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-drive a dead letter: its command is sent again (with its requestId, so it applies once).",
            discussion: """
                Example:
                  $ dee deadletter retry 1795465714300-0
                  re-drove 1795465714300-0 as command 1795465720000-0
                """)

        @Argument(help: "The dead letter's id (from deadletter list).")
        var id: String

        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { session throws(CLIError) in
                let result = try await session.call("redriveDeadletter", ["id": id])
                options.emit(result) { r in "re-drove \(r["redriven"].cell) as command \(r["commandId"].cell)\n" }
            }
        }
    }
}
