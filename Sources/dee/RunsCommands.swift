import ArgumentParser
import DEECore

/// `dee runs list`: listRuns with its filters as flags.
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List runs.",
        discussion: """
            Examples:
              dee runs list --status active,waiting
              dee runs list --status failed --since 24h
              dee runs list --contact contact_123 --json
            """,
        subcommands: [List.self])
}

extension RunsCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List runs, newest first, with the exact number that match.",
            discussion: """
                Example:
                  dee runs list --plan welcome --status active,waiting --since 24h
                  dee runs list --status failed --before 2026-11-23T00:00:00Z --json
                  dee runs list --contact contact_123 --limit 20 --offset 20
                """)

        @OptionGroup var filters: RunFilterOptions

        @Option(help: "At most this many runs (1-1000).")
        var limit = 50

        @Option(help: "Skip this many runs first.")
        var offset = 0

        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1-1000") }
            guard offset >= 0 else { throw ValidationError("--offset must be 0 or more") }
        }

        func run() async throws {
            var fields = filters.fields(now: TimeArgument.now)
            fields["limit"] = String(limit)
            fields["offset"] = String(offset)
            let offset = offset
            try await options.run { session throws(CLIError) in
                let result = try await session.call("listRuns", fields)
                options.emit(result) { RunView.list($0, offset: offset) }
            }
        }
    }
}
