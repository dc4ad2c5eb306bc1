import DEECore

/// Everything one apply script writes: built by the shell from the core's ``RunChange``s, written atomically.
public struct ChangeSet: Sendable {
    /// The inbox entry this change completes, or nil for a batch of a longer command.
    public var entry: EntryID?
    public var batch: (key: String, n: Int, state: String)?
    public var dedupe: (key: String, value: String, ttl: Int)?
    public var share: (key: String, value: String, ttl: Int)?
    public var changes: [RunChange] = []
    public var planCopy: (key: String, json: String)?
    public var suppress: (contact: String, value: String)?
    public var unsuppress: String?
    public var clock: Int?
    /// Seconds a terminal run's audit list is kept (nil: no expiry).
    public var auditRetention: Int?
    /// Run ids found in the due schedule whose run hash is gone (deleted by an operator, evicted): taken out of
    /// the schedule so that ticks never wait on them.
    public var orphanedDue: [String] = []

    /// The last entry this set completes when it completes several consecutive commands (see `init(group:)`).
    public var through: EntryID?
    /// The result of each command without requestId that this set completes, kept in `<base>:results` under the
    /// command's entry id so that a successor can reply it after a crash; the owner trims the stream below its
    /// replied watermark. (A key with a TTL per command cost Redis a key creation per execute and, at 10,000
    /// commands/s for the hour it was kept, ~18 GB.)
    public var results: [(entry: EntryID, record: String)] = []
    /// The plan copies of the commands of a grouped set after the first one's (`planCopy`).
    public var groupedPlanCopies: [(key: String, json: String)] = []
    /// The stored results (explicit requestIds) of the commands of a grouped set.
    public var groupedResults: [(key: String, value: String, ttl: Int)] = []

    /// The applied watermark this set must follow exactly (the apply script refuses it with GAP otherwise): set on
    /// a chunk sent before the answer to the chunk before it. nil: no such check.
    public var follows: EntryID?

    public init(entry: EntryID?) { self.entry = entry }

    /// One set for consecutive single-partition commands (entries in order, no batched command): one script
    /// checks the first entry against the watermark, moves it to the last, and writes every command's changes,
    /// plan copies and stored results. All of them or none are applied. Commands that move the clock, suppress,
    /// share a result or run in batches are not grouped (their fields would be lost here).
    public init(group sets: [ChangeSet]) {
        assert(sets.allSatisfy {
            $0.batch == nil && $0.clock == nil && $0.share == nil && $0.suppress == nil && $0.unsuppress == nil
        })
        self.init(entry: sets.first?.entry)
        through = sets.last?.entry
        changes = sets.flatMap(\.changes)
        let copies = sets.compactMap(\.planCopy)
        planCopy = copies.first
        groupedPlanCopies = Array(copies.dropFirst())
        auditRetention = sets.first?.auditRetention
        groupedResults = sets.compactMap(\.dedupe)
        results = sets.flatMap(\.results)
    }

    public var isEmpty: Bool { changes.isEmpty }

    /// The apply script's ARGV: the fence, the watermark and batch progress, then the list of writes (see
    /// Scripts/ApplyScript.swift). Index, due and enrollment writes are grouped per key, one command for the whole
    /// set, and a run that changes twice in one set has its indexes moved once, from where it was to where it ends.
    /// `maxlen` bounds the events stream (approximately); the actions stream is written without it.
    public func arguments(epoch: String, maxlen: Int) -> [String] {
        var w = WriteList()
        w.argv += [
            epoch, entry?.description ?? "", (through ?? entry)?.description ?? "", batch?.key ?? "", batch.map { String($0.n) } ?? "", batch?.state ?? "",
            String(maxlen), follows?.description ?? "",
        ]
        // First, so that a refused entry id (the stream's ids only grow) stops the script before other writes.
        for r in results { w.add("XADDID", PartitionKeys.resultsSuffix, [r.entry.description, "r", r.record]) }
        // Each run once: where it was before the set, where it is after.
        var order: [String] = []
        // Indexes into `changes` (a RunChange copied into a dictionary retained every field of it, twice per run).
        var first: [String: Int] = [:]
        var last: [String: Int] = [:]
        first.reserveCapacity(changes.count)
        last.reserveCapacity(changes.count)
        // Runs that become terminal, in the order of the changes that finish them: the order they would have in
        // the finished list had each command been applied alone (a grouped set's commands are in entry order).
        var finished: [String] = []
        for (i, change) in changes.enumerated() {
            let id = change.run.id
            if change.created || change.before?.status.isOpen == true, !change.run.status.isOpen {
                finished.append(id)
            }
            if first[id] == nil {
                order.append(id)
                first[id] = i
            }
            last[id] = i
            let fields = change.fieldChanges
            if !fields.set.isEmpty { w.add("HSET", PartitionKeys.runSuffix(id), pairs: fields.set) }
            if !fields.deleted.isEmpty { w.add("HDEL", PartitionKeys.runSuffix(id), fields.deleted) }
        }
        var indexMoves: [String] = []
        var dueMoves: [String] = []
        for id in order {
            guard let start = first[id], let end = last[id] else { continue }
            let run = changes[end].run
            let created = changes[start].created
            let wasOpen = changes[start].before?.status.isOpen
            let old = created ? nil : changes[start].before?.status
            let score = String(run.startedAt)
            // The status and plan+status indexes (layout 4's buckets): one IX write for the set, the script
            // numbers created runs in this order (their creation order) and groups the moves per key.
            // ("" as the old status is what makes the script number the run: only for a run created here.)
            if old != run.status, let from = created ? "" : old?.rawValue {
                indexMoves += [id, run.planId, from, run.status.rawValue, score]
            }
            // The contact's record (layout 3, ContactRecords): created runs are appended, tagged with their plan while
            // open (their enrollment); a run becoming terminal loses its tag.
            if created {
                w.group(
                    "CXADD", ContactRecords.suffix(run.contactId),
                    [run.contactId, ContactRecords.token(runId: id, planId: run.planId, open: run.status.isOpen)])
            }
            // The due schedule (layout 5's buckets: the DUE write, after IX has numbered the created runs).
            let scheduled = run.status != .paused && run.status.isOpen
            if scheduled, let due = run.due {
                dueMoves += [id, String(due)]
            } else if !created {
                dueMoves += [id, ""]
            }
            if !created && !run.status.isOpen && wasOpen != false {
                w.group("CXDONE", ContactRecords.suffix(run.contactId), [run.contactId, id])
                // A run enrolled before layout 3 may still be in layout 2's enrollment hash (until dee migrate
                // folds it into the record).
                w.group("HDELIF", PartitionKeys.enrollSuffix, ["\(run.planId):\(run.contactId)", id])
            }
        }
        w.flushGroups()
        // In whole fives (maxArguments is a multiple of 5).
        var start = 0
        while start < indexMoves.count {
            let end = min(indexMoves.count, start + WriteList.maxArguments)
            w.add("IX", PartitionKeys.bucketMapSuffix, Array(indexMoves[start..<end]))
            start = end
        }
        // Runs gone whose schedule entry is left: taken out.
        dueMoves += orphanedDue.flatMap { [$0, ""] }
        // In whole pairs (maxArguments is even).
        start = 0
        while start < dueMoves.count {
            let end = min(dueMoves.count, start + WriteList.maxArguments)
            w.add("DUE", PartitionKeys.dueDirectorySuffix, Array(dueMoves[start..<end]))
            start = end
        }
        // One RPUSH per set. Terminal is final, so a run is listed once; entries are applied in id order and
        // completedAt is the finishing entry's ms, so the list stays in completedAt order and run retention reads
        // the runs due from its head (Sources/DEEService/Retention).
        if !finished.isEmpty {
            start = 0
            while start < finished.count {
                let end = min(finished.count, start + WriteList.maxArguments)
                w.add("RPUSH", PartitionKeys.finishedSuffix, Array(finished[start..<end]))
                start = end
            }
        }
        for change in changes {
            for e in change.events { w.add("XADD", PartitionKeys.eventsSuffix, e.fields) }
        }
        // Action requests are never trimmed on write: an executor may not have read them yet. The actions retention
        // service (Sources/DEEService/Retention) trims the stream below what every executor group acknowledged.
        for change in changes {
            for a in change.actions { w.add("XADDKEEP", PartitionKeys.actionsSuffix, a.fields) }
        }
        for change in changes where !change.audit.isEmpty {
            w.add("RPUSH", PartitionKeys.auditSuffix(change.run.id), change.audit.map(\.storedText))
        }
        if let auditRetention {
            for id in order {
                if let run = last[id].map({ changes[$0].run }), !run.status.isOpen {
                    w.add("EXPIRE", PartitionKeys.auditSuffix(id), [String(auditRetention)])
                }
            }
        }
        for copy in (planCopy.map { [$0] } ?? []) + groupedPlanCopies { w.add("SET", copy.key, [copy.json, "NX"]) }
        if let suppress { w.add("HSET", PartitionKeys.suppressedSuffix, [suppress.contact, suppress.value]) }
        if let unsuppress { w.add("HDEL", PartitionKeys.suppressedSuffix, [unsuppress]) }
        if let clock { w.add("SET", PartitionKeys.clockSuffix, [String(clock)]) }
        if let share { w.add("SET", share.key, [share.value, "EX", String(share.ttl)]) }
        // The stored result is written only with the entry that completes the command.
        if entry != nil, let dedupe { w.add("SET", dedupe.key, [dedupe.value, "EX", String(dedupe.ttl)]) }
        for r in groupedResults { w.add("SET", r.key, [r.value, "EX", String(r.ttl)]) }
        return w.argv
    }
}

/// The apply script's list of writes: command, key suffix, argument count, arguments. Grouped writes (one
/// command per key for the whole set) keep their first-seen key order.
struct WriteList {
    /// Lua's unpack() fails near 8,000 values: a longer grouped write is split (in whole pairs).
    static let maxArguments = 4000

    var argv: [String] = []
    private var groups: [(op: String, suffix: String, args: [String])] = []
    private var groupIndex: [String: Int] = [:]

    init() { argv.reserveCapacity(256) }

    mutating func add(_ op: String, _ suffix: String, _ args: [String]) {
        argv.append(op)
        argv.append(suffix)
        argv.append(String(args.count))
        argv += args
    }

    /// ``add(_:_:_:)`` of field-value pairs, without an array of them made first.
    mutating func add(_ op: String, _ suffix: String, pairs: [(String, String)]) {
        argv.append(op)
        argv.append(suffix)
        argv.append(String(pairs.count * 2))
        for (field, value) in pairs {
            argv.append(field)
            argv.append(value)
        }
    }

    mutating func group(_ op: String, _ suffix: String, _ args: [String]) {
        let k = op + " " + suffix
        if let i = groupIndex[k] {
            groups[i].args += args
        } else {
            groupIndex[k] = groups.count
            groups.append((op, suffix, args))
        }
    }

    /// Writes the grouped commands, removals before additions. Every group's arguments are pairs or single
    /// members, so an even-sized split keeps pairs whole.
    mutating func flushGroups() {
        let removal: Set<String> = ["ZREM", "HDELIF", "CXDONE"]
        let removals = groups.filter { removal.contains($0.op) }
        let additions = groups.filter { !removal.contains($0.op) }
        for g in removals + additions {
            var start = 0
            while start < g.args.count {
                let end = min(g.args.count, start + Self.maxArguments)
                add(g.op, g.suffix, Array(g.args[start..<end]))
                start = end
            }
        }
        groups = []
        groupIndex = [:]
    }
}

/// What the apply script answered.
public enum ApplyResult: Sendable, Equatable {
    case ok
    /// Another process holds the partition now: stop writing.
    case fenced
    /// This entry or batch was applied before; nothing was written.
    case alreadyApplied
    /// The watermark is not the one the set follows (``ChangeSet/follows``): the set sent before it was not applied;
    /// nothing was written.
    case gap
}
