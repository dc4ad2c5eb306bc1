import ArgumentParser
import DEECore

/// `dee tick [--count N]`: advance the deployment's clock.
struct TickCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tick",
        abstract: "Advance the clock by one tick, or --count ticks; every due run steps.",
        discussion: """
            Example:
              $ dee tick --count 6
              tick 6: 6 run-steps
            """)

    @Option(help: "How many ticks (1-100000).")
    var count = 1

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (1...100_000).contains(count) else { throw ValidationError("--count must be 1-100000") }
    }

    func run() async throws {
        try await options.run { session throws(CLIError) in
            let result = try await session.call("tick", ["count": String(count)])
            options.emit(result) { r in
                let steps = r["stepped"].int ?? 0
                return "tick \(r["tick"].cell): \(steps) run-step\(steps == 1 ? "" : "s")\n"
            }
        }
    }
}

/// `dee signal NAME --contact ID | --run ID`.
struct SignalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal",
        abstract: "Send a signal to a contact's open runs (or one run): a waitForSignal wakes, an exitOn completes.",
        discussion: """
            Example:
              $ dee signal replied --contact contact_123 --data '{"channel":"email"}'
              delivered to 1 run
            """)

    @Argument(help: "The signal's name.")
    var name: String

    @Option(help: "The contact whose open runs get it.")
    var contact: String?

    @Option(name: .customLong("run"), help: "The one run that gets it.")
    var runId: String?

    @Option(help: "Only the contact's runs of this plan.")
    var plan: String?

    @Option(help: "Data merged into the runs' variables: a JSON object, or @FILE.")
    var data: String?

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (contact == nil) != (runId == nil) else { throw ValidationError("give one of --contact and --run") }
        try JSONArgument.check(data, name: "--data")
    }

    func run() async throws {
        var fields = ["name": name]
        if let contact { fields["contactId"] = contact }
        if let runId { fields["runId"] = runId }
        if let plan { fields["planId"] = plan }
        if let data { fields["data"] = try JSONArgument.object(data, name: "--data").canonical }
        try await options.run { session throws(CLIError) in
            let result = try await session.call("signal", fields)
            options.emit(result) { r in
                let n = r["delivered"].int ?? 0
                return "delivered to \(n) run\(n == 1 ? "" : "s")\n"
            }
        }
    }
}

/// `dee suppress CONTACT`: cancel the contact's open runs and skip its new enrollments.
struct SuppressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suppress",
        abstract: "Suppress a contact: its open runs are cancelled and new enrollments are skipped.",
        discussion: """
            Example:
              $ dee suppress contact_123 --reason unsubscribed
              suppressed contact_123: cancelled 1 open run
            """)

    @Argument(help: "The contact id.")
    var contactId: String

    @Option(help: "Why (recorded in the cancelled runs' audit logs).")
    var reason: String?

    @OptionGroup var options: ClientOptions

    func run() async throws {
        var fields = ["contactId": contactId]
        if let reason { fields["reason"] = reason }
        try await options.run { session throws(CLIError) in
            let result = try await session.call("suppress", fields)
            options.emit(result) { r in
                let n = r["cancelled"].int ?? 0
                return "suppressed \(contactId): cancelled \(n) open run\(n == 1 ? "" : "s")\n"
            }
        }
    }
}

/// `dee unsuppress CONTACT`.
struct UnsuppressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unsuppress",
        abstract: "Lift a contact's suppression: it can be enrolled again.",
        discussion: """
            Example:
              $ dee unsuppress contact_123
              unsuppressed contact_123
            """)

    @Argument(help: "The contact id.")
    var contactId: String

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await options.run { session throws(CLIError) in
            let result = try await session.call("unsuppress", ["contactId": contactId])
            options.emit(result) { _ in "unsuppressed \(contactId)\n" }
        }
    }
}
