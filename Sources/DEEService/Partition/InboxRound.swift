import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// One round of the partition's inbox: read a batch, apply it (or one entry at a time after a failure or a
/// takeover), reply, then move the replied watermark.
extension PartitionOwner {
    // MARK: - Inbox

    /// One round: hold the lease, read a batch of the inbox, apply and reply each entry. Returns entries handled.
    ///
    /// The replied watermark (where the next round reads from, and below which the inbox and the results stream
    /// are trimmed) moves only once the replies of the entries below it are written: a connection lost between an
    /// apply and its reply makes the next round read the entry again, find it applied, and reply its stored result.
    /// After any failure, and on taking the partition, the next batch is applied one entry at a time (see
    /// ``stepSingly(_:_:)``).
    func step(_ redis: any RedisCommands) throws -> Int {
        do {
            return try round(redis)
        } catch {
            state.withLock { $0.machine.failed(Failure.classify(error)) }
            throw error
        }
    }

    private func round(_ redis: any RedisCommands) throws -> Int {
        guard try holdLease(redis) else {
            sleepMilliseconds(config.blockMilliseconds)
            return 0
        }
        if state.withLock({ $0.machine.stale }) {
            // An apply may have gone through while its answer was lost: what Redis holds is the truth.
            let position = try inbox.position(redis)
            state.withLock {
                $0.applied = position.applied
                $0.clock = position.clock
                $0.machine.reloaded()
            }
        }
        let from: String
        let singly: Bool
        switch state.withLock({ $0.machine.next() }) {
        case .takeLease: return 0
        case .batch(let after): (from, singly) = (after, false)
        case .singly(let after): (from, singly) = (after, true)
        }
        // One entry at a time costs round trips each: a smaller batch, so a takeover's first round ends sooner.
        let entries = try inbox.read(
            after: from, count: singly ? config.readCount : config.inboxBatch,
            blockMilliseconds: config.blockMilliseconds, redis)
        if entries.isEmpty { return 0 }
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
            do {
                // Consecutive commands on single runs go through one read pipeline and grouped scripts.
                let group = commandGroup(entries, from: index)
                if group.count > 1 {
                    let (groupReplies, applied) = try applyGroup(group, redis)
                    if applied > 0 {
                        replies += groupReplies
                        skipUntil = index + applied - 1
                        last = entries[skipUntil].id
                        continue
                    }
                }
                // Decoded only here: a grouped entry was decoded by commandGroup.
                guard let fields = InboxEntry(fields: Dictionary(entry.fields, uniquingKeysWith: { a, _ in a })) else {
                    throw NotAnInboxEntry()
                }
                if let r = try handle(id, fields, redis) { replies.append(r) }
            } catch {
                // What was applied before the failure is replied and the watermark moved past it; the rest of the
                // batch is read again and applied one by one, so the entry at fault is found and only it counted.
                if let last, (try? config.replicaWait.wait(redis)) != nil,
                    (try? replyThenAdvance(replies, inbox.advanceCommands(to: last), redis)) != nil
                {
                    state.withLock { $0.machine.replied(through: last) }
                }
                throw error
            }
            last = entry.id
        }
        // Replies, then the replied watermark (one round trip on one Redis).
        let advance = last.map(inbox.advanceCommands) ?? []
        if !replies.isEmpty || !advance.isEmpty {
            // Nothing is replied before the replicas have what it answers (SPEC 9; off without --wait-replicas).
            try config.replicaWait.wait(redis)
            // A reply (or the watermark) refused for a passing reason (OOM) is sent again: the watermark stays, so
            // the next round reads these entries again and replies their stored results.
            logRefused(try replyThenAdvance(replies, advance, redis))
        }
        if let last { state.withLock { $0.machine.replied(through: last) } }
        return entries.count
    }

    /// Applies entries one at a time, each attempt counted in `<prefix>:{p}:attempts` first (so a process that dies
    /// on an entry, or an entry that fails, is counted across restarts). An entry attempted more than
    /// `maxDeliveries` times is poison: it goes to the dead letters with its error and its command, is answered
    /// `internal`, and the partition goes on. A transient failure takes its attempt back.
    func stepSingly(_ entries: [StreamEntry], _ redis: any RedisCommands) throws -> Int {
        for entry in entries {
            guard let id = EntryID(entry.id) else { continue }
            let attempts = try inbox.countAttempt(entry.id, redis)
            var commands: [[String]] = []
            guard let fields = InboxEntry(fields: Dictionary(entry.fields, uniquingKeysWith: { a, _ in a })) else {
                // Not written by a router (an operator's XADD): nothing to apply, ever.
                commands += poison(id, entry.fields, reason: "not an inbox entry (no type)")
                try config.replicaWait.wait(redis)
                _ = try replyThenAdvance(commands, inbox.doneCommands(entry.id), redis)
                state.withLock { $0.machine.replied(through: entry.id) }
                continue
            }
            if AttemptDecision.decide(attempts: attempts, maxAttempts: config.maxDeliveries) == .poison {
                commands += poison(id, fields, reason: "failed \(attempts - 1) attempts")
            } else {
                do {
                    if let r = try handle(id, fields, redis) { commands.append(r) }
                } catch {
                    if Failure.classify(error) == .transient {
                        inbox.uncountAttempt(entry.id, redis)
                    }
                    logger.warning(
                        "an inbox entry failed",
                        metadata: ["stream.entry_id": "\(entry.id)", "command.type": "\(fields.type)", "error": "\(error)"])
                    throw error
                }
            }
            do {
                try config.replicaWait.wait(redis)
                _ = try replyThenAdvance(commands, inbox.doneCommands(entry.id), redis)
            } catch {
                // Too few replicas, a node failing over, OOM: not the entry's fault, so not one of its attempts
                // (rounds of NOREPLICAS during a failover would otherwise make it poison).
                if Failure.classify(error) == .transient { inbox.uncountAttempt(entry.id, redis) }
                throw error
            }
            state.withLock { $0.machine.replied(through: entry.id) }
            // SIGTERM: this entry is applied and replied, the watermark past it; the rest waits for the successor
            // (one entry at a time costs round trips each, so a whole batch after a takeover took seconds).
            if stopRequested { return entries.count }
        }
        state.withLock { $0.machine.singlyDone() }
        return entries.count
    }

    /// Writes `replies` (replies and dead letters, with their streams' TTLs), then `advance` (the replied watermark,
    /// the trims below it): in one pipeline where one pipeline runs in order (one Redis); on a cluster, where the
    /// replies go to other nodes and a pipeline has no order between nodes, the replies first and `advance` only once
    /// none was refused for a passing reason, so the watermark never passes a reply that was not written (SPEC 9:
    /// at-least-once replies). A transient refusal throws; other error replies are returned, for the log.
    func replyThenAdvance(_ replies: [[String]], _ advance: [[String]], _ redis: any RedisCommands) throws
        -> [RESPValue]
    {
        if redis.ordersAcrossKeys {
            let results = try redis.pipeline(ReplyAddress.expiring(replies) + advance)
            try Failure.throwIfTransient(results)
            return results
        }
        let written = replies.isEmpty ? [] : try redis.pipeline(ReplyAddress.expiring(replies))
        try Failure.throwIfTransient(written)
        let advanced = advance.isEmpty ? [] : try redis.pipeline(advance)
        try Failure.throwIfTransient(advanced)
        return written + advanced
    }

    /// Logs the replies (or watermark writes) refused for good: the transient refusals were thrown already.
    func logRefused(_ results: [RESPValue]) {
        for case .error(let e) in results { logger.warning("reply failed", metadata: ["error": "\(e)"]) }
    }

    /// Gives up on an inbox entry: the `internal` reply, and a dead letter holding the command as a producer would
    /// send it again (type, args, replyTo, actor, requestId), for `redriveDeadletter`.
    func poison(_ id: EntryID, _ e: InboxEntry, reason: String) -> [[String]] {
        var original: [(String, String)] = [("type", e.type), ("args", e.args)]
        for (name, value) in [("requestId", e.requestId), ("replyTo", e.replyTo), ("actor", e.actor)] {
            if let value { original.append((name, value)) }
        }
        let error = DEEError(
            .internal, "the engine could not apply this command (\(reason)); see \(Keys(prefix: config.prefix).deadletter)")
        return poison(id, original, reason: reason) + [address(id, e).command(.error(error), maxLen: config.replyMaxLen)].compactMap { $0 }
    }

    /// The dead letter of an inbox entry, with `fields` as they are to be re-driven.
    func poison(_ id: EntryID, _ fields: [(String, String)], reason: String) -> [[String]] {
        logger.error("giving up on an inbox entry", metadata: ["stream.entry_id": "\(id)", "reason": "\(reason)"])
        config.metrics.deadLetter(.partition)
        return [Deadletters(keys: Keys(prefix: config.prefix), maxLen: config.rejectedMaxLen).add(
            commandId: id.description, source: "partition \(partition)", error: reason, fields: fields)]
    }

}

/// An inbox entry without a type: not written by a router. Applied alone, it goes straight to the dead letters.
struct NotAnInboxEntry: Error, CustomStringConvertible {
    var description: String { "not an inbox entry (no type)" }
}
