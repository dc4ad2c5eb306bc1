import ArgumentParser
import Foundation

@main
struct Dee: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dee",
        abstract: "DEE, the deterministic execution engine: runs plans for contacts over Redis streams.",
        discussion: """
            Every subcommand but serve talks to a running engine through Redis
            (--redis-url, default $REDIS_URL or redis://127.0.0.1:6379; --prefix,
            default dee). Output is readable by default (tables for lists); --json
            prints the command's SPEC 6 result, and errors as JSON on stderr.
            Exit codes: 0 ok, 1 a command error (its code on stderr), 2 usage,
            3 no reply within --timeout, or Redis unreachable.

            Example:
              dee serve &
              dee plan register welcome.json
              dee run execute --plan welcome \\
                --contact '{"id":"contact_123","email":"jane@example.com"}'
              dee runs list --status active,waiting
              dee tick --count 6
            """,
        subcommands: [
            Serve.self, PlanCommand.self, RunCommand.self, RunsCommand.self, BulkCommand.self, TickCommand.self,
            SignalCommand.self, SuppressCommand.self, UnsuppressCommand.self, AuditCommand.self, VerifyCommand.self,
            ReplayCommand.self, StatsCommand.self, EventsCommand.self, DeadletterCommand.self, MigrateCommand.self, ContactCommand.self,
        ])

    /// ArgumentParser's own `main()`, but usage errors exit 2 (not 64), as JSON on stderr with `--json`.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            ExitPolicy.exit(error, arguments: CommandLine.arguments)
        }
    }
}
