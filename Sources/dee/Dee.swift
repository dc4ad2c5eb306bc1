import ArgumentParser

@main
struct Dee: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dee",
        abstract: "DEE, the deterministic execution engine: runs plans for contacts over Redis streams.",
        subcommands: [Serve.self])
}

