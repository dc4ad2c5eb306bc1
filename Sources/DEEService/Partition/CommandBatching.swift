import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// Consecutive commands on single runs applied together: one read pipeline (two when a signal names a contact),
/// the changes computed in entry order against what was read, and scripts of 64 commands each.
///
/// The stream a deployment sees mixes executes with and without requestId, signals, action results, pauses and
/// reads. Applied one at a time, each costs two or three round trips (its stored result, its run, its script);
/// grouped, the group costs two or three in all, so the idempotent path costs what the plain one does (SPEC 5) and
/// a signal between two executes does not split their batch.
extension PartitionOwner {
    /// Commands that read and change only runs named in the command (or a contact's runs) and enrollment. A
    /// `listRuns` joins a group only with a `contactId` (its answer is the contact's runs the group read).
    static let groupable: Set<String> = [
        "execute", "pauseRun", "resumeRun", "cancelRun", "actionResult", "signal", "getRun", "listRuns",
    ]

    /// The run of entries from `start` that can take the grouped path: groupable, on one partition, not yet
    /// applied; at most `inboxBatch`.
    func commandGroup(_ entries: [StreamEntry], from start: Int) -> [(EntryID, InboxEntry)] {
        let applied = state.withLock { $0.applied }
        var group: [(EntryID, InboxEntry)] = []
        for entry in entries[start...] {
            guard let e = InboxEntry(fields: Dictionary(entry.fields, uniquingKeysWith: { a, _ in a })),
                Self.groupable.contains(e.type), e.parts == 1,
                let id = EntryID(entry.id), applied.map({ id > $0 }) ?? true
            else { break }
            group.append((id, e))
            if group.count == config.inboxBatch { break }
        }
        return group
    }

    /// Apply scripts of one group sent before the first of them is answered (see ``applyGroup(_:_:)``).
    static let chunksInFlight = 2

    /// What an owner's connection answers next while a group is applied (``applyGroup(_:_:)``).
    enum Pending {
        /// An apply script of the group's entries in this range.
        case chunk(Range<Int>)
        /// Replies (and their streams' expiry) of a chunk already applied: this many answers.
        case replies(Int)
    }

    /// A contact named by a signal with more runs than this is read by the single path, which pages its index.
    static let groupedContactRuns = 1000

    /// Applies a group: reads every stored result (requestId), run, suppression and enrollment it needs in one
    /// pipeline, computes each command in order (each sees the runs, enrollments and requestIds of the ones before
    /// it), and writes them in scripts of 64 (``ChangeSet/init(group:)``), in entry order. Same effects and
    /// replies as ``handle(_:_:_:)`` one by one. On one Redis without a replica wait, each chunk's replies are sent
    /// as soon as its script answers ok and read before this returns; returns the replies it did not send (the
    /// round writes them before the watermark) and how many entries of the group it applied (fewer when a signal
    /// names a contact with too many runs; the round applies that one alone).
    func applyGroup(_ group: [(EntryID, InboxEntry)], _ redis: any RedisCommands) throws -> (replies: [[String]], count: Int) {
        let started = ContinuousClock.now
        struct Item {
            let id: EntryID
            let entry: InboxEntry
            let address: ReplyAddress
            var request: Request?
            var plan: (Plan, Int)?
            var outcome: Outcome?
            /// Index of the stored-result read (requestId of a changing command).
            var storedAt: Int?
            /// Index of the suppression read of an execute; the enrollment read follows it.
            var checkAt: Int?
            var readOnly: Bool { request?.isReadOnly ?? true }
        }
        let enrollment = enrollmentCheck
        let contactRuns = contactRunsRead
        var items: [Item] = []
        var checks: [[String]] = []
        var runIds: [String] = []
        var contacts: [String] = []
        for (id, e) in group {
            var item = Item(id: id, entry: e, address: address(id, e))
            do {
                let request = try decoder.decode([("type", e.type), ("args", e.args)]).request
                item.request = request
                if let rid = e.requestId, !request.isReadOnly {
                    item.storedAt = checks.count
                    checks.append(["GET", keys.request(rid)])
                }
                switch request {
                case .execute(_, _, let contactId, _, _):
                    let plan = try self.plan(e, request, redis)
                    item.plan = plan
                    item.checkAt = checks.count
                    checks += enrollment.commands(keys, planId: plan.0.id, contactId: contactId)
                case .pauseRun(let runId, _), .resumeRun(let runId), .cancelRun(let runId, _), .getRun(let runId),
                    .actionResult(let runId, _, _, _, _), .signal(.run(let runId), _, _, _):
                    runIds.append(runId)
                case .signal(.contact(let contactId), _, _, _):
                    contacts.append(contactId)
                case .listRuns(let filter, _, _):
                    if let contactId = filter.contactId { contacts.append(contactId) }
                default:
                    break
                }
            } catch let error as DEEError {
                item.outcome = .error(error)
            }
            items.append(item)
        }
        // Reads: checks, runs, contacts' run ids; then the runs of those contacts not read yet.
        runIds = Array(Set(runIds))
        contacts = Array(Set(contacts))
        let reads = checks + store.loadCommands(runIds)
            + contacts.flatMap { contactRuns.commands(keys, contactId: $0, limit: Self.groupedContactRuns) }
        let found = try redis.pipeline(reads)
        try Failure.throwIfTransient(found)
        var batch = BatchRuns()
        for (id, run) in zip(runIds, try PartitionStore.runs(Array(found[checks.count..<(checks.count + runIds.count)]), ids: runIds)) {
            batch.fetched(id, run)
        }
        var crowded = Set<String>()
        var more: [String] = []
        for (k, contact) in contacts.enumerated() {
            let ids = contactRuns.read(found, at: checks.count + runIds.count + k * contactRuns.width)
            if ids.count > Self.groupedContactRuns { crowded.insert(contact) }
            batch.fetched(contact: contact, ids: ids)
            more += ids.filter { !batch.has($0) }
        }
        more = Array(Set(more))
        if !more.isEmpty {
            let replies = try redis.pipeline(store.loadCommands(more))
            try Failure.throwIfTransient(replies)
            for (id, run) in zip(more, try PartitionStore.runs(replies, ids: more)) { batch.fetched(id, run) }
        }
        // A signal to a contact with more runs than were read goes alone, and the group stops before it; so does
        // a listRuns without contactId (answered by the index query), or of a contact whose index names a run that
        // is gone (the query counts it).
        if let cut = items.firstIndex(where: {
            switch $0.request {
            case .signal(.contact(let c), _, _, _): return crowded.contains(c)
            case .listRuns(let filter, _, _):
                guard let c = filter.contactId else { return true }
                return crowded.contains(c) || batch.allRuns(ofContact: c) == nil
            default: return false
            }
        }) {
            items.removeSubrange(cut...)
            if items.isEmpty { return ([], 0) }
        }

        var answeredNow: [String: (fingerprint: String, outcome: Outcome)] = [:]
        // Enrollment as the group leaves it: "" when the group closed the contact's open run.
        var enrolledNow: [String: String] = [:]
        var copying = Set<String>()
        var sets: [ChangeSet] = []
        let clock = state.withLock { $0.clock }
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.machine.epoch }) else { throw Fenced() }
        // A chunk of consecutive commands is one script (ChangeSet(group:)): Redis pays the script's fixed cost
        // once per chunk, and index writes are grouped across it. Two chunks in flight: while Redis runs one (and
        // the other clients' commands queued before it), the next is queued behind it and the one after is
        // computed. Each chunk after the group's first follows the one before it (ChangeSet.follows: the script
        // refuses it with GAP unless the watermark is that chunk's last entry), so a refused chunk lets nothing
        // after it apply; entries are applied in order.
        var results: [ApplyResult] = []
        /// What the connection answers next, in order: apply scripts, and the replies of chunks already applied.
        var queue: [Pending] = []
        var inflight: Int { queue.count { if case .chunk = $0 { true } else { false } } }
        var sent = 0
        /// Replies sent for and not yet read: a failure with any left drops the connection.
        var unread = 0
        /// The replies of the entries below this index are sent already: each chunk's once its script answered ok,
        /// while the owner computes the next ones (one Redis, no replica wait: the replies must come after the
        /// writes they answer, and Redis runs one connection's commands in order). After a refused chunk the rest
        /// are replied at the end, in order.
        var repliedBelow = 0
        var streaming = redis.ordersAcrossKeys && !config.replicaWait.enabled
        var replyAnswers: [RESPValue] = []
        /// The reply of item `i` with `outcome` (its own, or the stored one of an entry applied before).
        func reply(_ i: Int, _ outcome: Outcome?) -> [String]? {
            outcome.flatMap { items[i].address.command($0, maxLen: config.replyMaxLen) }
        }
        func receive() throws -> ApplyResult {
            // A failure here (fenced, a script error) leaves `unread` as it was: the connection is dropped below.
            let result = try receiveApplyResult(redis)
            unread -= 1
            return result
        }
        func receiveReplies(_ count: Int) throws {
            replyAnswers += try redis.receive(count)
            unread -= count
        }
        func collect() throws {
            while case .replies(let count)? = queue.first {
                queue.removeFirst()
                try receiveReplies(count)
            }
            guard case .chunk(let oldest)? = queue.first else { return }
            queue.removeFirst()
            var answers = [(oldest, try receive())]
            // Refused, nothing of the oldest chunk was written: its first entry was applied already (a watermark this
            // process did not know), or it followed a chunk that was refused. The chunks after it in flight were
            // refused too (GAP), or applied only if the watermark had passed this chunk. Read their answers, then
            // write every refused chunk's entries one by one, in order; one refused as applied replies its stored
            // result (below).
            if answers[0].1 != .ok {
                streaming = false
                while let next = queue.first {
                    queue.removeFirst()
                    switch next {
                    case .chunk(let range): answers.append((range, try receive()))
                    case .replies(let count): try receiveReplies(count)
                    }
                }
            }
            for (range, result) in answers {
                if result == .ok {
                    results += Array(repeating: .ok, count: range.count)
                    continue
                }
                let singles = try store.applyMany(Array(sets[range]), epoch: epoch, redis)
                results += singles
                if singles.contains(.fenced) { throw Fenced() }
            }
            if streaming {
                let replies = (repliedBelow..<results.count).compactMap { reply($0, items[$0].outcome) }
                repliedBelow = results.count
                if !replies.isEmpty {
                    let commands = ReplyAddress.expiring(replies)
                    unread += commands.count
                    try redis.sendOnly(commands)
                    queue.append(.replies(commands.count))
                }
            }
        }
        func flush(upTo end: Int) throws {
            guard sent < end else { return }
            if inflight == Self.chunksInFlight { try collect() }
            var chunkSet = ChangeSet(group: Array(sets[sent..<end]))
            if sent > 0 { chunkSet.follows = sets[sent - 1].entry }
            unread += 1
            try redis.sendOnly(store.applyCommands([chunkSet], epoch: epoch))
            queue.append(.chunk(sent..<end))
            sent = end
        }
        let chunk = 64
        do {
            for i in items.indices {
                var set = ChangeSet(entry: items[i].id)
                set.auditRetention = config.auditRetentionSeconds
                let rid = items[i].entry.requestId
                let fingerprint = items[i].entry.fingerprint
                // The same requestId again (stored, or earlier in this group): its first outcome, nothing applied.
                let earlier = items[i].readOnly ? nil : rid.flatMap { rid in
                    answeredNow[rid] ?? items[i].storedAt.flatMap { found[$0].string.flatMap(Outcome.parseRecord) }
                }
                if let earlier, let rid {
                    items[i].outcome =
                        earlier.fingerprint == fingerprint ? earlier.outcome : .error(Router.requestIdReused(rid))
                } else if let request = items[i].request {
                    if items[i].outcome == nil {
                        let context = ChangeContext(
                            commandId: items[i].id, requestId: rid ?? items[i].id.description,
                            actor: items[i].entry.actor, clock: clock)
                        if case .execute(_, let contact, let contactId, let variables, let startTick) = request,
                            let plan = items[i].plan, let k = items[i].checkAt
                        {
                            let key = "\(plan.0.id):\(contactId)"
                            let stored = enrollment.read(found, at: k, planId: plan.0.id)
                            let open = enrolledNow[key].map { $0.isEmpty ? nil : $0 } ?? stored.openRun
                            if stored.suppressed {
                                items[i].outcome = .error(
                                    DEEError(.suppressed, "contact \(contactId) is suppressed", field: "contact.id"))
                            } else if let open {
                                items[i].outcome = .error(DEEError(
                                        .alreadyEnrolled,
                                    "contact \(contactId) already has an open run \(open) of plan \(plan.0.id)",
                                    field: "contact.id"))
                            } else {
                                let runId = RunID.make(entry: items[i].id, index: 0, partition: partition)
                                let change = Transitions.start(
                                    runId: runId, plan: plan.0, version: plan.1, contact: contact, contactId: contactId,
                                    variables: variables, startTick: startTick, context: context, signer: signer)
                                set.changes = [change]
                                // The first script of the group copies the plan; the others run after it.
                                let copy = PartitionKeys.planCopySuffix(plan.0.id, plan.1)
                                if !copying.contains(copy) {
                                    copyPlan(plan.0, plan.1, into: &set)
                                    copying.insert(copy)
                                }
                                items[i].outcome = .ok(change.run)
                            }
                        } else {
                            do {
                                items[i].outcome = try execute(
                                    request, entry: items[i].entry, context: context, changes: &set, batch: batch,
                                    redis)
                            } catch let e as DEEError {
                                items[i].outcome = .error(e)
                                set = ChangeSet(entry: items[i].id)
                            }
                        }
                        batch.apply(set.changes)
                        for change in set.changes {
                            let key = "\(change.run.planId):\(change.run.contactId)"
                            if change.created, change.run.status.isOpen {
                                enrolledNow[key] = change.run.id
                            } else if change.before?.status.isOpen == true, !change.run.status.isOpen {
                                enrolledNow[key] = ""
                            }
                        }
                    }
                    if !request.isReadOnly, let outcome = items[i].outcome, outcome.storable {
                        let record = outcome.record(fingerprint: fingerprint)
                        if let rid {
                            set.dedupe = (PartitionKeys.requestSuffix(rid), record, config.dedupeWindowSeconds)
                            answeredNow[rid] = (fingerprint, outcome)
                        } else {
                            set.results = [(items[i].id, record)]
                        }
                    }
                }
                sets.append(set)
                if sets.count % chunk == 0 { try flush(upTo: sets.count) }
            }
            try flush(upTo: sets.count)
            while !queue.isEmpty { try collect() }
        } catch {
            // Replies of a chunk in flight would answer the next call: drop the connection (it reconnects).
            if unread > 0 { redis.close() }
            for (i, result) in results.enumerated() where result != .fenced {
                state.withLock { $0.applied = sets[i].entry }
            }
            if error is Fenced { state.withLock { $0.machine.lost() } }
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
                results[i] == .alreadyApplied && !items[i].readOnly
                ? try storedResult(items[i].id, requestId: items[i].entry.requestId ?? "", replayed: true, redis)?.outcome
                : items[i].outcome
            if results[i] != .alreadyApplied, let outcome {
                config.metrics.command(items[i].entry.type, outcome, since: started)
            }
            if i >= repliedBelow, let r = reply(i, outcome) { replies.append(r) }
        }
        // A reply refused for a passing reason (OOM): the round fails before its watermark moves, so these entries
        // are read again and their stored results replied.
        try Failure.throwIfTransient(replyAnswers)
        logRefused(replyAnswers)
        return (replies, items.count)
    }
}
