import ArgumentParser
import DEECore

/// Options of every subcommand that sends commands to the engine: where Redis is, how long to wait, and `--json`.
struct ClientOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(help: "How long to wait for the engine's reply, e.g. 30s, 500ms (then exit 3).")
    var timeout = "30s"

    @Flag(help: "Print the command's SPEC 6 result as one JSON document; errors as a JSON object on stderr.")
    var json = false

    func validate() throws {
        try connection.validate()
        guard let seconds = Durations.seconds(timeout), (0.01...86400).contains(seconds) else {
            throw ValidationError("--timeout takes a duration like 30s or 500ms, from 10ms to 24h (got \(timeout))")
        }
    }

    var timeoutDuration: Duration { .milliseconds(Durations.milliseconds(timeout)) }

    /// Opens a session, runs `body`, closes it. A failure is reported (as JSON with `--json`) and becomes the
    /// exit code: 1 a command error, 2 usage, 3 no reply in time or Redis unreachable.
    func run(_ body: (Session) async throws(CLIError) -> Void) async throws {
        do throws(CLIError) {
            let session = try await Session.open(self)
            do throws(CLIError) {
                try await body(session)
            } catch {
                await session.close()
                throw error
            }
            await session.close()
        } catch {
            throw error.report(json: json)
        }
    }

    /// The result as JSON with `--json`, else as `readable` makes it.
    func emit(_ result: JSONValue, _ readable: (JSONValue) -> String) {
        if json {
            Output.document(result)
        } else {
            Output.standardOutput(readable(result))
        }
    }
}
