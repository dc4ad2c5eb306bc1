import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// bulkExecute in a partition: its share of contacts, in batches that record their progress.
extension PartitionOwner {
    /// Creates runs in batches of `batchSize`; each batch is one script that records the counts so far, so an
    /// interrupted command resumes after its last batch and replies what an uninterrupted one would.
    func bulkExecute(
        plan: (Plan, Int), contacts: [JSONValue], indexes: [Int]?, variables: [String: JSONValue], batchSize: Int,
        context: ChangeContext, changes: inout ChangeSet, _ redis: any RedisCommands
    ) throws -> Outcome {
        let (p, version) = plan
        let progressKey = PartitionKeys.progressSuffix(context.commandId.description)
        var done = 0
        var tally = BulkTally()
        let saved = try savedProgress(context, redis)
        if let s = saved.state.flatMap(JSONValue.parse) {
            done = saved.batches
            tally = BulkTally(json: s)
        }
        // `mine`: indexes in the whole command. A share from the router holds exactly this partition's contacts;
        // an entry routed whole (by an older router) is filtered here.
        let mine: [Int]
        let share: [Int: JSONValue]
        if let indexes {
            mine = indexes
            share = Dictionary(zip(indexes, contacts), uniquingKeysWith: { a, _ in a })
        } else {
            mine = contacts.indices.filter { i in
                Partitioning.partition(ofBulkContact: contacts[i], count: config.partitions) == partition
            }
            share = [:]
        }
        func contact(_ i: Int) -> JSONValue { indexes == nil ? contacts[i] : share[i] ?? .null }
        // A batch larger than one script should carry is written as several scripts, each recording progress.
        let slice = min(batchSize, config.maxRunsPerScript)
        let batches = stride(from: 0, to: max(mine.count, 1), by: slice).map { Array(mine[$0..<min($0 + slice, mine.count)]) }
        // Contacts checked and left out before their enrollment check ran; the checks read from Redis.
        struct Prepared {
            var errors: [(Int, DEEError)] = []
            var valid: [(Int, String, [String: JSONValue])] = []
            var checks: [[String]] = []
        }
        let check = enrollmentCheck
        func prepare(_ batch: [Int]) -> Prepared {
            var out = Prepared()
            for i in batch {
                guard let o = contact(i).object else {
                    out.errors.append((i, DEEError.badRequest("contacts[\(i)]", "must be an object")))
                    continue
                }
                guard let cid = o["id"]?.string else {
                    out.errors.append((i, DEEError.badRequest("contacts[\(i)].id", "is required")))
                    continue
                }
                do throws(DEEError) {
                    try Identifier.validate(cid, field: "contacts[\(i)].id")
                } catch {
                    out.errors.append((i, error))
                    continue
                }
                out.valid.append((i, cid, o))
                out.checks += check.commands(keys, planId: p.id, contactId: cid)
            }
            return out
        }
        let todo = batches.indices.filter { $0 + 1 > done }
        guard let first = todo.first else {
            changes.batch = (progressKey, batches.count + 1, tally.json.canonical)
            return .ok(tally.json)
        }
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.machine.epoch }) else { throw Fenced() }
        // Pipelined like a tick: batch b+1's checks are read before batch b's script, so the owner computes
        // b+1 while Redis writes b. A contact enrolled by a batch still in flight is in `seen`.
        var seen = Set<String>()
        var pending: ChangeSet?
        func collect() throws {
            guard let set = pending else { return }
            pending = nil
            _ = try receiveApplyResult(redis)
            if let key = set.planCopy?.key { state.withLock { _ = $0.copiedPlans.insert(key) } }
        }
        do {
            var prepared = prepare(batches[first])
            var replies = try redis.pipeline(prepared.checks)
            for (k, b) in todo.enumerated() {
                if leaseRenewalDue {
                    // Renewing is a call of its own: first take the reply in flight.
                    try collect()
                    try renewDuringLongCommands(redis)
                }
                var set = ChangeSet(entry: nil)
                for (i, e) in prepared.errors { tally.error(i, e) }
                for (n, (i, cid, o)) in prepared.valid.enumerated() {
                    let found = check.read(replies, at: check.width * n, planId: p.id)
                    if found.suppressed {
                        tally.skip(i, cid, "suppressed")
                    } else if found.openRun != nil || seen.contains(cid) {
                        tally.skip(i, cid, "already_enrolled")
                    } else {
                        seen.insert(cid)
                        let change = Transitions.start(
                            runId: RunID.make(entry: context.commandId, index: i, partition: partition), plan: p,
                            version: version, contact: o, contactId: cid, variables: variables, startTick: nil,
                            context: context, signer: signer)
                        set.changes.append(change)
                        tally.created += 1
                    }
                }
                copyPlan(p, version, into: &set)
                set.batch = (progressKey, b + 1, tally.json.canonical)
                if b + 1 == batches.count {
                    // The last batch completes the command: it carries the watermark and the result, and is
                    // written by the caller after every batch before it.
                    try collect()
                    set.entry = changes.entry
                    changes = set
                    return .ok(tally.json)
                }
                set.auditRetention = config.auditRetentionSeconds
                let next = k + 1 < todo.count ? prepare(batches[todo[k + 1]]) : nil
                try redis.sendOnly((next?.checks ?? []) + store.applyCommands([set], epoch: epoch))
                try collect()
                pending = set
                if let next {
                    replies = try redis.receive(next.checks.count)
                    prepared = next
                }
            }
            try collect()
        } catch {
            // Replies may still be on the wire and would answer the next call: drop the connection (it reconnects).
            redis.close()
            if error is Fenced { state.withLock { $0.machine.lost() } }
            throw error
        }
        changes.batch = (progressKey, batches.count + 1, tally.json.canonical)
        return .ok(tally.json)
    }
}

/// Counts of a bulkExecute, kept in its progress record between batches.
struct BulkTally {
    var created = 0
    var skipped = 0
    var errors = 0
    var skippedContacts: [JSONValue] = []
    var errorDetails: [JSONValue] = []

    init() {}

    init(json: JSONValue) {
        let o = json.object ?? [:]
        created = o["created"]?.int ?? 0
        skipped = o["skipped"]?.int ?? 0
        errors = o["errors"]?.int ?? 0
        skippedContacts = o["skippedContacts"]?.array ?? []
        errorDetails = o["errorDetails"]?.array ?? []
    }

    /// A skipped contact; `index` is its place in the whole command, so a reply merged from several partitions
    /// lists skipped contacts in command order.
    mutating func skip(_ index: Int, _ contactId: String, _ reason: String) {
        skipped += 1
        if skippedContacts.count < 1000 {
            skippedContacts.append(["index": .int(index), "contactId": .string(contactId), "reason": .string(reason)])
        }
    }

    mutating func error(_ index: Int, _ e: DEEError) {
        errors += 1
        if errorDetails.count < 1000 { errorDetails.append(["index": .int(index), "error": e.json]) }
    }

    var json: JSONValue {
        [
            "created": .int(created), "skipped": .int(skipped), "errors": .int(errors),
            "skippedContacts": .array(skippedContacts), "errorDetails": .array(errorDetails),
        ]
    }
}
