import DEECore
import DEEStore
import Logging
import Redis
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one process that applies a partition's inbox, in order (SPEC 9). It holds the partition's lease; every
/// write carries its fencing epoch, which the apply script checks, so a process that lost the lease cannot
/// write. On taking a partition it first replies again what its predecessor applied but had not replied, and
/// resumes an unfinished batched command, then goes on.
final class PartitionOwner: Sendable {
    let partition: Int
    let config: EngineConfiguration
    let keys: PartitionKeys
    let store: PartitionStore
    let plans: PlanStore
    let reads: PartitionReads
    let decoder: RequestDecoder
    let logger: Logger
    let signer: AuditSigner
    private let state = Mutex(State())

    struct State {
        var epoch: String?
        var applied: EntryID?
        var lastRead = "0-0"
        var clock = 0
        var copiedPlans = Set<String>()
        /// Apply the next batch one entry at a time, counting attempts (after a failure, or on taking over).
        var singly = true
        var renewed = ContinuousClock.now
    }

    init(partition: Int, config: EngineConfiguration, plans: PlanStore, logger: Logger) {
        self.partition = partition
        self.config = config
        let k = Keys(prefix: config.prefix)
        self.keys = k.partition(partition)
        self.store = PartitionStore(partition: partition, keys: k, streamMaxLen: config.streamMaxLen)
        self.plans = plans
        self.reads = PartitionReads(config: config, plans: plans)
        self.decoder = RequestDecoder(prefix: config.prefix, limits: config.limits)
        var l = logger
        l[metadataKey: "partition"] = "\(partition)"
        self.logger = l
        self.signer = config.signer
    }

    var epoch: String? { state.withLock { $0.epoch } }

    // MARK: - Lease

    var lease: Lease {
        Lease(key: keys.lease, epochKey: keys.epoch, holder: config.instance, milliseconds: config.leaseMilliseconds)
    }

    /// Takes or renews the lease. Returns whether this process owns the partition now.
    func holdLease(_ redis: RedisConnection) throws -> Bool {
        if state.withLock({ $0.epoch }) != nil {
            if try lease.renew(redis) {
                state.withLock { $0.renewed = .now }
                return true
            }
            logger.warning("lost the partition lease")
            state.withLock { $0.epoch = nil }
        }
        // The holder is unique per process instance: two processes never both think they hold a lease, even
        // with the same consumer name. A restarted process waits for its predecessor's lease to expire.
        guard let epoch = try lease.acquire(redis) else { return false }
        let replies = try redis.pipeline([["GET", keys.applied], ["GET", keys.replied], ["GET", keys.clock]])
        state.withLock {
            $0.renewed = .now
            $0.epoch = String(epoch)
            $0.applied = replies[0].string.flatMap(EntryID.init)
            $0.lastRead = replies[1].string ?? "0-0"
            $0.clock = replies[2].int ?? 0
            // The predecessor may have died on one of the next entries: take the first batch one by one.
            $0.singly = true
        }
        logger.info("took the partition", metadata: ["epoch": "\(epoch)"])
        return true
    }

    /// Gives the lease up (graceful shutdown).
    func releaseLease(_ redis: RedisConnection) {
        lease.release(redis)
        state.withLock { $0.epoch = nil }
    }

    // MARK: - Inbox

    /// One round: hold the lease, read a batch of the inbox, apply and reply each entry. Returns entries handled.
    ///
    /// The replied watermark (where the next round reads from, and below which the inbox and the results stream
    /// are trimmed) moves only once the replies of the entries below it are written: a connection lost between an
    /// apply and its reply makes the next round read the entry again, find it applied, and reply its stored result.
    /// After any failure, and on taking the partition, the next batch is applied one entry at a time (see
    /// ``stepSingly(_:_:)``).
    func step(_ redis: RedisConnection) throws -> Int {
        guard try holdLease(redis) else {
            sleepMilliseconds(config.blockMilliseconds)
            return 0
        }
        let (from, singly) = state.withLock { ($0.lastRead, $0.singly) }
        let reply = try redis.call([
            "XREAD", "COUNT", String(config.readCount), "BLOCK", String(config.blockMilliseconds), "STREAMS",
            keys.inbox, from,
        ])
        guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { return 0 }
        let entries = [RESPValue].entries(first[1])
        if singly { return try stepSingly(entries, redis) }
        var replies: [[String]] = []
        var last: String?
        var skipUntil = -1
        for (index, entry) in entries.enumerated() {
            if index <= skipUntil {
                last = entry.id
                continue
            }
            guard let id = EntryID(entry.id) else {
                last = entry.id
                continue
            }
            let fields = Dictionary(entry.fields, uniquingKeysWith: { a, _ in a })
            do {
                // Consecutive plain executes go through one check pipeline and one apply pipeline.
                let group = executeGroup(entries, from: index)
                if group.count > 1 {
                    replies += try executeMany(group, redis)
                    skipUntil = index + group.count - 1
                    last = entries[skipUntil].id
                    continue
                }
                if let r = try handle(id, fields, redis) { replies.append(r) }
            } catch {
                // What was applied before the failure is replied and the watermark moved past it; the rest of the
                // batch is read again and applied one by one, so the entry at fault is found and only it counted.
                if !(error is Fenced) { state.withLock { $0.singly = true } }
                if let last, (try? redis.pipeline(replies + advanceCommands(to: last))) != nil {
                    state.withLock { $0.lastRead = last }
                }
                throw error
            }
            last = entry.id
        }
        // Replies, then the replied watermark, in one round trip.
        let commands = replies + (last.map(advanceCommands) ?? [])
        if !commands.isEmpty {
            for r in try redis.pipeline(commands) {
                if case .error(let e) = r { logger.warning("reply failed", metadata: ["error": "\(e)"]) }
            }
        }
        if let last { state.withLock { $0.lastRead = last } }
        return entries.count
    }

    /// Applies entries one at a time, each attempt counted in `<prefix>:{p}:attempts` first (so a process that dies
    /// on an entry, or an entry that fails, is counted across restarts). An entry attempted more than
    /// `maxDeliveries` times is poison: it goes to the dead letters with its error and its command, is answered
    /// `internal`, and the partition goes on. A transient failure takes its attempt back.
    func stepSingly(_ entries: [StreamEntry], _ redis: RedisConnection) throws -> Int {
        for entry in entries {
            let fields = Dictionary(entry.fields, uniquingKeysWith: { a, _ in a })
            guard let id = EntryID(entry.id) else { continue }
            let attempts = try redis.call(["HINCRBY", keys.attempts, entry.id, "1"]).int ?? 1
            var commands: [[String]] = []
            if AttemptDecision.decide(attempts: attempts, maxAttempts: config.maxDeliveries) == .poison {
                commands += poison(id, fields, reason: "failed \(attempts - 1) attempts")
            } else {
                do {
                    if let r = try handle(id, fields, redis) { commands.append(r) }
                } catch {
                    if Failure.classify(error) == .transient {
                        _ = try? redis.call(["HINCRBY", keys.attempts, entry.id, "-1"])
                    }
                    logger.warning(
                        "an inbox entry failed", metadata: ["stream.entry_id": "\(entry.id)", "error": "\(error)"])
                    throw error
                }
            }
            _ = try redis.pipeline(commands + [["HDEL", keys.attempts, entry.id]] + advanceCommands(to: entry.id))
            state.withLock { $0.lastRead = entry.id }
        }
        state.withLock { $0.singly = false }
        return entries.count
    }

    /// Gives up on an inbox entry: the `internal` reply, and a dead letter holding the command as a producer would
    /// send it again (type, args, replyTo, actor, requestId), for `redriveDeadletter`.
    private func poison(_ id: EntryID, _ f: [String: String], reason: String) -> [[String]] {
        logger.error("giving up on an inbox entry", metadata: ["stream.entry_id": "\(id)", "reason": "\(reason)"])
        let error = DEEError(
            .internal, "the engine could not apply this command (\(reason)); see \(Keys(prefix: config.prefix).deadletter)")
        var original: [(String, String)] = [("type", f["type"] ?? ""), ("args", f["args"] ?? "{}")]
        for (field, name) in [("rid", "requestId"), ("replyTo", "replyTo"), ("actor", "actor")] {
            if let v = f[field], !v.isEmpty { original.append((name, v)) }
        }
        let dead = Deadletters(keys: Keys(prefix: config.prefix), maxLen: config.rejectedMaxLen).add(
            commandId: id.description, source: "partition \(partition)", error: reason, fields: original)
        return [dead] + [address(id, f).command(.error(error), maxLen: config.replyMaxLen)].compactMap { $0 }
    }

    /// Everything up to `id` is applied and replied: the replied watermark, and the trims below it.
    private func advanceCommands(to id: String) -> [[String]] {
        [["SET", keys.replied, id], ["XTRIM", keys.inbox, "MINID", "~", id], ["XTRIM", keys.results, "MINID", "~", id]]
    }

    func address(_ id: EntryID, _ f: [String: String]) -> ReplyAddress {
        let rid = f["rid"] ?? ""
        let replyTo = f["replyTo"] ?? ""
        return ReplyAddress(
            replyTo: replyTo.isEmpty ? nil : replyTo, requestId: rid.isEmpty ? id.description : rid,
            commandId: id.description, type: f["type"] ?? "", actor: f["actor"].flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Applies one inbox entry (or replies again what was applied) and returns its reply command.
    func handle(_ id: EntryID, _ f: [String: String], _ redis: RedisConnection) throws -> [String]? {
        let address = address(id, f)
        let rid = f["rid"] ?? ""
        let fingerprint = f["fp"] ?? ""
        let envelope: Envelope
        do {
            envelope = try decoder.decode([("type", f["type"] ?? ""), ("args", f["args"] ?? "{}")])
        } catch {
            return address.command(.error(error), maxLen: config.replyMaxLen)
        }
        let request = envelope.request

        let parts = f["parts"].flatMap { Int($0) } ?? 1
        if !request.isReadOnly {
            let applied = state.withLock { $0.applied }
            let replayed = applied.map { id <= $0 } ?? false
            // A command without requestId can have a stored result only once applied (its key is its entry id).
            let stored = try storedResult(id, requestId: rid, replayed: replayed, redis)
            if replayed {
                // Applied before a crash or a lost lease: reply what was stored.
                if parts > 1 { return try gather(id, parts: parts, targets: f["targets"], address: address, redis) }
                guard let stored else { return nil }
                return address.command(stored.outcome, maxLen: config.replyMaxLen)
            }
            if let stored {
                // The same requestId again, in a later entry.
                let outcome = stored.fingerprint == fingerprint ? stored.outcome : .error(Router.requestIdReused(rid))
                var set = ChangeSet(entry: id)
                if parts > 1 { set.share = (PartitionKeys.shareSuffix(id.description), outcome.json.canonical, 3600) }
                try commit(set, redis)
                if parts > 1 { return try gather(id, parts: parts, targets: f["targets"], address: address, redis) }
                return address.command(outcome, maxLen: config.replyMaxLen)
            }
        }

        let clock = state.withLock { $0.clock }
        let context = ChangeContext(
            commandId: id, requestId: rid.isEmpty ? id.description : rid, actor: f["actor"].flatMap { $0.isEmpty ? nil : $0 },
            clock: clock)
        var changes = ChangeSet(entry: id)
        let outcome: Outcome
        do {
            outcome = try execute(request, fields: f, context: context, changes: &changes, redis)
        } catch let e as DEEError {
            outcome = .error(e)
            changes = ChangeSet(entry: id)
        }
        if !request.isReadOnly {
            if outcome.storable {
                let record = outcome.record(fingerprint: fingerprint)
                if rid.isEmpty {
                    changes.results = [(id, record)]
                } else {
                    changes.dedupe = (PartitionKeys.requestSuffix(rid), record, config.dedupeWindowSeconds)
                }
            }
            if parts > 1 { changes.share = (PartitionKeys.shareSuffix(id.description), outcome.json.canonical, 3600) }
            try commit(changes, redis)
            if parts > 1 { return try gather(id, parts: parts, targets: f["targets"], address: address, redis) }
        }
        return address.command(outcome, maxLen: config.replyMaxLen)
    }

    /// The stored result of an entry: by its requestId (kept for the dedupe window), or, for a command without
    /// one that was applied before (a crash between applying and replying), from the results stream.
    private func storedResult(_ id: EntryID, requestId rid: String, replayed: Bool, _ redis: RedisConnection) throws
        -> (fingerprint: String, outcome: Outcome)?
    {
        if !rid.isEmpty {
            return try redis.call(["GET", keys.request(rid)]).string.flatMap(Outcome.parseRecord)
        }
        guard replayed else { return nil }
        let entries = try redis.call(["XRANGE", keys.results, id.description, id.description]).streamEntries
        return entries.first?.1["r"].flatMap(Outcome.parseRecord)
    }

    /// A command split over every partition is answered once all shares are in: each partition, after writing
    /// its share, counts itself in `<prefix>:gather:<entryId>`; the one that brings the count to the number of
    /// parts merges the shares and replies. A partition that applies the entry again after a crash counts past
    /// it and replies again (replies are at-least-once).
    private func gather(
        _ id: EntryID, parts: Int, targets: String?, address: ReplyAddress, _ redis: RedisConnection
    ) throws -> [String]? {
        let prefixKeys = Keys(prefix: config.prefix)
        let counter = prefixKeys.gather(id.description)
        let counted = try redis.pipeline([["INCR", counter], ["EXPIRE", counter, "3600"]])
        guard (counted[0].int ?? 0) >= parts else { return nil }
        // The partitions the router sent the command to (a bulkExecute skips partitions without contacts).
        let sharing = targets.map { $0.split(separator: ",").compactMap { Int($0) } } ?? Array(0..<parts)
        let replies = try redis.pipeline(sharing.map { ["GET", prefixKeys.partition($0).share(id.description)] })
        var outcomes: [Outcome] = []
        for r in replies {
            guard let text = r.string, let json = JSONValue.parse(text), let o = Outcome(json: json) else { return nil }
            outcomes.append(o)
        }
        return address.command(Self.merge(outcomes), maxLen: config.replyMaxLen)
    }

    /// Merges partition shares: counts add up, lists concatenate (capped at 1000), the tick is the lowest.
    static func merge(_ outcomes: [Outcome]) -> Outcome {
        var merged: [String: JSONValue] = [:]
        for outcome in outcomes {
            switch outcome.result {
            case .failure: return outcome
            case .success(let v):
                for (k, value) in v.object ?? [:] {
                    switch (merged[k], value) {
                    case (nil, _): merged[k] = value
                    case (.int(let a)?, .int(let b)) where k == "tick": merged[k] = .int(min(a, b))
                    case (.int(let a)?, .int(let b)): merged[k] = .int(a + b)
                    case (.array(let a)?, .array(let b)): merged[k] = .array(a + b)
                    default: break
                    }
                }
            }
        }
        // Lists come back by index in the whole command, capped at 1000 (each partition kept its first 1000).
        for key in ["errorDetails", "skippedContacts"] {
            guard let list = merged[key]?.array else { continue }
            let sorted = list.enumerated().sorted { a, b in
                let (x, y) = (a.element.object?["index"]?.int ?? Int.max, b.element.object?["index"]?.int ?? Int.max)
                return x != y ? x < y : a.offset < b.offset
            }
            merged[key] = .array(sorted.prefix(1000).map(\.element))
        }
        return .ok(.object(merged))
    }

    /// Reads the reply of an apply script sent with `sendOnly`; a fence refusal throws.
    func receiveApplyResult(_ redis: RedisConnection) throws -> ApplyResult {
        let result = try PartitionStore.result(redis.receive(1)[0])
        if result == .fenced { throw Fenced() }
        return result
    }

    /// A third of the lease has passed since it was last renewed.
    var leaseRenewalDue: Bool {
        state.withLock { ContinuousClock.now - $0.renewed > .milliseconds(config.leaseMilliseconds / 3) }
    }

    /// A batched command (a large tick or bulk command) can outlast the lease: renew it between batches.
    func renewDuringLongCommands(_ redis: RedisConnection) throws {
        guard leaseRenewalDue else { return }
        guard try lease.renew(redis) else {
            logger.warning("lost the partition lease during a long command")
            state.withLock { $0.epoch = nil }
            throw Fenced()
        }
        state.withLock { $0.renewed = .now }
    }

    /// Writes a change set; on success remembers the watermark and clock.
    func commit(_ set: ChangeSet, _ redis: RedisConnection) throws {
        _ = try commit(set, then: nil, redis)
    }

    /// Writes a change set and, in the same round trip, sends `then` (a read for the next step); returns its reply.
    func commit(_ set: ChangeSet, then: [String]?, _ redis: RedisConnection) throws -> RESPValue {
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.epoch }) else { throw Fenced() }
        var set = set
        set.auditRetention = config.auditRetentionSeconds
        let (result, next) = try store.apply(set, epoch: epoch, then: then, redis)
        switch result {
        case .ok, .alreadyApplied:
            state.withLock { s in
                if let e = set.entry { s.applied = e }
                if let c = set.clock { s.clock = c }
                if let p = set.planCopy { s.copiedPlans.insert(p.key) }
            }
        case .fenced:
            logger.warning("fenced: another process owns the partition now")
            state.withLock { $0.epoch = nil }
            throw Fenced()
        }
        return next
    }

    // MARK: - Commands

    private func execute(
        _ request: Request, fields f: [String: String], context: ChangeContext, changes: inout ChangeSet,
        _ redis: RedisConnection
    ) throws -> Outcome {
        switch request {
        case .getRun(let runId):
            return try reads.getRun(runId, redis)
        case .listRuns(let filter, let limit, let offset):
            return try reads.listRuns(filter, limit: limit, offset: offset, partitions: [partition], redis)
        case .getAudit(let runId, let limit):
            return try reads.getAudit(runId, limit: limit, redis)
        case .verifyAudit(let runId):
            return try reads.verifyAudit(runId, redis)
        case .stats:
            return try reads.stats(redis, partitions: Array(0..<config.partitions))
        case .execute(_, let contact, let contactId, let variables, let startTick):
            let plan = try plan(f, request, redis)
            return try executeOne(
                plan: plan, contact: contact, contactId: contactId, variables: variables, startTick: startTick,
                context: context, changes: &changes, redis)
        case .bulkExecute(_, let contacts, let variables, let batchSize):
            let plan = try plan(f, request, redis)
            // The router sends each partition only its share, with the contacts' indexes in the whole command.
            let indexes = try f["indexes"].map { text throws(DEEError) -> [Int] in
                guard let list = JSONValue.parse(text)?.array?.compactMap(\.int), list.count == contacts.count else {
                    throw DEEError(.internal, "the router's contact indexes do not match the share")
                }
                return list
            }
            return try bulkExecute(
                plan: plan, contacts: contacts, indexes: indexes, variables: variables, batchSize: batchSize, context: context,
                changes: &changes, redis)
        case .pauseRun(let runId, let reason):
            let run = try load(runId, redis)
            let change = try Transitions.pause(run: run, reason: reason, context: context, signer: signer)
            changes.changes = [change]
            return .ok(change.run.wire)
        case .resumeRun(let runId):
            let run = try load(runId, redis)
            var change = try Transitions.resume(run: run, context: context, signer: signer)
            if !run.deferred.isEmpty, let plan = try? planVersion(run.planId, run.planVersion, redis) {
                Stepper.applyDeferred(&change, plan: plan, context: context, signer: signer)
            }
            changes.changes = [change]
            return .ok(change.run.wire)
        case .cancelRun(let runId, let reason):
            let run = try load(runId, redis)
            let change = try Transitions.cancel(run: run, reason: reason, action: "cancel", context: context, signer: signer)
            changes.changes = [change]
            return .ok(change.run.wire)
        case .bulkCancel(let filter, let reason):
            return try bulkCancel(filter, reason: reason, context: context, changes: &changes, redis)
        case .suppress(let contactId, let reason):
            var filter = RunFilter(statuses: RunStatus.open, contactId: contactId)
            filter.contactId = contactId
            let ids = try store.query(filter, offset: 0, count: 10_000, redis).ids
            for run in try store.loadRuns(ids, redis).compactMap({ $0 }) {
                changes.changes.append(
                    try Transitions.cancel(run: run, reason: reason, action: "suppress", context: context, signer: signer))
            }
            changes.suppress = (
                contactId,
                JSONValue.object(["reason": reason.json, "at": .string(Timestamp.iso(context.at))]).canonical
            )
            return .ok(["cancelled": .int(changes.changes.count)])
        case .unsuppress(let contactId):
            changes.unsuppress = contactId
            return .ok([:])
        case .tick(let count):
            return try tick(count: count, context: context, changes: &changes, redis)
        case .signal(let target, let name, let data, let planId):
            return try signal(target, name: name, data: data, planId: planId, context: context, changes: &changes, redis)
        case .actionResult(let runId, let key, let ok, let error, let data):
            let run = try load(runId, redis)
            guard let plan = try? planVersion(run.planId, run.planVersion, redis) else {
                throw DEEError(.internal, "plan \(run.planId) version \(run.planVersion) cannot be read")
            }
            if let change = Stepper.actionResult(
                run: run, plan: plan, key: key, ok: ok, error: error, data: data, context: context, signer: signer)
            {
                changes.changes = [change]
                return .ok(change.run.wire)
            }
            return .ok(run.wire)
        case .replay(let runId):
            let run = try load(runId, redis)
            let plan = try planVersion(run.planId, run.planVersion, redis)
            let entries = try reads.auditEntries(runId, redis)
            let result = Replay.run(entries: entries, plan: plan, recorded: run, signer: signer)
            return .ok(["identical": .bool(result.identical), "steps": .array(result.steps)])
        case .registerPlan, .getPlan, .listPlans, .listDeadletters, .redriveDeadletter:
            return .error(DEEError(.internal, "plan and dead-letter commands are answered by the router"))
        }
    }

    private func load(_ runId: String, _ redis: RedisConnection) throws -> Run {
        guard let run = try store.loadRun(runId, redis) else { throw reads.notFound(runId) }
        return run
    }

    /// The plan version the router resolved for this entry.
    func plan(_ f: [String: String], _ request: Request, _ redis: RedisConnection) throws -> (Plan, Int) {
        let planId: String
        switch request {
        case .execute(let ref, _, _, _, _), .bulkExecute(let ref, _, _, _): planId = ref.planId
        default: throw DEEError(.internal, "no plan in this command")
        }
        if let fail = f["fail"].flatMap(JSONValue.parse).flatMap(DEEError.init(json:)) { throw fail }
        guard let version = f["planVersion"].flatMap({ Int($0) }) else {
            throw DEEError(.internal, "the router did not resolve the plan version")
        }
        return (try planVersion(planId, version, redis), version)
    }

    private func planVersion(_ planId: String, _ version: Int, _ redis: RedisConnection) throws -> Plan {
        // Every plan version a run uses is copied into its partition; the registry is the fallback.
        guard let plan = try plans.load(planId, version: version, redis) else {
            throw DEEError(.notFound, "plan \(planId) version \(version) cannot be read", field: "planId")
        }
        return plan
    }

    private func executeOne(
        plan: (Plan, Int), contact: [String: JSONValue], contactId: String, variables: [String: JSONValue],
        startTick: Int?, context: ChangeContext, changes: inout ChangeSet, _ redis: RedisConnection
    ) throws -> Outcome {
        let (p, version) = plan
        let checks = try redis.pipeline([
            ["HEXISTS", keys.suppressed, contactId], ["HGET", keys.enroll, "\(p.id):\(contactId)"],
        ])
        if checks[0].int == 1 {
            return .error(DEEError(.suppressed, "contact \(contactId) is suppressed", field: "contact.id"))
        }
        if let open = checks[1].string {
            return .error(
                DEEError(.alreadyEnrolled, "contact \(contactId) already has an open run \(open) of plan \(p.id)", field: "contact.id"))
        }
        let runId = RunID.make(entry: context.commandId, index: 0, partition: partition)
        let change = Transitions.start(
            runId: runId, plan: p, version: version, contact: contact, contactId: contactId, variables: variables,
            startTick: startTick, context: context, signer: signer)
        changes.changes = [change]
        copyPlan(p, version, into: &changes)
        return .ok(change.run.wire)
    }

    /// How far a batched command got before an interruption: the batches it wrote and its saved counts
    /// (`n` and `state` of `<base>:progress:<entryId>`, written by the apply script); none when it is new.
    func savedProgress(_ context: ChangeContext, _ redis: RedisConnection) throws -> (batches: Int, state: String?) {
        let saved = try redis.call(["HGETALL", keys.progress(context.commandId.description)]).pairs
        return (saved["n"].flatMap { Int($0) } ?? 0, saved["state"])
    }

    func copyPlan(_ plan: Plan, _ version: Int, into changes: inout ChangeSet) {
        let key = PartitionKeys.planCopySuffix(plan.id, version)
        if !state.withLock({ $0.copiedPlans.contains(key) }) { changes.planCopy = (key, plan.canonicalJSON) }
    }

    /// Creates runs in batches of `batchSize`; each batch is one script that records the counts so far, so an
    /// interrupted command resumes after its last batch and replies what an uninterrupted one would.
    private func bulkExecute(
        plan: (Plan, Int), contacts: [JSONValue], indexes: [Int]?, variables: [String: JSONValue], batchSize: Int,
        context: ChangeContext, changes: inout ChangeSet, _ redis: RedisConnection
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
                out.checks.append(["HEXISTS", keys.suppressed, cid])
                out.checks.append(["HGET", keys.enroll, "\(p.id):\(cid)"])
            }
            return out
        }
        let todo = batches.indices.filter { $0 + 1 > done }
        guard let first = todo.first else {
            changes.batch = (progressKey, batches.count + 1, tally.json.canonical)
            return .ok(tally.json)
        }
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.epoch }) else { throw Fenced() }
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
                    if replies[2 * n].int == 1 {
                        tally.skip(i, cid, "suppressed")
                    } else if replies[2 * n + 1].string != nil || seen.contains(cid) {
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
            if error is Fenced { state.withLock { $0.epoch = nil } }
            throw error
        }
        changes.batch = (progressKey, batches.count + 1, tally.json.canonical)
        return .ok(tally.json)
    }

    /// Cancels every matching open run that existed when the command arrived (ids below the command's), in
    /// batches; each batch records its count.
    private func bulkCancel(
        _ filter: RunFilter, reason: String, context: ChangeContext, changes: inout ChangeSet, _ redis: RedisConnection
    ) throws -> Outcome {
        let progressKey = PartitionKeys.progressSuffix(context.commandId.description)
        let saved = try savedProgress(context, redis)
        var n = saved.batches
        var cancelled = saved.state.flatMap { Int($0) } ?? 0
        var open = filter
        open.statuses = (filter.statuses ?? RunStatus.open).filter(\.isOpen)
        let ceiling = RunID.lowerBound(for: context.commandId)
        while !(open.statuses ?? []).isEmpty {
            let ids = try store.query(open, offset: 0, count: config.cancelBatchSize, ceiling: ceiling, skipTotal: true, redis).ids
            if ids.isEmpty { break }
            var set = ChangeSet(entry: nil)
            for run in try store.loadRuns(ids, redis).compactMap({ $0 }) where run.status.isOpen {
                set.changes.append(
                    try Transitions.cancel(run: run, reason: reason, action: "bulkCancel", context: context, signer: signer))
            }
            cancelled += set.changes.count
            n += 1
            set.batch = (progressKey, n, String(cancelled))
            try commit(set, redis)
        }
        changes.batch = (progressKey, n + 1, String(cancelled))
        return .ok(["cancelled": .int(cancelled)])
    }
}

extension PartitionOwner {
    /// Processes ticks clock+1 … clock+count. Each batch of due runs (in due-tick, then run-id order) is one
    /// script that also records the tick and the count so far, so an interrupted tick resumes where it stopped,
    /// and a run stepped in tick t is due after t, so it never steps twice in one tick. Ticks with nothing due
    /// are skipped in one jump to the next due tick.
    func tick(count: Int, context: ChangeContext, changes: inout ChangeSet, _ redis: RedisConnection) throws -> Outcome {
        let progressKey = PartitionKeys.progressSuffix(context.commandId.description)
        let saved = try savedProgress(context, redis)
        let state = saved.state.flatMap(JSONValue.parse)?.object ?? [:]
        var n = saved.batches
        let start = state["start"]?.int ?? context.clock
        // Saturating (DEECore's Tick): a clock near the top of Int, or stored progress, must never trap.
        let end = Tick.after(start, count)
        var t = state["t"]?.int ?? Tick.after(start, 1)
        var stepped = state["stepped"]?.int ?? 0
        func progress(_ t: Int, _ stepped: Int) -> String {
            JSONValue.object(["start": .int(start), "t": .int(t), "stepped": .int(stepped)]).canonical
        }
        let window = config.tickBatchSize * max(1, config.tickWindowBatches)
        func dueIds(_ t: Int) -> [String] {
            ["ZRANGE", keys.due, "-inf", String(t), "BYSCORE", "LIMIT", "0", String(window)]
        }
        var prefetched: [String]?
        while t <= end {
            let ids = try prefetched ?? (redis.call(dueIds(t)).array ?? []).compactMap(\.string)
            prefetched = nil
            if ids.isEmpty {
                // Tick t is finished; jump to the next tick that has a due run.
                let next = (try redis.call(["ZRANGE", keys.due, "-inf", "+inf", "BYSCORE", "LIMIT", "0", "1", "WITHSCORES"]).array ?? [])
                let nextDue = next.count == 2 ? next[1].int : nil
                let past = Tick.after(end, 1)
                let newT = min(max(Tick.after(t, 1), nextDue ?? past), past)
                if newT > end || newT <= t { break }
                var set = ChangeSet(entry: nil)
                n += 1
                set.batch = (progressKey, n, progress(newT, stepped))
                set.clock = newT - 1
                try commit(set, redis)
                t = newT
                continue
            }
            let tickContext = ChangeContext(
                commandId: context.commandId, requestId: context.requestId, actor: context.actor, clock: t)
            prefetched = try tickWindow(
                ids, context: tickContext, batches: &n, stepped: &stepped, progress: { progress(t, $0) },
                progressKey: progressKey, next: dueIds(t), redis)
        }
        changes.clock = end
        changes.batch = (progressKey, n + 1, progress(Tick.after(end, 1), stepped))
        return .ok(["tick": .int(end), "stepped": .int(stepped)])
    }

    /// Steps the runs of one window of due ids, batch by batch, each batch one apply script. Pipelined: the next
    /// batch's runs are read before this batch's script, so the owner computes batch k+1 while Redis runs batch
    /// k. Runs of one window are disjoint and this owner is the partition's only writer, so reading ahead is
    /// safe; every script still runs in batch order. Returns the due ids of the next window, read after the last
    /// script of this one.
    private func tickWindow(
        _ ids: [String], context: ChangeContext, batches n: inout Int, stepped: inout Int,
        progress: (Int) -> String, progressKey: String, next: [String], _ redis: RedisConnection
    ) throws -> [String] {
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.epoch }) else { throw Fenced() }
        let size = config.tickBatchSize
        let chunks = stride(from: 0, to: ids.count, by: size).map { Array(ids[$0..<min($0 + size, ids.count)]) }
        // A script sent whose reply is not read yet, and the clock it moves to.
        var pending: Int?
        func collect() throws {
            guard let clock = pending else { return }
            pending = nil
            _ = try receiveApplyResult(redis)
            state.withLock { $0.clock = clock }
        }
        var nextIds: [String] = []
        do {
            try redis.sendOnly(store.loadCommands(chunks[0]))
            var loaded = try PartitionStore.runs(redis.receive(chunks[0].count))
            for (i, chunk) in chunks.enumerated() {
                // A plan version not cached yet is read from Redis: first take the reply in flight.
                if loaded.contains(where: { $0.map { plans.cached($0.planId, version: $0.planVersion) == nil } ?? false }) {
                    try collect()
                }
                var set = tickBatch(loaded, ids: chunk, context: context, redis)
                stepped += set.changes.filter { !$0.audit.isEmpty }.count
                n += 1
                set.batch = (progressKey, n, progress(stepped))
                set.clock = context.clock - 1
                set.auditRetention = config.auditRetentionSeconds
                let following = i + 1 < chunks.count ? chunks[i + 1] : nil
                var commands = following.map(store.loadCommands) ?? []
                commands += store.applyCommands([set], epoch: epoch)
                if following == nil { commands.append(next) }
                try redis.sendOnly(commands)
                try collect()
                pending = context.clock - 1
                if let following {
                    loaded = try PartitionStore.runs(redis.receive(following.count))
                } else {
                    try collect()
                    nextIds = (try redis.receive(1)[0].array ?? []).compactMap(\.string)
                }
            }
        } catch {
            // Replies may still be on the wire and would answer the next call: drop the connection (it reconnects).
            redis.close()
            if error is Fenced { state.withLock { $0.epoch = nil } }
            throw error
        }
        return nextIds
    }

    /// One batch of a tick: the change of every loaded run that is due.
    private func tickBatch(_ loaded: [Run?], ids: [String], context: ChangeContext, _ redis: RedisConnection) -> ChangeSet {
        var set = ChangeSet(entry: nil)
        for (id, run) in zip(ids, loaded) {
            guard var run else {
                // State an operator or eviction left behind: a schedule entry whose run is gone. Left there, every
                // tick would read it again and never finish.
                logger.warning("a due run is gone; taking it out of the schedule", metadata: ["run.id": "\(id)"])
                set.orphanedDue.append(id)
                continue
            }
            let plan: Plan
            do {
                plan = try planVersion(run.planId, run.planVersion, redis)
            } catch {
                // Fail closed: a plan version that cannot be read fails the run.
                var change = RunChange(run: run)
                Stepper.fail(&run, "plan \(run.planId) version \(run.planVersion) cannot be read")
                run.completedAt = context.at
                run.currentTick = context.clock
                change.run = run
                change.event("run.failed", context: context)
                change.audit("tick", details: ["error": "plan unreadable"], context: context, signer: signer)
                set.changes.append(change)
                continue
            }
            if let change = Stepper.tick(run: run, plan: plan, context: context, signer: signer) {
                set.changes.append(change)
            } else {
                // Not steppable (paused or terminal, left in the schedule): take it out.
                var change = RunChange(run: run)
                change.run.due = nil
                set.changes.append(change)
            }
        }
        return set
    }

    /// Delivers a signal to one run, or to every open run of a contact (optionally of one plan).
    func signal(
        _ target: SignalTarget, name: String, data: [String: JSONValue]?, planId: String?, context: ChangeContext,
        changes: inout ChangeSet, _ redis: RedisConnection
    ) throws -> Outcome {
        var runs: [Run] = []
        switch target {
        case .run(let runId):
            runs = [try load(runId, redis)]
        case .contact(let contactId):
            let ids = try store.query(
                RunFilter(statuses: RunStatus.open, contactId: contactId), offset: 0, count: 10_000, redis
            ).ids
            runs = try store.loadRuns(ids, redis).compactMap { $0 }
        }
        for run in runs where planId == nil || run.planId == planId {
            guard let plan = try? planVersion(run.planId, run.planVersion, redis) else { continue }
            if let change = Stepper.signal(run: run, plan: plan, name: name, data: data, context: context, signer: signer) {
                changes.changes.append(change)
            }
        }
        return .ok(["delivered": .int(changes.changes.count)])
    }
}

extension PartitionOwner {
    typealias Entry = (id: String, fields: [(String, String)])

    /// The run of entries from `start` that can take the batched execute path: `execute` without requestId,
    /// not yet applied, on one partition.
    func executeGroup(_ entries: [Entry], from start: Int) -> [(EntryID, [String: String])] {
        let applied = state.withLock { $0.applied }
        var group: [(EntryID, [String: String])] = []
        for entry in entries[start...] {
            let f = Dictionary(entry.fields, uniquingKeysWith: { a, _ in a })
            guard f["type"] == "execute", (f["rid"] ?? "").isEmpty, (f["parts"] ?? "1") == "1",
                let id = EntryID(entry.id), applied.map({ id > $0 }) ?? true
            else { break }
            group.append((id, f))
            if group.count == 256 { break }
        }
        return group
    }

    /// Applies consecutive executes: one pipeline reads every suppression and enrollment they need, the runs
    /// are computed in order (a contact enrolled earlier in the group counts as enrolled), and one pipeline
    /// writes them, each with its own apply script, in entry order. Same effects as one by one.
    func executeMany(_ group: [(EntryID, [String: String])], _ redis: RedisConnection) throws -> [[String]] {
        struct Item {
            let id: EntryID
            let address: ReplyAddress
            let fingerprint: String
            var request: (plan: (Plan, Int), contact: [String: JSONValue], contactId: String, variables: [String: JSONValue], startTick: Int?)?
            var outcome: Outcome?
        }
        var items: [Item] = []
        var checks: [[String]] = []
        for (id, f) in group {
            var item = Item(id: id, address: address(id, f), fingerprint: f["fp"] ?? "")
            do {
                let envelope = try decoder.decode([("type", "execute"), ("args", f["args"] ?? "{}")])
                guard case .execute(_, let contact, let contactId, let variables, let startTick) = envelope.request else {
                    throw DEEError(.internal, "not an execute")
                }
                let plan = try self.plan(f, envelope.request, redis)
                item.request = (plan, contact, contactId, variables, startTick)
                checks.append(["HEXISTS", keys.suppressed, contactId])
                checks.append(["HGET", keys.enroll, "\(plan.0.id):\(contactId)"])
            } catch let e as DEEError {
                item.outcome = .error(e)
            }
            items.append(item)
        }
        let found = try redis.pipeline(checks)
        var k = 0
        var enrolledNow: [String: String] = [:]
        var copying = Set<String>()
        var sets: [ChangeSet] = []
        let clock = state.withLock { $0.clock }
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.epoch }) else { throw Fenced() }
        // A chunk of consecutive executes is one script (ChangeSet(group:)): Redis pays the script's fixed cost
        // once per chunk, and index writes are grouped across it. Overlap: while Redis runs one chunk's script,
        // the next chunk is computed. At most one chunk is in flight, so entries are applied in order and
        // nothing is sent after a refusal.
        var results: [ApplyResult] = []
        var inflight: Range<Int>?
        func collect(_ range: Range<Int>) throws {
            if try receiveApplyResult(redis) == .ok {
                results += Array(repeating: .ok, count: range.count)
                return
            }
            // The group's first entry was applied already (a watermark this process did not know): nothing of the
            // group was written; write its entries one by one. One refused as applied replies its stored result
            // (below).
            let singles = try store.applyMany(Array(sets[range]), epoch: epoch, redis)
            results += singles
            if singles.contains(.fenced) { throw Fenced() }
        }
        func flush(upTo end: Int) throws {
            let start = (inflight?.upperBound) ?? 0
            if let f = inflight { try collect(f) }
            inflight = nil
            guard start < end else { return }
            try redis.sendOnly(store.applyCommands([ChangeSet(group: Array(sets[start..<end]))], epoch: epoch))
            inflight = start..<end
        }
        let chunk = 64
        do {
            for i in items.indices {
                var set = ChangeSet(entry: items[i].id)
                if let r = items[i].request {
                    let key = "\(r.plan.0.id):\(r.contactId)"
                    let suppressed = found[k].int == 1
                    let open = enrolledNow[key] ?? found[k + 1].string
                    k += 2
                    if suppressed {
                        items[i].outcome = .error(DEEError(.suppressed, "contact \(r.contactId) is suppressed", field: "contact.id"))
                    } else if let open {
                        items[i].outcome = .error(DEEError(
                            .alreadyEnrolled, "contact \(r.contactId) already has an open run \(open) of plan \(r.plan.0.id)",
                            field: "contact.id"))
                    } else {
                        let context = ChangeContext(
                            commandId: items[i].id, requestId: items[i].id.description, actor: items[i].address.actor,
                            clock: clock)
                        let runId = RunID.make(entry: items[i].id, index: 0, partition: partition)
                        let change = Transitions.start(
                            runId: runId, plan: r.plan.0, version: r.plan.1, contact: r.contact, contactId: r.contactId,
                            variables: r.variables, startTick: r.startTick, context: context, signer: signer)
                        set.changes = [change]
                        // The first script of the group copies the plan; the others run after it.
                        let copy = PartitionKeys.planCopySuffix(r.plan.0.id, r.plan.1)
                        if !copying.contains(copy) {
                            copyPlan(r.plan.0, r.plan.1, into: &set)
                            copying.insert(copy)
                        }
                        enrolledNow[key] = runId
                        items[i].outcome = .ok(change.run.wire)
                    }
                }
                let outcome = items[i].outcome ?? .error(DEEError(.internal, "no outcome"))
                if outcome.storable { set.results = [(items[i].id, outcome.record(fingerprint: items[i].fingerprint))] }
                sets.append(set)
                if sets.count % chunk == 0 { try flush(upTo: sets.count) }
            }
            try flush(upTo: sets.count)
            if let f = inflight { try collect(f) }
        } catch {
            // Replies of a chunk in flight would answer the next call: drop the connection (it reconnects).
            if inflight != nil { redis.close() }
            for (i, result) in results.enumerated() where result != .fenced {
                state.withLock { $0.applied = sets[i].entry }
            }
            if error is Fenced { state.withLock { $0.epoch = nil } }
            throw error
        }
        var replies: [[String]] = []
        for i in results.indices {
            state.withLock { s in
                s.applied = sets[i].entry
                if let p = sets[i].planCopy { s.copiedPlans.insert(p.key) }
            }
            // An entry applied before (only after a group fell back to single scripts) answers what was stored.
            let outcome =
                results[i] == .alreadyApplied
                ? try storedResult(items[i].id, requestId: "", replayed: true, redis)?.outcome : items[i].outcome
            if let outcome, let r = items[i].address.command(outcome, maxLen: config.replyMaxLen) {
                replies.append(r)
            }
        }
        return replies
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

/// Waits on the owner's own queue thread (never the cooperative pool) while another process holds the lease.
private func sleepMilliseconds(_ ms: Int) {
    usleep(UInt32(ms) * 1000)
}
