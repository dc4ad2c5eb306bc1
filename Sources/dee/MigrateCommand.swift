import ArgumentParser
import DEECore
import DEEStore
import Redis

/// `dee migrate`: rewrites a deployment's run hashes into the current key layout (docs/MEMORY.md), straight in
/// Redis, while engines keep running (they read both layouts).
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Rewrite the deployment's run hashes in the current key layout (resumable, engines may run).",
        discussion: """
            Each batch is one script over at most --batch-size run keys of one
            partition; the SCAN cursor of each partition is kept in <prefix>:meta
            after every batch, so an interrupted migration resumes where it stopped.
            When every partition is done, <prefix>:meta layout is set to the
            current layout. Running it again changes nothing.

            Example:
              dee migrate --redis-url redis://127.0.0.1:6379 --batch-size 500
            """)

    @Option(help: "Run keys per batch (one script each).")
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
