import ArgumentParser
import DEECore

/// `dee run execute | get | pause | resume | cancel`: one run at a time.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a run, look at one, pause, resume or cancel it.",
        discussion: """
            Examples:
              dee run execute --plan welcome \\
                --contact '{"id":"contact_123","email":"jane@example.com"}'
              dee run get 1795465714287-000000-00000-0
              dee run cancel 1795465714287-000000-00000-0 \\
                --reason "Contact requested removal"
            """,
        subcommands: [Execute.self, Get.self, Pause.self, Resume.self, Cancel.self])
}

extension RunCommand {
    struct Execute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a run of a registered plan for a contact.",
            discussion: """
                Example:
                  dee run execute --plan welcome \\
                      --contact '{"id":"contact_123","email":"jane@example.com"}'
                  dee run execute --plan welcome --contact @jane.json \\
                      --variables '{"tier":"gold"}'
                """)

        @Option(help: "The plan id.")
        var plan: String

        @Option(help: "The contact: a JSON object with an id, or @FILE, or @- for stdin.")
        var contact: String

        @Option(help: "The plan version (default: the latest).")
        var planVersion: Int?

        @Option(help: "Run variables: a JSON object, or @FILE.")
        var variables: String?

        @Option(help: "Start pending, becoming active at this tick.")
        var startTick: Int?

        @Option(help: "Idempotency key: a repeat within 24 h changes nothing and prints the same run.")
        var requestId: String?

        @OptionGroup var options: ClientOptions

        func validate() throws {
            try JSONArgument.check(contact, name: "--contact")
            try JSONArgument.check(variables, name: "--variables")
            if let planVersion, planVersion < 1 { throw ValidationError("--plan-version must be at least 1") }
            if let startTick, startTick < 0 { throw ValidationError("--start-tick must be 0 or more") }
        }

        func run() async throws {
            var fields = ["planId": plan, "contact": try JSONArgument.object(contact, name: "--contact").canonical]
            if let variables { fields["variables"] = try JSONArgument.object(variables, name: "--variables").canonical }
            if let planVersion { fields["planVersion"] = String(planVersion) }
            if let startTick { fields["startTick"] = String(startTick) }
            let requestId = requestId
            try await options.run { session throws(CLIError) in
                let run = try await session.call("execute", fields, requestId: requestId)
                options.emit(run, RunView.block)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a run.",
            discussion: """
                Example:
                  dee run get 1795465714287-000000-00000-0
                """)

        @Argument(help: "The run id.")
        var runId: String

        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { session throws(CLIError) in
                options.emit(try await session.call("getRun", ["runId": runId]), RunView.block)
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause a pending, active or waiting run; it keeps signals and results meant for it.",
            discussion: """
                Example:
                  dee run pause 1795465714287-000000-00000-0 --reason "holiday freeze"
                """)

        @Argument(help: "The run id.")
        var runId: String

        @Option(help: "Why (recorded in the audit log).")
        var reason: String?

        @OptionGroup var options: ClientOptions

        func run() async throws {
            var fields = ["runId": runId]
            if let reason { fields["reason"] = reason }
            try await options.run { session throws(CLIError) in
                options.emit(try await session.call("pauseRun", fields), RunView.block)
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resume a paused run in the status it had.",
            discussion: """
                Example:
                  dee run resume 1795465714287-000000-00000-0
                """)

        @Argument(help: "The run id.")
        var runId: String

        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { session throws(CLIError) in
                options.emit(try await session.call("resumeRun", ["runId": runId]), RunView.block)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel an open run; the reason is recorded in its audit log.",
            discussion: """
                Example:
                  dee run cancel 1795465714287-000000-00000-0 \\
                      --reason "Contact requested removal"
                """)

        @Argument(help: "The run id.")
        var runId: String

        @Option(help: "Why (required; recorded in the audit log).")
        var reason: String

        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard !reason.trimmingSpaces.isEmpty else { throw ValidationError("--reason may not be empty") }
        }

        func run() async throws {
            try await options.run { session throws(CLIError) in
                options.emit(try await session.call("cancelRun", ["runId": runId, "reason": reason]), RunView.block)
            }
        }
    }
}
