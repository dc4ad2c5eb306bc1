import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// Consecutive executes (with or without requestId) applied together: one read pipeline, scripts of 64 executes
/// each.
extension PartitionOwner {
    /// The run of entries from `start` that can take the batched execute path: `execute`, not yet applied, on one
    /// partition. A requestId's stored result is read in the same pipeline as enrollment and written in the same
    /// grouped script as the run, so the idempotent path costs what the plain one does (SPEC 5).
    func executeGroup(_ entries: [StreamEntry], from start: Int) -> [(EntryID, InboxEntry)] {
        let applied = state.withLock { $0.applied }
        var group: [(EntryID, InboxEntry)] = []
        for entry in entries[start...] {
            guard let e = InboxEntry(fields: Dictionary(entry.fields, uniquingKeysWith: { a, _ in a })),
                e.type == "execute", e.parts == 1,
                let id = EntryID(entry.id), applied.map({ id > $0 }) ?? true
            else { break }
            group.append((id, e))
            if group.count == 256 { break }
        }
        return group
    }

    /// Applies consecutive executes: one pipeline reads every stored result (requestId), suppression and enrollment
    /// they need, the runs are computed in order (a contact enrolled earlier in the group counts as enrolled, a
    /// requestId used earlier in the group answers its first outcome), and scripts of 64 write them in entry
    /// order. Same effects as one by one (``handle(_:_:_:)``).
    func executeMany(_ group: [(EntryID, InboxEntry)], _ redis: RedisConnection) throws -> [[String]] {
        struct Item {
            let id: EntryID
            let address: ReplyAddress
            let fingerprint: String
            let requestId: String?
            var request: (plan: (Plan, Int), contact: [String: JSONValue], contactId: String, variables: [String: JSONValue], startTick: Int?)?
            var outcome: Outcome?
            /// Index of the stored-result read in the check pipeline (requestId only).
            var storedAt: Int?
            /// Index of the suppression read; the enrollment read follows it.
            var checkAt: Int?
        }
        var items: [Item] = []
        var checks: [[String]] = []
        for (id, f) in group {
            var item = Item(id: id, address: address(id, f), fingerprint: f.fingerprint, requestId: f.requestId)
            if let rid = f.requestId {
                item.storedAt = checks.count
                checks.append(["GET", keys.request(rid)])
            }
            do {
                let envelope = try decoder.decode([("type", "execute"), ("args", f.args)])
                guard case .execute(_, let contact, let contactId, let variables, let startTick) = envelope.request else {
                    throw DEEError(.internal, "not an execute")
                }
                let plan = try self.plan(f, envelope.request, redis)
                item.request = (plan, contact, contactId, variables, startTick)
                item.checkAt = checks.count
                checks.append(["HEXISTS", keys.suppressed, contactId])
                checks.append(["HGET", keys.enroll, "\(plan.0.id):\(contactId)"])
            } catch let e as DEEError {
                item.outcome = .error(e)
            }
            items.append(item)
        }
        let found = try redis.pipeline(checks)
        try Failure.throwIfTransient(found)
        var answeredNow: [String: (fingerprint: String, outcome: Outcome)] = [:]
        var enrolledNow: [String: String] = [:]
        var copying = Set<String>()
        var sets: [ChangeSet] = []
        let clock = state.withLock { $0.clock }
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.machine.epoch }) else { throw Fenced() }
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
                // The same requestId again (stored, or earlier in this group): its first outcome, nothing applied.
                let earlier = items[i].requestId.flatMap { rid in
                    answeredNow[rid] ?? items[i].storedAt.flatMap { found[$0].string.flatMap(Outcome.parseRecord) }
                }
                if let earlier, let rid = items[i].requestId {
                    items[i].outcome =
                        earlier.fingerprint == items[i].fingerprint ? earlier.outcome : .error(Router.requestIdReused(rid))
                    sets.append(set)
                    if sets.count % chunk == 0 { try flush(upTo: sets.count) }
                    continue
                }
                if let r = items[i].request, let k = items[i].checkAt {
                    let key = "\(r.plan.0.id):\(r.contactId)"
                    let suppressed = found[k].int == 1
                    let open = enrolledNow[key] ?? found[k + 1].string
                    if suppressed {
                        items[i].outcome = .error(DEEError(.suppressed, "contact \(r.contactId) is suppressed", field: "contact.id"))
                    } else if let open {
                        items[i].outcome = .error(DEEError(
                            .alreadyEnrolled, "contact \(r.contactId) already has an open run \(open) of plan \(r.plan.0.id)",
                            field: "contact.id"))
                    } else {
                        let context = ChangeContext(
                            commandId: items[i].id, requestId: items[i].requestId ?? items[i].id.description,
                            actor: items[i].address.actor, clock: clock)
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
                if outcome.storable {
                    let record = outcome.record(fingerprint: items[i].fingerprint)
                    if let rid = items[i].requestId {
                        set.dedupe = (PartitionKeys.requestSuffix(rid), record, config.dedupeWindowSeconds)
                        answeredNow[rid] = (items[i].fingerprint, outcome)
                    } else {
                        set.results = [(items[i].id, record)]
                    }
                }
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
                results[i] == .alreadyApplied
                ? try storedResult(items[i].id, requestId: items[i].requestId ?? "", replayed: true, redis)?.outcome
                : items[i].outcome
            if let outcome, let r = items[i].address.command(outcome, maxLen: config.replyMaxLen) {
                replies.append(r)
            }
        }
        return replies
    }
}
