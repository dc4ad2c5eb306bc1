import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// What each command does in a partition: loads the state it needs, calls the pure core, and collects the change.
extension PartitionOwner {
    // MARK: - Commands

    /// Computes one command. `batch` holds the runs a group of commands prefetched (``applyGroup(_:_:)``); without
    /// it, runs are read from Redis.
    func execute(
        _ request: Request, entry e: InboxEntry, context: ChangeContext, changes: inout ChangeSet,
        batch: BatchRuns? = nil, _ redis: any RedisCommands
    ) throws -> Outcome {
        func loadRun(_ runId: String) throws -> Run {
            guard let batch else { return try self.load(runId, redis) }
            guard let run = batch.run(runId) else { throw reads.notFound(runId) }
            return run
        }
        switch request {
        case .getRun(let runId):
            if let batch { return batch.run(runId).map { .ok($0) } ?? .error(reads.notFound(runId)) }
            return try reads.getRun(runId, redis)
        case .listRuns(let filter, let limit, let offset):
            if let batch, let contact = filter.contactId,
                let page = batch.listRuns(filter, contact: contact, limit: limit, offset: offset)
            {
                return .ok(page)
            }
            return try reads.listRuns(filter, limit: limit, offset: offset, partitions: [partition], redis)
        case .getAudit(let runId, let limit):
            return try reads.getAudit(runId, limit: limit, redis)
        case .verifyAudit(let runId):
            return try reads.verifyAudit(runId, redis)
        case .stats:
            return try reads.stats(redis, partitions: Array(0..<config.partitions))
        case .execute(_, let contact, let contactId, let variables, let startTick):
            let plan = try plan(e, request, redis)
            return try executeOne(
                plan: plan, contact: contact, contactId: contactId, variables: variables, startTick: startTick,
                context: context, changes: &changes, redis)
        case .bulkExecute(_, let contacts, let variables, let batchSize):
            let plan = try plan(e, request, redis)
            // The router sends each partition only its share, with the contacts' indexes in the whole command.
            let indexes = try e.indexes.map { text throws(DEEError) -> [Int] in
                guard let list = JSONValue.parse(text)?.array?.compactMap(\.int), list.count == contacts.count else {
                    throw DEEError(.internal, "the router's contact indexes do not match the share")
                }
                return list
            }
            return try bulkExecute(
                plan: plan, contacts: contacts, indexes: indexes, variables: variables, batchSize: batchSize, context: context,
                changes: &changes, redis)
        case .pauseRun(let runId, let reason):
            let run = try loadRun(runId)
            let change = try Transitions.pause(run: run, reason: reason, context: context, signer: signer)
            changes.changes = [change]
            return .ok(change.run)
        case .resumeRun(let runId):
            let run = try loadRun(runId)
            var change = try Transitions.resume(run: run, context: context, signer: signer)
            if !run.deferred.isEmpty, let plan = try? planVersion(run.planId, run.planVersion, redis) {
                Stepper.applyDeferred(&change, plan: plan, context: context, signer: signer)
            }
            changes.changes = [change]
            return .ok(change.run)
        case .cancelRun(let runId, let reason):
            let run = try loadRun(runId)
            let change = try Transitions.cancel(run: run, reason: reason, action: "cancel", context: context, signer: signer)
            changes.changes = [change]
            return .ok(change.run)
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
            return try signal(
                target, name: name, data: data, planId: planId, context: context, changes: &changes, batch: batch, redis)
        case .actionResult(let runId, let key, let ok, let error, let data):
            let run = try loadRun(runId)
            guard let plan = try? planVersion(run.planId, run.planVersion, redis) else {
                throw DEEError(.internal, "plan \(run.planId) version \(run.planVersion) cannot be read")
            }
            if let change = Stepper.actionResult(
                run: run, plan: plan, key: key, ok: ok, error: error, data: data, context: context, signer: signer)
            {
                changes.changes = [change]
                return .ok(change.run)
            }
            return .ok(run)
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

    func load(_ runId: String, _ redis: any RedisCommands) throws -> Run {
        guard let run = try store.loadRun(runId, redis) else { throw reads.notFound(runId) }
        return run
    }

    /// The plan version the router resolved for this entry.
    func plan(_ e: InboxEntry, _ request: Request, _ redis: any RedisCommands) throws -> (Plan, Int) {
        let planId: String
        switch request {
        case .execute(let ref, _, _, _, _), .bulkExecute(let ref, _, _, _): planId = ref.planId
        default: throw DEEError(.internal, "no plan in this command")
        }
        if let fail = e.failure.flatMap(JSONValue.parse).flatMap(DEEError.init(json:)) { throw fail }
        guard let version = e.planVersion else {
            throw DEEError(.internal, "the router did not resolve the plan version")
        }
        return (try planVersion(planId, version, redis), version)
    }

    func planVersion(_ planId: String, _ version: Int, _ redis: any RedisCommands) throws -> Plan {
        // Every plan version a run uses is copied into its partition; the registry is the fallback.
        guard let plan = try plans.load(planId, version: version, redis) else {
            throw DEEError(.notFound, "plan \(planId) version \(version) cannot be read", field: "planId")
        }
        return plan
    }

    func executeOne(
        plan: (Plan, Int), contact: [String: JSONValue], contactId: String, variables: [String: JSONValue],
        startTick: Int?, context: ChangeContext, changes: inout ChangeSet, _ redis: any RedisCommands
    ) throws -> Outcome {
        let (p, version) = plan
        let check = enrollmentCheck
        let found = check.read(
            try redis.pipeline(check.commands(keys, planId: p.id, contactId: contactId)), at: 0, planId: p.id)
        if found.suppressed {
            return .error(DEEError(.suppressed, "contact \(contactId) is suppressed", field: "contact.id"))
        }
        if let open = found.openRun {
            return .error(
                DEEError(.alreadyEnrolled, "contact \(contactId) already has an open run \(open) of plan \(p.id)", field: "contact.id"))
        }
        let runId = RunID.make(entry: context.commandId, index: 0, partition: partition)
        let change = Transitions.start(
            runId: runId, plan: p, version: version, contact: contact, contactId: contactId, variables: variables,
            startTick: startTick, context: context, signer: signer)
        changes.changes = [change]
        copyPlan(p, version, into: &changes)
        return .ok(change.run)
    }

    /// How far a batched command got before an interruption: the batches it wrote and its saved counts
    /// (`n` and `state` of `<base>:progress:<entryId>`, written by the apply script); none when it is new.
    func savedProgress(_ context: ChangeContext, _ redis: any RedisCommands) throws -> (batches: Int, state: String?) {
        let saved = try redis.call(["HGETALL", keys.progress(context.commandId.description)]).pairs
        return (saved["n"].flatMap { Int($0) } ?? 0, saved["state"])
    }

    func copyPlan(_ plan: Plan, _ version: Int, into changes: inout ChangeSet) {
        let key = PartitionKeys.planCopySuffix(plan.id, version)
        if !state.withLock({ $0.copiedPlans.contains(key) }) { changes.planCopy = (key, plan.canonicalJSON) }
    }

    /// Delivers a signal to one run, or to every open run of a contact (optionally of one plan).
    func signal(
        _ target: SignalTarget, name: String, data: [String: JSONValue]?, planId: String?, context: ChangeContext,
        changes: inout ChangeSet, batch: BatchRuns? = nil, _ redis: any RedisCommands
    ) throws -> Outcome {
        var runs: [Run] = []
        switch target {
        case .run(let runId) where batch != nil:
            guard let run = batch?.run(runId) else { throw reads.notFound(runId) }
            runs = [run]
        case .contact(let contactId) where batch != nil:
            runs = batch?.openRuns(ofContact: contactId) ?? []
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
