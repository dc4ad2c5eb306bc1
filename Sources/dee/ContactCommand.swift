import ArgumentParser
import DEECore
import DEEStore
import Redis

/// `dee contact ID`: where a contact's state is kept (its partition and record key) and what the record says, read
/// straight from Redis, so an operator can find it with `redis-cli` (README, "Key layout").
struct ContactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contact",
        abstract: "Show where a contact's runs and enrollments are kept, and what its record holds.",
        discussion: """
            A contact's run ids and open runs (one per plan) are a field of a bucket
            hash, <prefix>:{p}:cx:<bucket> (key layout 3). This prints the partition,
            the key and field, the runs in creation order (open ones with their
            plan) and whether the contact is suppressed. --key prints the key only.

            Example:
              dee contact contact_123
              redis-cli HGET "$(dee contact contact_123 --key)" contact_123
            """)

    @Argument(help: "The contact id.")
    var contactId: String

    @Flag(help: "Print the record's key only.")
    var key = false

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        guard Identifier.isValid(contactId) else {
            throw ValidationError("CONTACT must be 1-128 characters of A-Z a-z 0-9 . _ - @ +")
        }
    }

    func run() async throws {
        do throws(CLIError) {
            try await show()
        } catch {
            throw error.report(json: json)
        }
    }

    func show() async throws(CLIError) {
        let config: RedisConfiguration
        do {
            config = try connection.redisConfiguration()
        } catch {
            throw CLIError.usage("\(error)")
        }
        let redis = RedisClient(configuration: config, label: "contact")
        defer { redis.close() }
        let keys = Keys(prefix: connection.prefix)
        let contactId = contactId
        let found: (partition: Int, key: String, record: String?, suppressed: Bool)
        do {
            found = try await redis.withConnection { redis in
                let partitions = try redis.call(["HGET", keys.meta, "partitions"]).int ?? 1
                let p = Partitioning.partition(ofContact: contactId, count: max(1, partitions))
                let pk = keys.partition(p)
                let replies = try redis.pipeline([
                    ["HGET", pk.contactRecord(contactId), contactId], ["HEXISTS", pk.suppressed, contactId],
                ])
                return (p, pk.contactRecord(contactId), replies[0].string, replies[1].int == 1)
            }
        } catch let error as RedisError where error.kind == .server {
            throw CLIError(.command, code: "redis", error.message)
        } catch {
            throw CLIError(.unreachable, "\(error)")
        }
        if key {
            Output.standardOutput(found.key + "\n")
            return
        }
        let runs: [(id: String, plan: String?)] = (found.record ?? "").split(separator: " ").map { token in
            let parts = token.split(separator: "/", maxSplits: 1).map(String.init)
            return (parts[0], parts.count == 2 ? parts[1] : nil)
        }
        if json {
            Output.document(.object([
                "contactId": .string(contactId), "partition": .int(found.partition), "key": .string(found.key),
                "field": .string(contactId), "suppressed": .bool(found.suppressed),
                "runs": .array(runs.map { .object(["id": .string($0.id), "openPlan": $0.plan.map(JSONValue.string) ?? .null]) }),
            ]))
            return
        }
        var text = "partition   \(found.partition)\nkey         \(found.key)\nfield       \(contactId)\n"
        text += "suppressed  \(found.suppressed ? "yes" : "no")\n"
        text += "runs        \(runs.count)\(runs.isEmpty ? "" : " (creation order; open ones with their plan)")\n"
        for r in runs { text += "  \(r.id)\(r.plan.map { "  open: \($0)" } ?? "")\n" }
        Output.standardOutput(text)
    }
}
