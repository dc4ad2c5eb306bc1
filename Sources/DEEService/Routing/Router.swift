import DEECore
import DEEStore
import Logging
import Redis

/// The ingress step (SPEC 9): reads `<prefix>:commands` in the consumer group, validates each entry, answers
/// plan-registry commands, and copies every other command to the inbox of the partition it touches, with the
/// ingress entry id as the inbox entry id (so routing again is harmless); then acknowledges it.
final class Router: Sendable {
    let config: EngineConfiguration
    let keys: Keys
    let plans: PlanStore
    let decoder: RequestDecoder
    let logger: Logger
    let reads: PartitionReads

    init(config: EngineConfiguration, plans: PlanStore, logger: Logger) {
        self.config = config
        self.keys = Keys(prefix: config.prefix)
        self.plans = plans
        self.decoder = RequestDecoder(prefix: config.prefix, limits: config.limits)
        self.logger = logger
        self.reads = PartitionReads(config: config, plans: plans)
    }

    /// The router's Redis reads and writes.
    var ingress: IngressStore {
        IngressStore(keys: keys, group: config.group, consumer: config.consumer, partitions: config.partitions)
    }

    /// What routing a batch came to.
    enum BatchResult: Equatable {
        /// Every entry is routed (or dead-lettered) and acknowledged.
        case done
        /// An inbox refused the router's epoch: another process routes now; nothing was acknowledged.
        case fenced
    }

    /// Routes a batch of ingress entries: validates each, answers those the router answers, appends the others to
    /// the inboxes they touch (one fenced script per partition, entries in id order), then acknowledges them. A
    /// failure throws before anything is acknowledged; the caller routes the pending entries again.
    /// `counted`: the entries' attempts were counted (routed on their own), and are forgotten with the ack.
    func routeBatch(_ batch: [StreamEntry], epoch: Int, counted: Bool = false, _ redis: any RedisCommands) throws
        -> BatchResult
    {
        var out = Batch()
        // Deleted from the stream while pending: nothing to route, only to acknowledge.
        let decoded = batch.filter { !$0.fields.isEmpty }.map { (entry: $0, decoded: decode($0)) }
        let claimed = try claims(decoded.map { ($0.entry.id, $0.decoded) }, redis)
        for (entry, d) in decoded { try route(entry, d, claimed: claimed[entry.id], &out, redis) }
        let routed = batch.map(\.id)
        let parts = out.inbox.keys.sorted()
        let calls = parts.map { ingress.appendCall(partition: $0, epoch: epoch, entries: out.inbox[$0] ?? []) }
        // With --wait-replicas, the router's own replies (plan commands, reads) wait for the replicas too.
        let waiting = config.replicaWait.enabled
        var (codes, replies) = try ingress.append(
            calls, then: waiting ? [] : ReplyAddress.expiring(out.commands), redis)
        if codes.contains(where: { $0 == nil }) { return .fenced }
        if waiting {
            try config.replicaWait.wait(redis)
            if !out.commands.isEmpty { replies = try redis.pipeline(ReplyAddress.expiring(out.commands)) }
        }
        // A reply or rejection Redis refused for a passing reason (OOM) is sent again: nothing is acknowledged.
        try Failure.throwIfTransient(replies)
        var perEntry: [String: [(partition: Int, code: AppendCode)]] = [:]
        for (k, p) in parts.enumerated() {
            for (e, code) in zip(out.inbox[p] ?? [], codes[k] ?? []) { perEntry[e.id, default: []].append((p, code)) }
        }
        for entry in batch {
            if case .gap(let partitions) = RoutedEntry.decide(perEntry[entry.id] ?? []) {
                logger.error(
                    "an inbox is past an entry it never had; the entry goes to the dead letters",
                    metadata: ["stream.entry_id": "\(entry.id)", "partitions": "\(partitions)"])
                try deadletter(entry, reason: "inbox gap in partitions \(partitions)", redis)
            }
        }
        // Acknowledged only once the replicas have the inbox copies (SPEC 9): else a failover could lose a command
        // the ingress group no longer holds.
        try config.replicaWait.wait(redis)
        try ingress.ack(routed, forgettingAttempts: counted, redis)
        return .done
    }

    /// Routes entries one at a time, each attempt counted in Redis first: an entry attempted more than
    /// `maxDeliveries` times is poison and goes to the dead letters (answered `internal`). A transient failure
    /// takes its attempt back and throws; any other failure leaves it counted and throws.
    func routeSingly(_ batch: [StreamEntry], epoch: Int, _ redis: any RedisCommands) throws -> BatchResult {
        for entry in batch {
            let attempts = try ingress.countAttempt(entry.id, redis)
            if AttemptDecision.decide(attempts: attempts, maxAttempts: config.maxDeliveries) == .poison {
                try poison(entry, reason: "failed \(attempts - 1) attempts", redis)
                try config.replicaWait.wait(redis)
                try ingress.ack([entry.id], forgettingAttempts: true, redis)
                continue
            }
            do {
                if try routeBatch([entry], epoch: epoch, counted: true, redis) == .fenced { return .fenced }
            } catch {
                if Failure.classify(error) == .transient { try? ingress.uncountAttempt(entry.id, redis) }
                throw error
            }
        }
        return .done
    }

    /// Gives up on an entry: dead letter, an `internal` reply when it names a valid replyTo, and a log line.
    private func poison(_ entry: StreamEntry, reason: String, _ redis: any RedisCommands) throws {
        logger.error("giving up on an ingress entry", metadata: ["stream.entry_id": "\(entry.id)", "reason": "\(reason)"])
        let header = decoder.header(entry.fields)
        let address = ReplyAddress(
            replyTo: header.replyTo.flatMap { decoder.validReplyTo($0) ? $0 : nil },
            requestId: header.requestId ?? entry.id, commandId: entry.id, type: header.type ?? "")
        let error = DEEError(.internal, "the engine could not route this command (\(reason)); see \(keys.deadletter)")
        // The answer first, then the dead letter: if either is refused, nothing is acknowledged and both are sent
        // again (the answer at least once, the dead letter once).
        if let r = address.command(.error(error), maxLen: config.replyMaxLen) {
            try config.replicaWait.wait(redis)
            try Failure.throwIfTransient(redis.pipeline(ReplyAddress.expiring([r])))
        }
        try deadletter(entry, reason: reason, redis)
    }

    var deadletters: Deadletters { Deadletters(keys: keys, maxLen: config.rejectedMaxLen) }

    /// Writes a dead letter; throws when Redis refuses it, so that the entry is not acknowledged without one.
    private func deadletter(_ entry: StreamEntry, reason: String, _ redis: any RedisCommands) throws {
        try redis.call(deadletters.add(
            commandId: entry.id, source: "ingress", error: reason, fields: entry.fields))
        config.metrics.deadLetter(.ingress)
    }

    /// What a batch writes at its end, in one pipeline; and the latest plan versions it has looked up.
    struct Batch {
        /// Inbox copies per partition, in entry order.
        var inbox: [Int: [(id: String, fields: [String])]] = [:]
        /// Replies and rejections.
        var commands: [[String]] = []
        var latest: [String: Int] = [:]
    }

    /// An ingress entry decoded, with where its reply goes.
    struct Decoded {
        let header: EntryHeader
        let address: ReplyAddress
        let envelope: Result<Envelope, DEEError>
        /// The arguments as canonical JSON and the fingerprint, printed once per entry (nil when decoding failed):
        /// the claim, the inbox copy and the plan registry all use them.
        let printed: (arguments: String, fingerprint: String)?

        /// The requestId a changing command claims (read-only commands store nothing, so claim nothing).
        var claim: (requestId: String, fingerprint: String)? {
            guard case .success(let e) = envelope, let rid = e.requestId, !e.request.isReadOnly, let printed
            else { return nil }
            return (rid, printed.fingerprint)
        }
    }

    func decode(_ entry: StreamEntry) -> Decoded {
        let header = decoder.header(entry.fields)
        let address = ReplyAddress(
            replyTo: header.replyTo.flatMap { decoder.validReplyTo($0) ? $0 : nil },
            requestId: header.requestId ?? entry.id, commandId: entry.id, type: header.type ?? "")
        let envelope = Result { () throws(DEEError) in try decoder.decode(entry.fields) }
        let printed = (try? envelope.get()).map { e in
            let arguments = e.canonicalArguments
            return (arguments, Envelope.fingerprint(type: e.type, canonicalArguments: arguments))
        }
        return Decoded(header: header, address: address, envelope: envelope, printed: printed)
    }

    /// Claims the requestIds of a batch (SPEC 5: the same requestId with another type or other arguments is refused,
    /// whichever partitions the two commands touch). Each claim is `<prefix>:rid:{<requestId>}` holding the first
    /// command's fingerprint for the dedupe window; the hash tag spreads the records over slots. Returns, per
    /// claiming entry id, whether its fingerprint matches the claim (a first use, or a repeat of the same command).
    func claims(_ batch: [(id: String, decoded: Decoded)], _ redis: any RedisCommands) throws -> [String: Bool] {
        let claiming = batch.compactMap { item in item.decoded.claim.map { (item.id, $0) } }
        guard !claiming.isEmpty else { return [:] }
        var commands: [[String]] = []
        // SET … NX GET (Redis 7): one command claims the id and answers the claim that was there (nil: ours now).
        for (_, c) in claiming {
            let key = keys.requestClaim(c.requestId)
            commands.append(["SET", key, c.fingerprint, "NX", "GET", "EX", String(config.dedupeWindowSeconds)])
        }
        let replies = try redis.pipeline(commands)
        var out: [String: Bool] = [:]
        for (k, (id, c)) in claiming.enumerated() {
            switch replies[k] {
            case .error(let e): throw RedisError(.server, e)
            case .null: out[id] = true
            default: out[id] = replies[k].string == c.fingerprint
            }
        }
        return out
    }

    /// Validates, answers or forwards one ingress entry, adding its writes to the batch. `claimed` is false when
    /// its requestId was claimed by another command.
    func route(_ entry: StreamEntry, _ decoded: Decoded, claimed: Bool?, _ out: inout Batch, _ redis: any RedisCommands) throws {
        let header = decoded.header
        let address = decoded.address
        let envelope: Envelope
        let printed: (arguments: String, fingerprint: String)
        switch decoded.envelope {
        case .success(let e):
            envelope = e
            printed = decoded.printed ?? (e.canonicalArguments, e.fingerprint)
        case .failure(let error):
            reject(entry.id, header: header, error: error, address: address, &out)
            return
        }
        // Run ids and timestamps come from the entry id (SPEC 1); a producer's explicit id past 13 digits of
        // milliseconds (the year 2286) would make run ids that no longer sort or name their partition.
        guard let parsed = EntryID(entry.id), parsed.ms < 10_000_000_000_000 else {
            let error = DEEError.badRequest("id", "the entry id \(entry.id) is past 13 digits of milliseconds; let Redis choose it (XADD … *)")
            reject(entry.id, header: header, error: error, address: address, &out)
            return
        }
        if claimed == false, let rid = envelope.requestId {
            send(.error(Self.requestIdReused(rid)), address, &out)
            return
        }
        let requestKey = envelope.requestId ?? "@" + entry.id
        switch envelope.request {
        case .registerPlan(let plan):
            let r = try plans.register(
                plan, requestKey: requestKey, fingerprint: printed.fingerprint,
                ttl: envelope.requestId == nil ? config.implicitResultSeconds : config.dedupeWindowSeconds, redis)
            out.latest[plan.id] = nil
            if let stored = r.stored {
                reply(repeatOf: stored, fingerprint: printed.fingerprint, address: address, &out)
            } else {
                var result: [String: JSONValue] = [
                    "planId": .string(plan.id), "version": .int(r.version), "created": .bool(r.created),
                ]
                if !plan.warnings.isEmpty { result["warnings"] = .array(plan.warnings.map(JSONValue.string)) }
                send(.ok(.object(result)), address, &out)
            }
            return
        case .getPlan(let planId, let version):
            send(try reads.getPlan(planId, version: version, redis), address, &out)
            return
        case .listPlans:
            send(.ok(.array(try plans.list(redis))), address, &out)
            return
        case .listDeadletters(let limit):
            send(.ok(.array(try deadletters.list(limit: limit, redis))), address, &out)
            return
        case .redriveDeadletter(let id):
            if let added = try deadletters.redrive(id, redis) {
                logger.notice("re-drove a dead letter", metadata: ["stream.entry_id": "\(id)", "ingress.entry_id": "\(added)"])
                send(.ok(["redriven": .string(id), "commandId": .string(added)]), address, &out)
            } else {
                send(.error(DEEError(.notFound, "no dead letter \(id) in \(keys.deadletter)", field: "id")), address, &out)
            }
            return
        case .listRuns(let filter, let limit, let offset) where config.partitions > 1 && filter.contactId == nil:
            send(try reads.listRuns(filter, limit: limit, offset: offset, redis), address, &out)
            return
        case .stats where config.partitions > 1:
            send(try reads.stats(redis), address, &out)
            return
        default:
            break
        }

        // Resolve the plan version now, in ingress order, so the partition applies a fixed version. A plan
        // that cannot be resolved travels on as `fail`, so the partition answers and stores it like any result.
        var planVersion: Int?
        var failure: DEEError?
        switch envelope.request {
        case .execute(let ref, _, _, _, _), .bulkExecute(let ref, _, _, _):
            switch ref {
            case .inline(let plan):
                planVersion = try plans.registerImplicitly(plan, redis)
                // It may have made a new latest version: a later execute by planId in this batch must see it.
                out.latest[plan.id] = planVersion
            case .id(let id, let version):
                if let version {
                    if try plans.load(id, version: version, redis) != nil {
                        planVersion = version
                    } else {
                        failure = DEEError(.notFound, "plan \(id) has no version \(version)", field: "planVersion")
                    }
                } else if let latest = try out.latest[id] ?? plans.latestVersion(id, redis) {
                    out.latest[id] = latest
                    planVersion = latest
                } else {
                    failure = DEEError(.notFound, "no plan \(id); register it first", field: "planId")
                }
            }
        default:
            break
        }

        var targets = partitions(of: envelope.request)
        // A bulkExecute carries each partition only its share (SPEC 9): the contacts that hash to it, with their
        // indexes in the whole command. A partition with no share gets no entry.
        var shares: [Int: (contacts: [JSONValue], indexes: [Int])] = [:]
        if case .bulkExecute(_, let contacts, _, _) = envelope.request, config.partitions > 1 {
            for (i, c) in contacts.enumerated() {
                let p = Partitioning.partition(ofBulkContact: c, count: config.partitions)
                shares[p, default: ([], [])].contacts.append(c)
                shares[p, default: ([], [])].indexes.append(i)
            }
            targets = shares.isEmpty ? [0] : shares.keys.sorted()
        }
        let inbox = InboxEntry(
            type: envelope.type, requestId: envelope.requestId, fingerprint: printed.fingerprint,
            replyTo: address.replyTo, actor: envelope.actor, args: printed.arguments,
            parts: targets.count, targets: targets.count > 1 ? targets : nil, planVersion: planVersion,
            failure: failure?.json.canonical)
        for p in targets {
            guard let share = shares[p] else {
                out.inbox[p, default: []].append((entry.id, inbox.fields))
                continue
            }
            var args = envelope.arguments
            args["contacts"] = .array(share.contacts)
            var own = inbox
            own.args = JSONValue.object(args).canonical
            own.indexes = JSONValue.array(share.indexes.map { .int($0) }).canonical
            out.inbox[p, default: []].append((entry.id, own.fields))
        }
    }

    /// The partitions a command touches.
    func partitions(of request: Request) -> [Int] {
        let all = Array(0..<config.partitions)
        guard config.partitions > 1 else { return [0] }
        switch request {
        case .execute(_, _, let contactId, _, _), .suppress(let contactId, _), .unsuppress(let contactId):
            return [Partitioning.partition(ofContact: contactId, count: config.partitions)]
        case .getRun(let r), .pauseRun(let r, _), .resumeRun(let r), .cancelRun(let r, _), .getAudit(let r, _),
            .verifyAudit(let r), .replay(let r), .actionResult(let r, _, _, _, _):
            return [RunID.partition(of: r).map { min($0, config.partitions - 1) } ?? 0]
        case .signal(.run(let r), _, _, _):
            return [RunID.partition(of: r).map { min($0, config.partitions - 1) } ?? 0]
        case .signal(.contact(let c), _, _, _):
            return [Partitioning.partition(ofContact: c, count: config.partitions)]
        case .listRuns(let f, _, _):
            return f.contactId.map { [Partitioning.partition(ofContact: $0, count: config.partitions)] } ?? all
        case .bulkCancel(let f, _):
            return f.contactId.map { [Partitioning.partition(ofContact: $0, count: config.partitions)] } ?? all
        default:
            return all
        }
    }

    private func reject(
        _ id: String, header: EntryHeader, error: DEEError, address: ReplyAddress, _ out: inout Batch
    ) {
        var fields = ["commandId", id, "type", header.type ?? "", "error", error.code.rawValue, "message", error.message]
        if let f = error.field { fields += ["field", f] }
        out.commands.append(["XADD", keys.rejected, "MAXLEN", "~", String(config.rejectedMaxLen), "*"] + fields)
        if let r = address.command(.error(error), maxLen: config.replyMaxLen) { out.commands.append(r) }
        config.metrics.command(header.type ?? "", .error(error))
        logger.debug(
            "rejected a command",
            metadata: ["stream.entry_id": "\(id)", "command.type": "\(header.type ?? "")", "error": "\(error)"])
    }

    private func reply(repeatOf stored: String, fingerprint: String, address: ReplyAddress, _ out: inout Batch) {
        guard let (fp, outcome) = Outcome.parseRecord(stored) else { return }
        if fp != fingerprint {
            send(.error(Self.requestIdReused(address.requestId)), address, &out)
        } else {
            send(outcome, address, &out)
        }
    }

    static func requestIdReused(_ rid: String) -> DEEError {
        DEEError.badRequest(
            "requestId", "\(rid) was already used for a different command (another type or other arguments)")
    }

    private func send(_ outcome: Outcome, _ address: ReplyAddress, _ out: inout Batch) {
        config.metrics.command(address.type, outcome)
        if let c = address.command(outcome, maxLen: config.replyMaxLen) { out.commands.append(c) }
    }
}
