import ArgumentParser
import DEECore
import DEEStore
import Redis

/// `dee migrate`: converts a deployment into the current key layout (docs/MEMORY.md), step by step, straight in
/// Redis, while engines keep running (they read both layouts of what a step converts).
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Convert the deployment to the current key layout: run hashes, contact records, bucketed indexes (resumable, engines may run).",
        discussion: """
            The steps a deployment has not done run in order (layout 2: short
            run-hash fields; 3: contact records; 4: bucketed status indexes). Each
            batch is one script over at most --batch-size keys or entries of one
            partition; each step's cursor per partition is kept in <prefix>:meta
            after every batch, so an interrupted migration resumes where it stopped.
            When a step is done everywhere, <prefix>:meta layout is set to its
            number. Running it again changes nothing. Upgrade every engine first.

            Example:
              dee migrate --redis-url redis://127.0.0.1:6379 --batch-size 500
            """)

    @Option(help: "Keys or entries per batch (one script each).")
    var batchSize = 500

    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if !(1...10_000).contains(batchSize) { throw ValidationError("--batch-size must be from 1 to 10000") }
    }

    func run() async throws {
        do throws(CLIError) {
            try await migrate()
        } catch {
            throw error.report(json: false)
        }
    }

    func migrate() async throws(CLIError) {
        let config: RedisConfiguration
        do {
            config = try connection.redisConfiguration()
        } catch {
            throw CLIError.usage("\(error)")
        }
        let redis = RedisClient(configuration: config, label: "migrate")
        defer { redis.close() }
        let keys = Keys(prefix: connection.prefix)
        let batchSize = batchSize
        do {
            let progress = try await redis.withConnection { redis in
                let partitions = try redis.call(["HGET", keys.meta, "partitions"]).int ?? 1
                let migration = LayoutMigration(keys: keys, partitions: max(1, partitions), batchSize: batchSize)
                return try migration.run(redis)
            }
            let steps = progress.converts.map { "\($0.count) \($0.what) (layout \($0.layout))" }
            Output.standardOutput(
                "layout \(Layout.current): "
                    + (steps.isEmpty ? "nothing to convert" : steps.joined(separator: ", ") + " converted")
                    + " in \(progress.batches) batches\n")
        } catch let error as RedisError where error.kind == .server {
            throw CLIError(.command, code: "redis", error.message)
        } catch {
            throw CLIError(.unreachable, "\(error)")
        }
    }
}
