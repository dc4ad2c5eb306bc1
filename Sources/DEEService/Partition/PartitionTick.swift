import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// Ticks in a partition: due runs in batches, pipelined, each batch one script that records the progress.
extension PartitionOwner {
    /// Processes ticks clock+1 … clock+count. Each batch of due runs (in the due script's order, Scripts/DueScript.swift:
    /// due tick, then run id) is one script that also records the tick and the count so far, so an interrupted tick
    /// resumes where it stopped, and a run stepped in tick t is due after t, so it never steps twice in one tick.
    /// Ticks with nothing due are skipped in one jump to the next due tick.
    func tick(count: Int, context: ChangeContext, changes: inout ChangeSet, _ redis: any RedisCommands) throws -> Outcome {
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
        func dueIds(_ t: Int) -> [String] { store.dueCommand(through: t, limit: window) }
        var prefetched: (ids: [String], next: Int?)?
        while t <= end {
            let (ids, nextDue) = try prefetched ?? PartitionStore.dueResult(redis.call(dueIds(t)))
            prefetched = nil
            if ids.isEmpty {
                // The due script repaired directory entries left stale and found nothing yet: read again.
                if let nextDue, nextDue <= t { continue }
                // Tick t is finished; jump to the next tick that has a due run.
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
    /// safe; every script still runs in batch order. Returns the due ids of the next window (and the next due tick
    /// when it is empty), read after the last script of this one.
    func tickWindow(
        _ ids: [String], context: ChangeContext, batches n: inout Int, stepped: inout Int,
        progress: (Int) -> String, progressKey: String, next: [String], _ redis: any RedisCommands
    ) throws -> (ids: [String], next: Int?) {
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.machine.epoch }) else { throw Fenced() }
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
        var nextIds: (ids: [String], next: Int?) = ([], nil)
        do {
            try redis.sendOnly(store.loadCommands(chunks[0]))
            var loaded = try PartitionStore.runs(redis.receive(chunks[0].count), ids: chunks[0])
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
                    loaded = try PartitionStore.runs(redis.receive(following.count), ids: following)
                } else {
                    try collect()
                    nextIds = try PartitionStore.dueResult(redis.receive(1)[0])
                }
            }
        } catch {
            // Replies may still be on the wire and would answer the next call: drop the connection (it reconnects).
            redis.close()
            if error is Fenced { state.withLock { $0.machine.lost() } }
            throw error
        }
        return nextIds
    }

    /// One batch of a tick: the change of every loaded run that is due.
    func tickBatch(_ loaded: [Run?], ids: [String], context: ChangeContext, _ redis: any RedisCommands) -> ChangeSet {
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
            } else if run.status.isOpen, run.status != .paused, let due = run.due, due > context.clock {
                // Listed earlier than its hash says (a stale copy: an engine of the previous layout scheduled it
                // again): written again at its own due tick, which moves the entry there.
                set.changes.append(RunChange(run: run))
            } else {
                // Not steppable (paused or terminal, left in the schedule): take it out.
                var change = RunChange(run: run)
                change.run.due = nil
                set.changes.append(change)
            }
        }
        return set
    }
}
